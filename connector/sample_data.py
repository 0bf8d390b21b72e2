"""Reference data for the sample generator: countries, names and addresses in their scripts,
currencies, goods with HS codes.

Countries are given by ISO 3166-1 codes (alpha-2, and numeric for the EU member states) and
currencies by ISO 4217 codes. Goods carry a 6-digit HS subheading and, where known, the EU
Combined Nomenclature (8 digits) and US HTS (10 digits) code. Exchange rates are rounded, for
plausible declared values only.
"""

# The reference data is deliberately written in Cyrillic and Greek script too.
# ruff: noqa: RUF001
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = [
    "BY_CODE",
    "CATEGORIES",
    "COUNTRIES",
    "DESTINATION_WEIGHT",
    "DOCUMENTS",
    "EU_ALPHA",
    "EU_NUMERIC",
    "GB_LETTERS",
    "GOODS",
    "GOODS_BY_HS",
    "INTERNATIONAL_CARRIERS",
    "MAKERS",
    "NL_LETTERS",
    "OPERATORS",
    "PER_EUR",
    "SERVICES_LETTER",
    "SERVICES_PARCEL",
    "WHOLE_UNITS",
    "City",
    "Country",
    "Goods",
]

# Lists are "|"-separated. "native=latin" gives a transliteration (for e-mail addresses); a
# "/" splits masculine and feminine surname forms. Latin names are transliterated by folding.

_FOLD = str.maketrans(
    {"ß": "ss", "ä": "ae", "ö": "oe", "ü": "ue", "ł": "l", "Ł": "L", "ø": "o", "œ": "oe", "'": ""}
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii())


def _pairs(spec: str) -> tuple[tuple[str, str], ...]:
    out = []
    for entry in spec.split("|"):
        native, _, latin = entry.partition("=")
        out.append((native, latin or _fold(native)))
    return tuple(out)


def _surnames(spec: str) -> tuple[tuple[str, str, str, str], ...]:
    """(masculine, feminine, masculine latin, feminine latin) per surname."""
    out = []
    for native, latin in _pairs(spec):
        male, _, female = native.partition("/")
        male_l, _, female_l = latin.partition("/")
        out.append((male, female or male, male_l, female_l or male_l))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class City:
    name: str
    subdivision: str | None
    low: int
    high: int
    streets: tuple[str, ...]
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    numeric: str
    currency: str
    eu: bool
    calling: str
    hubs: tuple[str, ...]
    carriers: tuple[str, ...]
    men: tuple[tuple[str, str], ...]
    women: tuple[tuple[str, str], ...]
    surnames: tuple[tuple[str, str, str, str], ...]
    name_format: str
    street_format: str
    postcode: str
    cities: tuple[City, ...]
    companies: tuple[tuple[str, str], ...]
    mail: tuple[str, ...]
    tld: str
    specialties: tuple[str, ...] = ()
    extra_line: str = ""


def _country(
    code: str,
    numeric: str,
    currency: str,
    *,
    eu: bool,
    calling: str,
    hubs: str,
    carriers: str,
    men: str,
    women: str,
    surnames: str,
    streets: str,
    street_format: str,
    postcode: str,
    cities: tuple[tuple[str, str, int, int] | tuple[str, str, int, int, str], ...],
    companies: str,
    mail: str,
    tld: str,
    name_format: str = "{g} {s}",
    specialties: str = "",
    extra_line: str = "",
    prefixes: tuple[str, ...] = (),
) -> Country:
    default_streets = tuple(streets.split("|")) if streets else ()
    built = []
    for n, city in enumerate(cities):
        own = tuple(city[4].split("|")) if len(city) == 5 else default_streets
        built.append(
            City(
                city[0],
                city[1] or None,
                city[2],
                city[3],
                own,
                prefixes[n] if prefixes else "",
            )
        )
    return Country(
        code=code,
        numeric=numeric,
        currency=currency,
        eu=eu,
        calling=calling,
        hubs=tuple(hubs.split()),
        carriers=tuple(carriers.split()),
        men=_pairs(men),
        women=_pairs(women),
        surnames=_surnames(surnames),
        name_format=name_format,
        street_format=street_format,
        postcode=postcode,
        cities=tuple(built),
        companies=_pairs(companies),
        mail=tuple(mail.split("|")),
        tld=tld,
        specialties=tuple(specialties.split()),
        extra_line=extra_line,
    )


# fmt: off
COUNTRIES: tuple[Country, ...] = (
    _country(
        "DE", "276", "EUR", eu=True, calling="49", hubs="FRA LEJ MUC", carriers="LH QY",
        men="Jürgen|Lukas|Maximilian|Jörg|Felix|Sören|Björn|Matthias",
        women="Käthe|Anna|Mia|Leonie|Jana|Lea|Hannah|Sophie",
        surnames="Müller|Schröder|Weiß|Groß|Schäfer|Köhler|Becker|Hoffmann|Wagner|Krüger|Fischer",
        streets="Friedrichstraße|Hauptstraße|Königsallee|Schloßstraße|Lindenstraße|Goethestraße"
        "|Bahnhofstraße|Müllerstraße",
        street_format="{street} {n}", postcode="n5",
        cities=(("Berlin", "", 10115, 14199), ("München", "", 80331, 81929),
                ("Hamburg", "", 20095, 22769), ("Köln", "", 50667, 51149),
                ("Leipzig", "", 4103, 4357), ("Düsseldorf", "", 40210, 40629),
                ("Nürnberg", "", 90402, 90491), ("Frankfurt am Main", "", 60306, 60599)),
        companies="Bücherstube Köhler GmbH=buecherstube-koehler|Elektronik Weiß & Söhne KG="
        "weiss-elektronik|Kaffeerösterei Schäfer e.K.=schaefer-kaffee|Messerschmiede Groß GmbH="
        "gross-messer",
        mail="gmx.de|web.de|t-online.de", tld="de",
        specialties="490199 821192 851210 950490",
    ),
    _country(
        "FR", "250", "EUR", eu=True, calling="33", hubs="CDG LYS", carriers="AF",
        men="François|Jérôme|Loïc|Benoît|Théo|Gaëtan|Hugo|Mathéo",
        women="Hélène|Zoé|Cécile|Amélie|Chloé|Léa|Inès|Maëlle",
        surnames="Lefèvre|Dupont|Girard|Moreau|Lambert|Rousseau|Bérard|Fournier|Mercier|Lemaître",
        streets="rue de Rivoli|avenue des Champs-Élysées|boulevard Saint-Germain|rue de la "
        "République|rue Sainte-Catherine|rue du Faubourg Saint-Honoré|quai de la Tournelle",
        street_format="{n} {street}", postcode="n5",
        cities=(("Paris", "", 75001, 75020), ("Lyon", "", 69001, 69009),
                ("Marseille", "", 13001, 13016), ("Toulouse", "", 31000, 31500),
                ("Bordeaux", "", 33000, 33800), ("Lille", "", 59000, 59800),
                ("Nantes", "", 44000, 44300)),
        companies="Maison Lefèvre SARL=maison-lefevre|Les Thés de Cécile SAS=thes-de-cecile"
        "|Parfumerie Bérard=parfumerie-berard|Atelier Girard & Fils=atelier-girard",
        mail="orange.fr|laposte.net|free.fr", tld="fr", specialties="330300 330410 630251",
    ),
    _country(
        "GB", "826", "GBP", eu=False, calling="44", hubs="LHR EMA STN", carriers="BA",
        men="Oliver|Harry|George|Jack|Noah|Thomas|Callum|Rhys",
        women="Amelia|Isla|Emily|Sophie|Olivia|Siobhan|Niamh|Grace",
        surnames="Smith|Jones|Taylor|Brown|Williams|Wilson|O'Brien|Davies|Evans|MacDonald",
        streets="High Street|Station Road|Church Lane|Victoria Road|Park Avenue|Baker Street"
        "|Queen's Road",
        street_format="{n} {street}", postcode="gb",
        cities=(("London", "", 1, 28), ("Manchester", "", 1, 40), ("Birmingham", "", 1, 48),
                ("Leeds", "", 1, 29), ("Glasgow", "", 1, 84), ("Edinburgh", "", 1, 17),
                ("Bristol", "", 1, 16)),
        prefixes=("SE", "M", "B", "LS", "G", "EH", "BS"),
        companies="Thistle & Thread Ltd=thistleandthread|Baker Street Books Ltd="
        "bakerstreetbooks|Northern Gadgets plc=northerngadgets|Earl Grey Tea Company Ltd="
        "earlgreytea",
        mail="btinternet.com|outlook.com|gmail.com", tld="co.uk", specialties="490199 090210",
    ),
    _country(
        "US", "840", "USD", eu=False, calling="1", hubs="JFK ORD LAX MIA",
        carriers="AA UA DL 5X FX",
        men="James|Michael|Robert|David|José|William|Daniel|Ethan",
        women="Mary|Jennifer|Linda|Emily|Sofía|Jessica|Ashley|Madison",
        surnames="Johnson|Garcia|Miller|Davis|Rodríguez|Martinez|Anderson|Thompson|Nguyen"
        "|O'Connor",
        streets="Main Street|Broadway|Oak Avenue|Maple Drive|Elm Street|Sunset Boulevard"
        "|Pennsylvania Avenue NW|Market Street",
        street_format="{n4} {street}", postcode="n5",
        cities=(("New York", "NY", 10001, 10282), ("Los Angeles", "CA", 90001, 90089),
                ("Chicago", "IL", 60601, 60661), ("Houston", "TX", 77001, 77099),
                ("Seattle", "WA", 98101, 98199), ("Miami", "FL", 33101, 33199),
                ("Boston", "MA", 2108, 2137)),
        companies="Acme Outdoor Supply LLC=acmeoutdoor|Brooklyn Coffee Roasters Inc.="
        "brooklyncoffee|Sunset Electronics LLC=sunsetelectronics|Liberty Books Inc.="
        "libertybooks",
        mail="gmail.com|yahoo.com|outlook.com", tld="com",
        specialties="847130 210690 950490", extra_line="us",
    ),
    _country(
        "CN", "156", "CNY", eu=False, calling="86", hubs="PVG PEK CAN SZX",
        carriers="CA MU CZ CK",
        men="伟=Wei|强=Qiang|磊=Lei|军=Jun|洋=Yang|勇=Yong|浩然=Haoran",
        women="芳=Fang|娜=Na|秀英=Xiuying|敏=Min|静=Jing|丽=Li|艳=Yan",
        surnames="王=Wang|李=Li|张=Zhang|刘=Liu|陈=Chen|杨=Yang|赵=Zhao|黄=Huang|周=Zhou|吴=Wu",
        name_format="{s}{g}", streets="", street_format="{street}{n}号", postcode="n6",
        cities=(("北京市", "", 100000, 102600, "朝阳区建国路|东城区王府井大街|海淀区中关村大街"),
                ("上海市", "", 200000, 202100, "黄浦区南京东路|浦东新区世纪大道|徐汇区淮海中路"),
                ("广州市", "广东省", 510000, 511400, "天河区天河路|越秀区中山五路"),
                ("深圳市", "广东省", 518000, 518133,
                 "福田区深南大道|南山区科技园南路|福田区华强北路"),
                ("杭州市", "浙江省", 310000, 311300, "西湖区文三路|上城区延安路"),
                ("义乌市", "浙江省", 322000, 322099, "稠城街道工人北路|福田街道商城大道"),
                ("成都市", "四川省", 610000, 611900, "锦江区春熙路|武侯区人民南路")),
        companies="深圳市华强北电子有限公司=hqbdz|义乌市小商品贸易有限公司=ywxsp"
        "|杭州丝绸之路服饰有限公司=hzsilkroad|云南普洱茶业有限公司=ynpuer",
        mail="qq.com|163.com|126.com", tld="com.cn",
        specialties="850760 851713 851830 854442 847160 853952 392690 610910 950300",
    ),
    _country(
        "JP", "392", "JPY", eu=False, calling="81", hubs="NRT HND KIX", carriers="JL NH",
        men="翔太=Shota|大輝=Daiki|健一=Kenichi|蓮=Ren|拓也=Takuya|悠人=Yuto",
        women="陽菜=Hina|さくら=Sakura|美咲=Misaki|ゆい=Yui|花子=Hanako|愛子=Aiko",
        surnames="佐藤=Sato|鈴木=Suzuki|高橋=Takahashi|田中=Tanaka|渡辺=Watanabe|伊藤=Ito"
        "|山本=Yamamoto|中村=Nakamura|小林=Kobayashi|加藤=Kato",
        name_format="{s} {g}", streets="", street_format="{street}{a}丁目{b}-{c}", postcode="jp",
        cities=(("千代田区", "東京都", 100, 102, "丸の内|大手町|神田神保町"),
                ("渋谷区", "東京都", 150, 151, "道玄坂|神宮前|恵比寿"),
                ("大阪市北区", "大阪府", 530, 531, "梅田|中之島|天神橋"),
                ("名古屋市中村区", "愛知県", 450, 453, "名駅|則武"),
                ("福岡市博多区", "福岡県", 812, 812, "博多駅前|中洲"),
                ("札幌市中央区", "北海道", 60, 64, "北一条西|南三条西")),
        companies="株式会社さくら雑貨=sakura-zakka|東京カメラ商会株式会社=tokyo-camera"
        "|京都茶舗合同会社=kyoto-chaho",
        mail="yahoo.co.jp|docomo.ne.jp|gmail.com", tld="co.jp",
        specialties="090210 852589 691110 821192",
    ),
    _country(
        "KR", "410", "KRW", eu=False, calling="82", hubs="ICN", carriers="KE OZ",
        men="민준=Minjun|지훈=Jihun|도윤=Doyun|현우=Hyunwoo|서준=Seojun|준호=Junho",
        women="서연=Seoyeon|하은=Haeun|수아=Sua|지민=Jimin|예은=Yeeun|민서=Minseo",
        surnames="김=Kim|이=Lee|박=Park|최=Choi|정=Jung|강=Kang|조=Cho|윤=Yoon",
        name_format="{s}{g}", streets="", street_format="{street} {n}", postcode="n5",
        cities=(("서울특별시", "", 1000, 8866, "강남구 테헤란로|중구 세종대로|마포구 월드컵북로"),
                ("부산광역시", "", 46000, 49527, "해운대구 해운대로|중구 중앙대로"),
                ("인천광역시", "", 21000, 23136, "중구 공항로|연수구 센트럴로"),
                ("대구광역시", "", 41000, 43023, "중구 동성로|수성구 달구벌대로")),
        companies="주식회사 한빛전자=hanbit-elec|서울뷰티 주식회사=seoulbeauty"
        "|(주)코리아패션=koreafashion",
        mail="naver.com|daum.net|gmail.com", tld="co.kr",
        specialties="330499 330410 330510 851830",
    ),
    _country(
        "RU", "643", "RUB", eu=False, calling="7", hubs="SVO DME LED", carriers="SU",
        men="Иван=Ivan|Алексей=Aleksei|Дмитрий=Dmitry|Сергей=Sergei|Михаил=Mikhail"
        "|Андрей=Andrei",
        women="Анна=Anna|Ольга=Olga|Екатерина=Ekaterina|Наталья=Natalya|Мария=Maria"
        "|Татьяна=Tatiana",
        surnames="Иванов/Иванова=Ivanov/Ivanova|Смирнов/Смирнова=Smirnov/Smirnova"
        "|Кузнецов/Кузнецова=Kuznetsov/Kuznetsova|Попов/Попова=Popov/Popova"
        "|Соколов/Соколова=Sokolov/Sokolova|Лебедев/Лебедева=Lebedev/Lebedeva"
        "|Новиков/Новикова=Novikov/Novikova|Морозов/Морозова=Morozov/Morozova",
        streets="ул. Тверская|Невский пр.|ул. Ленина|ул. Арбат|ул. Садовая|ул. Гагарина",
        street_format="{street}, д. {n}, кв. {apt}", postcode="n6",
        cities=(("Москва", "", 101000, 129626), ("Санкт-Петербург", "", 190000, 199406),
                ("Новосибирск", "", 630000, 630133), ("Екатеринбург", "", 620000, 620150),
                ("Казань", "", 420000, 420140)),
        companies="ООО «Северный ветер»=severniy-veter|ИП Смирнов А. В.=smirnov-shop"
        "|АО «Уральские самоцветы»=uralgems",
        mail="mail.ru|yandex.ru|rambler.ru", tld="ru", specialties="611710 090210",
    ),
    _country(
        "UA", "804", "UAH", eu=False, calling="380", hubs="KBP LWO", carriers="PS",
        men="Олександр=Oleksandr|Андрій=Andrii|Дмитро=Dmytro|Сергій=Serhii|Тарас=Taras"
        "|Богдан=Bohdan",
        women="Олена=Olena|Ірина=Iryna|Наталія=Nataliia|Оксана=Oksana|Юлія=Yuliia"
        "|Софія=Sofiia",
        surnames="Шевченко=Shevchenko|Коваленко=Kovalenko|Бондаренко=Bondarenko"
        "|Ткаченко=Tkachenko|Кравчук=Kravchuk|Мельник=Melnyk|Бойко=Boiko|Олійник=Oliinyk",
        streets="вул. Хрещатик|вул. Шевченка|просп. Свободи|вул. Дерибасівська|вул. Сумська"
        "|вул. Городоцька",
        street_format="{street}, {n}, кв. {apt}", postcode="n5",
        cities=(("Київ", "", 1001, 4212), ("Львів", "", 79000, 79495),
                ("Харків", "", 61000, 61204), ("Одеса", "", 65000, 65125),
                ("Дніпро", "", 49000, 49130)),
        companies="ТОВ «Карпатський мед»=karpatmed|ФОП Шевченко О. М.=shevchenko-shop"
        "|ТОВ «Львівська кава»=lvivcoffee",
        mail="ukr.net|i.ua|gmail.com", tld="com.ua", specialties="040900 630251",
    ),
    _country(
        "GR", "300", "EUR", eu=True, calling="30", hubs="ATH SKG", carriers="A3",
        men="Γιώργος=Giorgos|Δημήτρης=Dimitris|Νίκος=Nikos|Κωνσταντίνος=Konstantinos"
        "|Γιάννης=Giannis|Παναγιώτης=Panagiotis",
        women="Μαρία=Maria|Ελένη=Eleni|Κατερίνα=Katerina|Σοφία=Sofia|Δέσποινα=Despoina"
        "|Αικατερίνη=Aikaterini",
        surnames="Παπαδόπουλος/Παπαδοπούλου=Papadopoulos/Papadopoulou|Γεωργίου=Georgiou"
        "|Οικονόμου=Oikonomou|Νικολάου=Nikolaou|Βασιλείου=Vasileiou|Αντωνίου=Antoniou"
        "|Παπαδάκης/Παπαδάκη=Papadakis/Papadaki",
        streets="Ερμού|Σταδίου|Πανεπιστημίου|Τσιμισκή|Εγνατίας|Αγίου Νικολάου",
        street_format="{street} {n}", postcode="gr",
        cities=(("Αθήνα", "", 10431, 11855), ("Θεσσαλονίκη", "", 54621, 56430),
                ("Πάτρα", "", 26221, 26504), ("Ηράκλειο", "", 71201, 71500)),
        companies="Ελαιόλαδο Κρήτης Α.Ε.=cretanoil|Βιβλιοπωλείο Γεωργίου Ο.Ε.=georgiou-books"
        "|Μέλι Ολύμπου ΙΚΕ=olympushoney",
        mail="otenet.gr|yahoo.gr|gmail.com", tld="gr", specialties="150920 040900",
    ),
    _country(
        "IL", "376", "ILS", eu=False, calling="972", hubs="TLV", carriers="LY",
        men="דוד=David|יוסף=Yosef|משה=Moshe|אברהם=Avraham|איתי=Itai|נועם=Noam",
        women="שרה=Sara|רחל=Rachel|נועה=Noa|מיכל=Michal|תמר=Tamar|יעל=Yael",
        surnames="כהן=Cohen|לוי=Levi|מזרחי=Mizrahi|פרץ=Peretz|ביטון=Biton|פרידמן=Friedman"
        "|שפירא=Shapira|אזולאי=Azoulay",
        streets="רחוב הרצל|שדרות רוטשילד|רחוב יפו|רחוב דיזנגוף|רחוב בן יהודה|רחוב אלנבי",
        street_format="{street} {n}", postcode="n7",
        cities=(("תל אביב-יפו", "", 6100000, 6999999), ("ירושלים", "", 9100000, 9799999),
                ("חיפה", "", 3100000, 3599999), ("באר שבע", "", 8400000, 8499999)),
        companies="כהן אלקטרוניקה בע״מ=cohen-electronics|ים המלח קוסמטיקה בע״מ="
        "deadsea-cosmetics|סטודיו לוי לתכשיטים=levi-jewellery",
        mail="walla.co.il|gmail.com", tld="co.il", specialties="330499 711311",
    ),
    _country(
        "AE", "784", "AED", eu=False, calling="971", hubs="DXB AUH", carriers="EK EY",
        men="محمد=Mohammed|أحمد=Ahmed|خالد=Khalid|عمر=Omar|يوسف=Youssef|سعيد=Saeed",
        women="فاطمة=Fatima|عائشة=Aisha|مريم=Maryam|نورة=Noura|ليلى=Layla|سارة=Sara",
        surnames="المنصوري=AlMansoori|الهاشمي=AlHashimi|الشامسي=AlShamsi|الكعبي=AlKaabi"
        "|النعيمي=AlNuaimi|المزروعي=AlMazrouei",
        streets="شارع الشيخ زايد|شارع الوصل|شارع حمدان بن محمد|شارع الكورنيش|شارع المطار",
        street_format="{street}، مبنى {n}", postcode="none",
        cities=(("دبي", "", 0, 0), ("أبوظبي", "", 0, 0), ("الشارقة", "", 0, 0)),
        companies="مؤسسة الصحراء للتجارة العامة=sahara-trading|شركة النخيل للإلكترونيات ذ.م.م="
        "nakheel-electronics|عطور الإمارات=emirates-perfumes",
        mail="emirates.net.ae|gmail.com", tld="ae", specialties="330300 711311",
        extra_line="ae",
    ),
    _country(
        "EG", "818", "EGP", eu=False, calling="20", hubs="CAI", carriers="MS",
        men="محمد=Mohamed|أحمد=Ahmed|مصطفى=Mostafa|كريم=Karim|محمود=Mahmoud|عمرو=Amr",
        women="ياسمين=Yasmin|منى=Mona|سارة=Sara|هبة=Heba|نور=Nour|دينا=Dina",
        surnames="حسن=Hassan|إبراهيم=Ibrahim|عبد الله=Abdallah|السيد=ElSayed|محمود=Mahmoud"
        "|علي=Ali",
        streets="شارع التحرير|شارع الهرم|شارع قصر النيل|شارع جامعة الدول العربية|طريق الحرية",
        street_format="{n} {street}", postcode="n5",
        cities=(("القاهرة", "", 11511, 11599), ("الجيزة", "", 12511, 12599),
                ("الإسكندرية", "", 21500, 21599)),
        companies="شركة النيل للمنسوجات=nile-textiles|مكتبة القاهرة الحديثة=cairo-library"
        "|بردي مصر للحرف اليدوية=egypt-papyrus",
        mail="yahoo.com|gmail.com", tld="com.eg", specialties="630251 610910",
    ),
    _country(
        "IN", "356", "INR", eu=False, calling="91", hubs="DEL BOM MAA BLR", carriers="AI 6E",
        men="Aarav|Rohan|Vikram|Arjun|Rahul|Sanjay",
        women="Priya|Ananya|Sneha|Kavya|Lakshmi|Deepika",
        surnames="Sharma|Patel|Iyer|Reddy|Gupta|Singh|Nair|Mukherjee",
        streets="MG Road|Linking Road|Park Street|Anna Salai|Brigade Road|Chandni Chowk",
        street_format="{n}, {street}", postcode="n6",
        cities=(("Mumbai", "Maharashtra", 400001, 400104), ("New Delhi", "Delhi", 110001, 110096),
                ("Bengaluru", "Karnataka", 560001, 560103),
                ("Chennai", "Tamil Nadu", 600001, 600119),
                ("Kolkata", "West Bengal", 700001, 700160),
                ("Jaipur", "Rajasthan", 302001, 302039)),
        companies="Sharma Handicrafts Pvt. Ltd.=sharmahandicrafts|Jaipur Textiles Exports="
        "jaipurtextiles|Kerala Spices Co.=keralaspices|Darjeeling Tea House=darjeelingteahouse",
        mail="rediffmail.com|gmail.com|yahoo.co.in", tld="in",
        specialties="621410 630231 090210 340111",
    ),
    _country(
        "BR", "076", "BRL", eu=False, calling="55", hubs="GRU GIG VCP", carriers="LA G3 AD",
        men="João|José|Lucas|Luís|Antônio|Caio|Thiago|Sebastião",
        women="Maria|Ana|Luíza|Beatriz|Júlia|Vitória|Letícia|Conceição",
        surnames="Silva|Santos|Oliveira|Araújo|Gonçalves|Ribeiro|Magalhães|Simões",
        streets="Rua Augusta|Avenida Paulista|Rua das Laranjeiras|Avenida Atlântica"
        "|Rua da Consolação|Avenida Brasil",
        street_format="{street}, {n}", postcode="br",
        cities=(("São Paulo", "SP", 1000, 5999), ("Rio de Janeiro", "RJ", 20000, 23799),
                ("Belo Horizonte", "MG", 30000, 31999), ("Curitiba", "PR", 80000, 82999),
                ("Salvador", "BA", 40000, 42499)),
        companies="Café Três Corações Comércio Ltda.=cafetrescoracoes|Artesanato São João ME="
        "artesanatosaojoao|Magalhães Eletrônicos Ltda.=magalhaeseletronicos",
        mail="uol.com.br|bol.com.br|gmail.com", tld="com.br", specialties="090121",
    ),
    _country(
        "ES", "724", "EUR", eu=True, calling="34", hubs="MAD BCN ZAZ", carriers="IB UX",
        men="José|Álvaro|Íñigo|Martín|Joaquín|Sergio",
        women="María|Lucía|Begoña|Sofía|Ainhoa|Nuria",
        surnames="García|Fernández|González|Rodríguez|López|Martínez|Sánchez|Pérez|Muñoz|Núñez",
        streets="Calle Mayor|Gran Vía|Avenida de la Constitución|Calle de Alcalá|Calle Larios"
        "|Calle de Serrano",
        street_format="{street}, {n}, {a}º", postcode="n5",
        cities=(("Madrid", "", 28001, 28080), ("Barcelona", "", 8001, 8042),
                ("Sevilla", "", 41001, 41020), ("Valencia", "", 46001, 46026),
                ("Málaga", "", 29001, 29018), ("Zaragoza", "", 50001, 50021)),
        companies="Aceites Núñez S.L.=aceitesnunez|Cerámica Sevillana S.A.=ceramicasevillana"
        "|Librería Álvarez S.L.=libreriaalvarez",
        mail="telefonica.net|gmail.com|hotmail.es", tld="es", specialties="150920 691200",
    ),
    _country(
        "IT", "380", "EUR", eu=True, calling="39", hubs="MXP FCO", carriers="AZ",
        men="Giuseppe|Niccolò|Andrea|Luca|Francesco|Lorenzo",
        women="Giulia|Francesca|Chiara|Sofia|Aurora|Alessia",
        surnames="Rossi|Russo|Ferrari|Esposito|Bianchi|Romano|Colombo|De Luca|Ricci|Mancini",
        streets="Via Roma|Via del Corso|Corso Vittorio Emanuele II|Via Toledo|Via Garibaldi"
        "|Via Dante",
        street_format="{street}, {n}", postcode="n5",
        cities=(("Roma", "RM", 118, 199), ("Milano", "MI", 20121, 20162),
                ("Napoli", "NA", 80121, 80147), ("Torino", "TO", 10121, 10156),
                ("Firenze", "FI", 50121, 50145), ("Forlì", "FC", 47121, 47122)),
        companies="Ceramiche Vietri S.r.l.=ceramichevietri|Pelletteria Fiorentina S.p.A.="
        "pelletteriafiorentina|Caffè Niccolò S.n.c.=caffeniccolo",
        mail="libero.it|virgilio.it|gmail.com", tld="it",
        specialties="420221 420231 150920 090121 640411",
    ),
    _country(
        "PL", "616", "PLN", eu=True, calling="48", hubs="WAW KTW", carriers="LO",
        men="Łukasz|Paweł|Wojciech|Krzysztof|Józef|Mikołaj",
        women="Małgorzata|Zofia|Agnieszka|Katarzyna|Jadwiga|Żaneta",
        surnames="Kowalski/Kowalska|Wiśniewski/Wiśniewska|Wójcik|Kamiński/Kamińska"
        "|Lewandowski/Lewandowska|Zieliński/Zielińska|Dąbrowski/Dąbrowska|Nowak|Woźniak",
        streets="ul. Marszałkowska|ul. Piotrkowska|ul. Długa|al. Jerozolimskie"
        "|ul. Świętokrzyska|ul. Floriańska",
        street_format="{street} {n}/{apt}", postcode="pl",
        cities=(("Warszawa", "", 1, 4999), ("Kraków", "", 30001, 31999),
                ("Łódź", "", 90001, 94999), ("Wrocław", "", 50001, 54999),
                ("Gdańsk", "", 80001, 80999), ("Poznań", "", 60001, 61999)),
        companies="Bursztyn Gdańsk Sp. z o.o.=bursztyngdansk|Księgarnia Łódzka s.c.="
        "ksiegarnialodzka|Ceramika Bolesławiec Sp. z o.o.=ceramikaboleslawiec",
        mail="wp.pl|o2.pl|onet.pl", tld="pl", specialties="691200 490300",
    ),
    _country(
        "NL", "528", "EUR", eu=True, calling="31", hubs="AMS", carriers="KL",
        men="Daan|Sem|Bram|Lars|Jeroen|Thijs",
        women="Emma|Julia|Tess|Lieke|Anouk|Sanne",
        surnames="de Jong|Jansen|de Vries|van den Berg|van Dijk|Bakker|Visser|Smit",
        streets="Damrak|Kalverstraat|Coolsingel|Oudegracht|Lange Voorhout|Stratumseind",
        street_format="{street} {n}", postcode="nl",
        cities=(("Amsterdam", "", 1011, 1109), ("Rotterdam", "", 3011, 3089),
                ("Utrecht", "", 3511, 3585), ("Den Haag", "", 2491, 2599),
                ("Eindhoven", "", 5611, 5658)),
        companies="Stroopwafel Fabriek B.V.=stroopwafelfabriek|Fietsonderdelen Bakker V.O.F.="
        "fietsonderdelenbakker|Delfts Blauw Atelier B.V.=delftsblauw",
        mail="ziggo.nl|kpnmail.nl|gmail.com", tld="nl", specialties="871494 851210",
    ),
    _country(
        "CH", "756", "CHF", eu=False, calling="41", hubs="ZRH GVA", carriers="LX",
        men="Lukas|Noah|Luca|Matteo|Reto|Beat",
        women="Léa|Mia|Chloé|Anna-Lena|Nicole|Céline",
        surnames="Müller|Meier|Schmid|Keller|Weber|Huber|Bernasconi|Favre|Zürcher|Rochat",
        streets="", street_format="{street} {n}", postcode="n4",
        cities=(("Zürich", "ZH", 8001, 8057, "Bahnhofstrasse|Limmatquai|Langstrasse"),
                ("Genève", "GE", 1201, 1209, "Rue du Rhône|Rue de Lausanne|Quai du Mont-Blanc"),
                ("Bern", "BE", 3001, 3030, "Marktgasse|Kramgasse"),
                ("Basel", "BS", 4001, 4059, "Freie Strasse|Steinenvorstadt"),
                ("Lausanne", "VD", 1003, 1018, "Rue de Bourg|Avenue de la Gare"),
                ("Lugano", "TI", 6900, 6908, "Via Nassa|Via Pessina")),
        companies="Uhrenatelier Zürcher AG=uhrenatelier-zuercher|Chocolaterie Favre SA="
        "chocolaterie-favre|Käserei Huber GmbH=kaeserei-huber",
        mail="bluewin.ch|gmx.ch|sunrise.ch", tld="ch", specialties="910211 180632",
    ),
)
# fmt: on
BY_CODE = {country.code: country for country in COUNTRIES}

#: Relative weight of each country as a destination (e-commerce flows lean to US/EU/GB).
DESTINATION_WEIGHT = {
    "US": 14, "GB": 8, "DE": 8, "FR": 6, "CN": 4, "JP": 4, "KR": 3, "RU": 3, "UA": 3, "GR": 3,
    "IL": 3, "AE": 3, "EG": 2, "IN": 3, "BR": 3, "ES": 5, "IT": 5, "PL": 4, "NL": 4, "CH": 4,
}  # fmt: skip

#: Operator ids of the designated operators, by country.
OPERATORS = {
    "DE": "DE-DPAG", "FR": "FR-LAPOSTE", "GB": "GB-ROYALMAIL", "US": "US-USPS",
    "CN": "CN-CHINAPOST", "JP": "JP-JAPANPOST", "KR": "KR-KOREAPOST", "RU": "RU-RUSSIANPOST",
    "UA": "UA-UKRPOSHTA", "GR": "GR-ELTA", "IL": "IL-ISRAELPOST", "AE": "AE-EMIRATESPOST",
    "EG": "EG-EGYPTPOST", "IN": "IN-INDIAPOST", "BR": "BR-CORREIOS", "ES": "ES-CORREOS",
    "IT": "IT-POSTEITALIANE", "PL": "PL-POCZTAPOLSKA", "NL": "NL-POSTNL", "CH": "CH-SWISSPOST",
}  # fmt: skip

#: ISO 3166-1 numeric codes of the EU member states (the IOSS number's country part).
EU_NUMERIC = (
    "040", "056", "100", "191", "196", "203", "208", "233", "246", "250", "276", "300", "348",
    "372", "380", "428", "440", "442", "470", "528", "616", "620", "642", "703", "705", "724",
    "752",
)  # fmt: skip
EU_ALPHA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})  # fmt: skip

#: Units of each currency per euro (rounded, for plausible declared values only).
PER_EUR = {
    "EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CNY": 7.8, "JPY": 160.0, "KRW": 1450.0, "RUB": 100.0,
    "UAH": 44.0, "ILS": 4.0, "AED": 3.97, "EGP": 52.0, "INR": 90.0, "BRL": 5.9, "PLN": 4.3,
    "CHF": 0.95,
}  # fmt: skip
WHOLE_UNITS = frozenset({"JPY", "KRW"})

#: Where goods are made, besides the sender's country (all ISO 3166-1 codes).
MAKERS = ("CN", "CN", "CN", "VN", "BD", "TR", "IN", "TW", "TH", "IT", "DE", "JP", "KR", "US", "PT")


@dataclass(frozen=True, slots=True)
class Goods:
    description: str
    hs: str
    value_eur_cents: int
    grams: int
    max_quantity: int
    eu_code: str  # EU Combined Nomenclature (8 digits), or ""
    us_code: str  # US HTS (10 digits), or ""


def _goods(spec: str) -> tuple[Goods, ...]:
    out = []
    for row in spec.strip().splitlines():
        desc, hs, value, grams, qty, eu, us = (part.strip() for part in row.split(";"))
        out.append(Goods(desc, hs, int(value), int(grams), int(qty), eu, us))
    return tuple(out)


#: Goods: description; HS 6; unit value (euro cents); unit weight (g); max qty; EU CN; US HTS.
GOODS = _goods("""
Men's cotton knitted T-shirt, short sleeves; 610910; 1200; 180; 5; 61091000; 6109100012
Women's cotton knitted T-shirt with printed motif; 610910; 1400; 160; 5; 61091000; 6109100040
Men's cotton denim trousers (jeans); 620342; 4500; 650; 2; 62034231; 6203424011
Women's knitted dress of synthetic fibres; 610443; 3500; 300; 2; 61044300;
Women's handbag with outer surface of leather; 420221; 8900; 700; 1; 42022100;
Men's wallet of leather, pocket size; 420231; 2500; 120; 2; 42023100;
Running shoes with rubber soles and textile uppers; 640411; 6500; 800; 1; 64041100;
Knitted wool scarf; 611710; 2200; 150; 2; ;
Woven silk scarf, printed; 621410; 3500; 60; 2; 62141000;
Cotton bed linen set (duvet cover and two pillowcases); 630231; 4000; 1200; 1; ;
Embroidered cotton tablecloth; 630251; 2800; 600; 1; ;
Lithium-ion power bank 10000 mAh with USB-C port; 850760; 2500; 230; 2; 85076000; 8507600020
Smartphone for cellular networks, 128 GB storage; 851713; 35000; 200; 1; 85171300; 8517130000
Wireless Bluetooth in-ear headphones with charging case; 851830; 4500; 60; 2; 85183000;
USB-C charging cable, 1 m, PVC insulated, with connectors; 854442; 800; 40; 5; 85444290;
Laptop computer, 14-inch display, 16 GB RAM; 847130; 80000; 1600; 1; 84713000; 8471300100
Wireless optical computer mouse; 847160; 2000; 90; 2; 84716070;
Mechanical computer keyboard with USB cable; 847160; 7000; 900; 1; 84716060;
Mirrorless digital camera with 18-55 mm lens; 852589; 60000; 700; 1; ;
LED light bulb E27, 9 W, 230 V; 853952; 400; 60; 10; ;
Battery-powered LED bicycle headlight; 851210; 2500; 150; 2; 85121000;
Stoneware coffee mug, 350 ml; 691200; 900; 380; 4; ;
Porcelain tea set (teapot and six cups); 691110; 6000; 2200; 1; ;
Stainless steel kitchen knife with fixed blade; 821192; 3000; 200; 2; ;
Stainless steel vacuum flask, 0.5 l; 961700; 1800; 350; 2; ;
Borosilicate glass food storage container with plastic lid; 701349; 1200; 500; 3; ;
Printed paperback novel; 490199; 1300; 300; 3; 49019900;
Children's printed picture book, hardcover; 490300; 1500; 400; 2; 49030000;
Plastic construction toy, building blocks set; 950300; 3500; 800; 1; ;
Wooden jigsaw puzzle, 500 pieces; 950300; 2000; 500; 1; ;
Board game with cardboard pieces and dice; 950490; 3000; 900; 1; ;
Green tea, loose leaf, in 100 g packages; 090210; 800; 120; 5; 09021000; 0902109000
Roasted coffee beans, not decaffeinated, 500 g bag; 090121; 1200; 520; 4; 09012100;
Milk chocolate bars, 100 g, not filled; 180632; 300; 105; 10; ;
Extra virgin olive oil, 500 ml glass bottle; 150920; 1100; 900; 4; ;
Dried shiitake mushrooms, 100 g bag; 071239; 900; 110; 4; ;
Natural honey, 500 g glass jar; 040900; 1000; 750; 3; 04090000;
Vitamin C dietary supplement, 60 tablets; 210690; 1200; 100; 3; ;
Moisturising face cream, 50 ml jar; 330499; 2500; 120; 3; 33049900;
Eau de parfum, 50 ml spray bottle; 330300; 6500; 250; 2; 33030010;
Lipstick in plastic case; 330410; 1500; 30; 4; 33041000;
Hair shampoo, 250 ml plastic bottle; 330510; 700; 290; 4; ;
Handmade toilet soap, 100 g bars; 340111; 500; 110; 6; ;
Women's quartz wristwatch, stainless steel case, leather strap; 910211; 9000; 80; 1; 91021100;
Sterling silver necklace with pendant; 711311; 7500; 20; 2; 71131100;
Sunglasses with plastic frames, UV400 lenses; 900410; 2500; 40; 2; 90041091;
Silicone protective case for mobile phone; 392690; 900; 40; 3; 39269097;
Yoga mat of thermoplastic elastomer, 6 mm; 950691; 2500; 900; 1; ;
Acoustic guitar, six strings, spruce top; 920290; 15000; 2600; 1; 92029030;
Nylon dog collar with metal buckle; 420100; 1000; 80; 3; ;
Replacement ink cartridge for inkjet printer; 844399; 2000; 80; 4; ;
Resin bicycle disc brake pads, one pair; 871494; 800; 50; 4; ;
""")
GOODS_BY_HS: dict[str, tuple[int, ...]] = {}
for _n, _g in enumerate(GOODS):
    GOODS_BY_HS[_g.hs] = (*GOODS_BY_HS.get(_g.hs, ()), _n)

DOCUMENTS = (
    "Signed employment contract, paper documents",
    "Printed academic transcripts and diploma copy",
    "Completed visa application forms, paper",
    "Business correspondence letters, paper",
    "Certified copies of court filings, printed",
    "Printed bank statements",
    "Notarised power of attorney, paper original",
)

#: The CN 22/CN 23 item categories (their draw weights are in :mod:`connector.sample`).
CATEGORIES = (
    "SALE_OF_GOODS", "GIFT", "DOCUMENTS", "COMMERCIAL_SAMPLE", "RETURNED_GOODS", "OTHER",
)  # fmt: skip
#: S10 service indicators for letters and small packets, and for parcels (above 2 kg).
SERVICES_LETTER = ("RR", "RA", "RB", "RD", "LX", "LA", "LB", "UA", "UB", "EE", "EA", "VV")
SERVICES_PARCEL = ("CP", "CA", "CB", "CC", "EE", "EM", "EA")
#: Airlines that may carry mail from any country, besides its own carriers.
INTERNATIONAL_CARRIERS = ("TK", "QR", "CV")
#: Letters for the inward part of GB postcodes and the suffix of NL postcodes.
GB_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
NL_LETTERS = "ABCDEGHJKLMNPRTVWXZ"
