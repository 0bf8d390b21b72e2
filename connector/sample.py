"""Realistic, reproducible item batches (``urn:ead-connector:item-batch:1``) with seeded faults.

:func:`generate_batch` is pure: no I/O, no clock and no global random state. Everything,
including the batch id and ``CreatedAt``, comes from ``random.Random(seed)``, so the same
arguments always give the same bytes.

Valid items are schema-valid and keep every business rule of :mod:`connector.core.rules`:
S10 ids with the right check digit and the operator's country, ISO countries and currencies,
line currencies equal to the item's, ``TotalValue`` equal to the sum of the line values,
``GrossWeight`` above the sum of the net weights, HS codes (chapters 01-97 except 77) on every
line except for DOCUMENTS, IOSS numbers of the form IM + EU numeric country code + 7 digits,
and the transport destination equal to the addressee's country.

A faulty item carries exactly one fault, and :class:`SeededFault` names the code validation
must report for it. Amounts are kept in minor units and weights in grams (integers), so sums
are exact and every value is written with exactly 2 (amounts) or 3 (kilograms) decimals.
"""

# The reference data is deliberately written in Cyrillic and Greek script too.
# ruff: noqa: RUF001
from __future__ import annotations

import math
import random
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TypeVar

from lxml import etree

__all__ = [
    "FAULT_CODES",
    "NAMESPACE",
    "RULE_FAULT_CODES",
    "SCHEMA_FAULT_CODES",
    "SampleBatch",
    "SeededFault",
    "generate_batch",
]

NAMESPACE = "urn:ead-connector:item-batch:1"

#: Faults that leave the item schema-valid and break one business rule.
RULE_FAULT_CODES: tuple[str, ...] = (
    "s10_check_digit",
    "country_unknown",
    "currency_unknown",
    "currency_mismatch",
    "value_total_mismatch",
    "weight_exceeds_gross",
    "duplicate_item_id",
    "ioss_invalid",
    "hs_code_missing",
    "hs_chapter_unknown",
    "destination_mismatch",
)
#: Faults that make the item schema-invalid.
SCHEMA_FAULT_CODES: tuple[str, ...] = (
    "schema_pattern",
    "schema_enumeration",
    "schema_missing_element",
    "schema_unexpected_element",
    "schema_value",
)
#: Every fault kind :func:`generate_batch` can seed, by the code validation must report.
FAULT_CODES: tuple[str, ...] = RULE_FAULT_CODES + SCHEMA_FAULT_CODES

MAX_ITEMS = 10_000
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


@dataclass(frozen=True, slots=True)
class SeededFault:
    """One deliberate fault: the item at ``index`` (0-based) must be reported with ``code``."""

    index: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """A generated item batch and the faults seeded in it (sorted by index)."""

    xml: bytes
    batch_id: str
    operator_id: str
    item_count: int
    faults: tuple[SeededFault, ...]


# --- reference data -------------------------------------------------------------------------
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
class _City:
    name: str
    subdivision: str | None
    low: int
    high: int
    streets: tuple[str, ...]
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class _Country:
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
    cities: tuple[_City, ...]
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
) -> _Country:
    default_streets = tuple(streets.split("|")) if streets else ()
    built = []
    for n, city in enumerate(cities):
        own = tuple(city[4].split("|")) if len(city) == 5 else default_streets
        built.append(
            _City(
                city[0],
                city[1] or None,
                city[2],
                city[3],
                own,
                prefixes[n] if prefixes else "",
            )
        )
    return _Country(
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
_COUNTRIES: tuple[_Country, ...] = (
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
_BY_CODE = {country.code: country for country in _COUNTRIES}

#: Relative weight of each country as a destination (e-commerce flows lean to US/EU/GB).
_DESTINATION_WEIGHT = {
    "US": 14, "GB": 8, "DE": 8, "FR": 6, "CN": 4, "JP": 4, "KR": 3, "RU": 3, "UA": 3, "GR": 3,
    "IL": 3, "AE": 3, "EG": 2, "IN": 3, "BR": 3, "ES": 5, "IT": 5, "PL": 4, "NL": 4, "CH": 4,
}  # fmt: skip

#: Operator ids of the designated operators, by country.
_OPERATORS = {
    "DE": "DE-DPAG", "FR": "FR-LAPOSTE", "GB": "GB-ROYALMAIL", "US": "US-USPS",
    "CN": "CN-CHINAPOST", "JP": "JP-JAPANPOST", "KR": "KR-KOREAPOST", "RU": "RU-RUSSIANPOST",
    "UA": "UA-UKRPOSHTA", "GR": "GR-ELTA", "IL": "IL-ISRAELPOST", "AE": "AE-EMIRATESPOST",
    "EG": "EG-EGYPTPOST", "IN": "IN-INDIAPOST", "BR": "BR-CORREIOS", "ES": "ES-CORREOS",
    "IT": "IT-POSTEITALIANE", "PL": "PL-POCZTAPOLSKA", "NL": "NL-POSTNL", "CH": "CH-SWISSPOST",
}  # fmt: skip

#: ISO 3166-1 numeric codes of the EU member states (the IOSS number's country part).
_EU_NUMERIC = (
    "040", "056", "100", "191", "196", "203", "208", "233", "246", "250", "276", "300", "348",
    "372", "380", "428", "440", "442", "470", "528", "616", "620", "642", "703", "705", "724",
    "752",
)  # fmt: skip
_EU_ALPHA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})  # fmt: skip

#: Units of each currency per euro (rounded, for plausible declared values only).
_PER_EUR = {
    "EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CNY": 7.8, "JPY": 160.0, "KRW": 1450.0, "RUB": 100.0,
    "UAH": 44.0, "ILS": 4.0, "AED": 3.97, "EGP": 52.0, "INR": 90.0, "BRL": 5.9, "PLN": 4.3,
    "CHF": 0.95,
}  # fmt: skip
_WHOLE_UNITS = frozenset({"JPY", "KRW"})

#: Where goods are made, besides the sender's country (all ISO 3166-1 codes).
_MAKERS = ("CN", "CN", "CN", "VN", "BD", "TR", "IN", "TW", "TH", "IT", "DE", "JP", "KR", "US", "PT")


@dataclass(frozen=True, slots=True)
class _Goods:
    description: str
    hs: str
    value_eur_cents: int
    grams: int
    max_quantity: int
    eu_code: str  # EU Combined Nomenclature (8 digits), or ""
    us_code: str  # US HTS (10 digits), or ""


def _goods(spec: str) -> tuple[_Goods, ...]:
    out = []
    for row in spec.strip().splitlines():
        desc, hs, value, grams, qty, eu, us = (part.strip() for part in row.split(";"))
        out.append(_Goods(desc, hs, int(value), int(grams), int(qty), eu, us))
    return tuple(out)


#: Goods: description; HS 6; unit value (euro cents); unit weight (g); max qty; EU CN; US HTS.
_GOODS = _goods("""
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
_GOODS_BY_HS: dict[str, tuple[int, ...]] = {}
for _n, _g in enumerate(_GOODS):
    _GOODS_BY_HS[_g.hs] = (*_GOODS_BY_HS.get(_g.hs, ()), _n)

_DOCUMENTS = (
    "Signed employment contract, paper documents",
    "Printed academic transcripts and diploma copy",
    "Completed visa application forms, paper",
    "Business correspondence letters, paper",
    "Certified copies of court filings, printed",
    "Printed bank statements",
    "Notarised power of attorney, paper original",
)

_CATEGORIES = (
    "SALE_OF_GOODS", "GIFT", "DOCUMENTS", "COMMERCIAL_SAMPLE", "RETURNED_GOODS", "OTHER",
)  # fmt: skip
_CATEGORY_CUM = tuple(accumulate((55, 20, 7, 7, 6, 5)))
_LINE_COUNT_CUM = tuple(accumulate((50, 25, 13, 7, 5)))
_SERVICES_LETTER = ("RR", "RA", "RB", "RD", "LX", "LA", "LB", "UA", "UB", "EE", "EA", "VV")
_SERVICES_PARCEL = ("CP", "CA", "CB", "CC", "EE", "EM", "EA")
_INTERNATIONAL_CARRIERS = ("TK", "QR", "CV")

_UNKNOWN_COUNTRIES = ("QQ", "XZ", "ZZ", "QM", "XY")  # unassigned / user-assigned in ISO 3166-1
_UNKNOWN_CURRENCIES = ("QQQ", "XYZ", "ZZZ", "EUX")  # not in ISO 4217
_BAD_CHAPTERS = ("00", "77", "98", "99")
_BAD_CATEGORIES = ("PRESENT", "MIXED_CONTENT", "MERCHANDISE")
_GB_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_NL_LETTERS = "ABCDEGHJKLMNPRTVWXZ"
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


# --- the item model the generator fills, mutates (faults) and renders ---------------------


@dataclass(slots=True)
class _Party:
    name: str | None
    streets: list[str]
    city: str
    postcode: str | None
    subdivision: str | None
    country: str
    email: str | None = None
    phone: str | None = None
    eori: str | None = None


@dataclass(slots=True)
class _Line:
    description: str
    quantity: int
    grams: int
    value: int  # minor units
    currency: str
    hs: str | None
    origin: str


@dataclass(slots=True)
class _Item:
    item_id: str
    category: str
    posting_date: str
    office: str | None
    sender: _Party
    addressee: _Party
    gross_grams: int
    total: int  # minor units
    currency: str
    postage: int | None
    insured: int | None
    ioss: str | None
    importer_eori: str | None
    lines: list[_Line]
    departure: str
    airport: str | None
    departure_time: str | None
    destination: str
    carrier: str | None
    flight: str | None
    receptacle: str | None
    comments: str | None
    gross_text: str | None = None  # overrides the formatted gross weight (schema_value fault)
    colour: str | None = None  # an element the schema does not know (unexpected element fault)


def _s10_check(serial: str) -> int:
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return 0 if check == 10 else 5 if check == 11 else check


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _kg(grams: int) -> str:
    return f"{grams // 1000}.{grams % 1000:03d}"


# --- generation ----------------------------------------------------------------------------

_T = TypeVar("_T")


class _Rng:
    """Fast draws from one ``random.Random`` (``randint``/``choice`` cost ~1 us each in Python)."""

    __slots__ = ("random",)

    def __init__(self, base: random.Random) -> None:
        self.random = base.random

    def between(self, low: int, high: int) -> int:
        """An integer in ``low..high`` (both included)."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[int(self.random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def weighted(self, cumulative: Sequence[int]) -> int:
        """An index drawn with the given cumulative weights."""
        return bisect_right(cumulative, self.random() * cumulative[-1])


class _Generator:
    """Builds the items of one batch from one random stream."""

    def __init__(self, rng: _Rng, country: _Country, created: datetime) -> None:
        self.rng = rng
        self.origin = country
        self.created = created
        self.year = created.year
        destinations = [
            c.code
            for c in _COUNTRIES
            if c.code != country.code and not (country.eu and c.eu)  # no intra-EU customs
        ]
        self.destinations = tuple(destinations)
        self.destination_cum = tuple(accumulate(_DESTINATION_WEIGHT[c] for c in destinations))
        self.eu_destinations = tuple(c.code for c in _COUNTRIES if c.eu and c.code != country.code)
        self.posting_dates = tuple(
            (created - timedelta(days=d)).date().isoformat() for d in range(4)
        )
        self.company_addresses: dict[str, tuple[list[str], _City, str | None]] = {}
        self.dispatches: dict[tuple[str, str], int] = {}
        self.receptacle_weights: dict[tuple[str, str, int], int] = {}

    # -- parties

    def _postcode(self, country: _Country, city: _City) -> str | None:
        rng = self.rng
        kind = country.postcode
        if kind == "none":
            return None
        value = rng.between(city.low, city.high)
        if kind == "n5":
            return f"{value:05d}"
        if kind in ("n4", "n6", "n7"):
            return f"{value:0{kind[1]}d}"
        if kind == "jp":
            return f"{value:03d}-{rng.between(0, 9999):04d}"
        if kind == "br":
            return f"{value:05d}-{rng.between(0, 999):03d}"
        if kind == "pl":
            return f"{value // 1000:02d}-{value % 1000:03d}"
        if kind == "gr":
            return f"{value // 100:03d} {value % 100:02d}"
        if kind == "nl":
            return f"{value:04d} {rng.pick(_NL_LETTERS)}{rng.pick(_NL_LETTERS)}"
        # gb: outward code (area + district), inward code (sector + unit)
        inward = f"{rng.between(1, 9)}{rng.pick(_GB_LETTERS)}{rng.pick(_GB_LETTERS)}"
        return f"{city.prefix}{value} {inward}"

    def _address(self, country: _Country) -> tuple[list[str], _City, str | None]:
        rng = self.rng
        city = rng.pick(country.cities)
        street = country.street_format.format(
            street=rng.pick(city.streets),
            n=rng.between(1, 180),
            n4=rng.between(1, 9899),
            a=rng.between(1, 9),
            b=rng.between(1, 30),
            c=rng.between(1, 20),
            apt=rng.between(1, 140),
        )
        streets = [street]
        if country.extra_line == "ae":
            streets.append(f"ص.ب. {rng.between(1000, 99999)}")
        elif country.extra_line == "us" and rng.chance(0.25):
            streets.append(f"Apt {rng.between(1, 40)}{rng.pick('ABCDEF')}")
        return streets, city, self._postcode(country, city)

    def _party(self, country: _Country, *, company: bool, contact: float) -> _Party:
        rng = self.rng
        eori = None
        if company:
            name, slug = rng.pick(country.companies)
            local = rng.pick(("info", "orders", "sales", "export"))
            domain = f"{slug}.{country.tld}"
            if country.eu and rng.chance(0.5):
                eori = f"{country.code}{rng.between(10**11, 10**12 - 1)}"
        else:
            female = rng.chance(0.5)
            given, given_latin = rng.pick(country.women if female else country.men)
            surname = rng.pick(country.surnames)
            family = surname[1] if female else surname[0]
            family_latin = surname[3] if female else surname[2]
            name = country.name_format.format(g=given, s=family)
            local = f"{given_latin}.{family_latin}".lower().replace(" ", "")
            if rng.chance(0.4):
                local += str(rng.between(1, 99))
            domain = rng.pick(country.mail)
        if company:  # a business keeps one address across the batch
            known = self.company_addresses.get(name)
            if known is None:
                known = self.company_addresses[name] = self._address(country)
            streets, city, postcode = known
        else:
            streets, city, postcode = self._address(country)
        party = _Party(name, list(streets), city.name, postcode, city.subdivision, country.code)
        party.eori = eori
        if rng.chance(contact):
            party.email = f"{local}@{domain}"
        if rng.chance(contact):
            party.phone = f"+{country.calling} {rng.between(20, 999)} {rng.between(1000, 9999999)}"
        return party

    # -- contents

    def _money(self, eur_cents: float, currency: str) -> int:
        minor = round(eur_cents * _PER_EUR[currency])
        if currency in _WHOLE_UNITS:
            minor = max(100, round(minor, -2))
        return max(1, minor)

    def _goods_lines(self, category: str, destination: str, currency: str) -> list[_Line]:
        rng = self.rng
        count = 1 + rng.weighted(_LINE_COUNT_CUM)
        chosen: list[_Goods] = []
        specialties = self.origin.specialties
        while len(chosen) < count:
            if specialties and rng.chance(0.35):
                goods = _GOODS[rng.pick(_GOODS_BY_HS[rng.pick(specialties)])]
            else:
                goods = rng.pick(_GOODS)
            if goods not in chosen:
                chosen.append(goods)
        lines = []
        gift = category in ("GIFT", "OTHER")
        sender = self.origin.code
        for goods in chosen:
            quantity = 1 if rng.chance(0.6) else rng.between(1, goods.max_quantity)
            if gift:
                quantity = min(quantity, 2)
            unit = self._money(goods.value_eur_cents * rng.uniform(0.7, 1.3), currency)
            grams = max(1, round(quantity * goods.grams * rng.uniform(0.85, 1.15)))
            hs = goods.hs
            if rng.chance(0.25):
                if destination in _EU_ALPHA and goods.eu_code:
                    hs = goods.eu_code
                elif destination == "US" and goods.us_code:
                    hs = goods.us_code
            roll = rng.random()
            if sender == "CN" or roll < 0.35:
                origin = sender
            elif roll < 0.7:
                origin = "CN"
            else:
                origin = rng.pick(_MAKERS)
            lines.append(
                _Line(goods.description, quantity, grams, quantity * unit, currency, hs, origin)
            )
        return lines

    def _document_lines(self, currency: str) -> list[_Line]:
        rng = self.rng
        first = rng.between(0, len(_DOCUMENTS) - 1)
        picks = [first] if rng.chance(0.8) else [first, (first + 1) % len(_DOCUMENTS)]
        origin = self.origin.code
        return [
            _Line(_DOCUMENTS[n], rng.between(1, 3), rng.between(15, 250), 0, currency, None, origin)
            for n in picks
        ]

    # -- item

    def item(self, serial: int, kind: str | None) -> _Item:
        rng = self.rng
        origin = self.origin
        category = _CATEGORIES[rng.weighted(_CATEGORY_CUM)]
        if category == "DOCUMENTS" and kind in ("hs_code_missing", "hs_chapter_unknown"):
            category = "SALE_OF_GOODS"
        destination = self.destinations[rng.weighted(self.destination_cum)]
        if kind == "ioss_invalid" and not origin.eu:
            destination = rng.pick(self.eu_destinations)
        target = _BY_CODE[destination]
        currency = origin.currency
        business = category in ("SALE_OF_GOODS", "COMMERCIAL_SAMPLE")
        sender = self._party(origin, company=business and rng.chance(0.8), contact=0.6)
        addressee = self._party(target, company=category == "RETURNED_GOODS", contact=0.5)
        if category == "DOCUMENTS":
            lines = self._document_lines(currency)
        else:
            lines = self._goods_lines(category, destination, currency)
        total = sum(line.value for line in lines)
        net = sum(line.grams for line in lines)
        if category == "DOCUMENTS":
            gross = net + rng.between(10, 40)
        else:
            gross = net + max(30, round(net * rng.uniform(0.05, 0.2)))
        service = rng.pick(_SERVICES_PARCEL if gross > 2000 else _SERVICES_LETTER)
        digits = f"{serial:08d}"
        item_id = f"{service}{digits}{_s10_check(digits)}{origin.code}"
        total_eur = total / 100 / _PER_EUR[currency]
        postage = insured = None
        if rng.chance(0.5):
            postage = self._money(300 + gross * (0.8 if gross > 2000 else 1.5), currency)
        if service[0] == "V" or (service[0] in "CE" and rng.chance(0.15)):
            whole = 100 * (10 if currency not in _WHOLE_UNITS else 1000)
            insured = max(whole, -(-total // whole) * whole)
        ioss = importer_eori = None
        if destination in _EU_ALPHA and not origin.eu:
            if category == "SALE_OF_GOODS" and total_eur <= 150 and rng.chance(0.6):
                ioss = f"IM{rng.pick(_EU_NUMERIC)}{rng.between(0, 10**7 - 1):07d}"
            if rng.chance(0.08):
                importer_eori = f"{destination}{rng.between(10**11, 10**12 - 1)}"
        comments = None
        roll = rng.random()
        if category == "SALE_OF_GOODS" and roll < 0.5:
            comments = f"Invoice INV-{self.year}-{rng.between(1, 99999):05d}"
        elif category == "COMMERCIAL_SAMPLE" and roll < 0.6:
            comments = f"Pro forma invoice PF-{self.year}-{rng.between(1, 9999):04d}"
        elif category == "RETURNED_GOODS" and roll < 0.8:
            comments = f"Return of goods, RMA-{rng.between(10000, 99999)}"
        elif roll < 0.05:
            comments = f"Certificate of origin CO-{origin.code}-{rng.between(100000, 999999)}"
        hub = rng.pick(origin.hubs)
        carrier = rng.pick(origin.carriers if rng.chance(0.75) else _INTERNATIONAL_CARRIERS)
        receptacle = self._receptacle(origin.code, hub, target, service, insured is not None)
        departure_time = flight = None
        if rng.chance(0.9):
            departs = self.created + timedelta(minutes=rng.between(120, 2400))
            departure_time = departs.isoformat() + "Z"
            flight = f"{carrier}{rng.between(1, 9899)}"
        return _Item(
            item_id=item_id,
            category=category,
            posting_date=rng.pick(self.posting_dates),
            office=f"{origin.code}{hub}{rng.pick('ABC')}" if rng.chance(0.4) else None,
            sender=sender,
            addressee=addressee,
            gross_grams=gross,
            total=total,
            currency=currency,
            postage=postage,
            insured=insured,
            ioss=ioss,
            importer_eori=importer_eori,
            lines=lines,
            departure=origin.code,
            airport=hub,
            departure_time=departure_time,
            destination=destination,
            carrier=carrier if flight else None,
            flight=flight,
            receptacle=receptacle,
            comments=comments,
        )

    def _receptacle(
        self, origin: str, hub: str, target: _Country, service: str, insured: bool
    ) -> str:
        """A UPU S9-style receptacle id (29 characters): offices of exchange, mail category and
        subclass, year digit, dispatch and receptacle numbers, flags, weight in hectograms."""
        rng = self.rng
        subclass = {"E": "EM", "C": "CN"}.get(service[0], "UN")
        key = (target.code, subclass)
        dispatch = self.dispatches.get(key)
        if dispatch is None:
            dispatch = self.dispatches[key] = rng.between(1, 9999)
        number = rng.between(1, 30)
        weight = self.receptacle_weights.get((*key, number))
        if weight is None:
            weight = self.receptacle_weights[(*key, number)] = rng.between(20, 300)
        return (
            f"{origin}{hub}A{target.code}{target.hubs[0]}AA{subclass}{self.year % 10}"
            f"{dispatch:04d}{number:03d}0{int(insured)}{weight:04d}"
        )


# --- faults --------------------------------------------------------------------------------


def _assign_faults(rng: random.Random, items: int, count: int) -> dict[int, str]:
    """Which item gets which fault: every kind in turn, in a shuffled order.

    A duplicate id needs an earlier valid item to copy; where none exists the kind moves to a
    later faulty item, or (when every item is faulty) gives way to another kind.
    """
    if count == 0:
        return {}
    indices = sorted(rng.sample(range(items), count))
    order = list(FAULT_CODES)
    rng.shuffle(order)
    kinds = [order[k % len(order)] for k in range(count)]
    rng.shuffle(kinds)
    faulty = set(indices)
    first_valid = next((i for i in range(items) if i not in faulty), items)
    eligible = {p for p, index in enumerate(indices) if index > first_valid}
    free = [p for p in sorted(eligible) if kinds[p] != "duplicate_item_id"]
    others = [code for code in order if code != "duplicate_item_id"]
    for p, kind in enumerate(kinds):
        if kind == "duplicate_item_id" and p not in eligible:
            if free:
                q = free.pop(rng.randrange(len(free)))
                kinds[p], kinds[q] = kinds[q], kinds[p]
            else:
                kinds[p] = others[p % len(others)]
    return dict(zip(indices, kinds, strict=True))


def _pick_line(rng: _Rng, item: _Item) -> tuple[int, _Line]:
    n = rng.between(0, len(item.lines) - 1)
    return n, item.lines[n]


def _seed_fault(rng: _Rng, item: _Item, kind: str, valid_ids: list[str]) -> str:
    """Break ``item`` in the way ``kind`` names; returns the human description."""
    if kind == "s10_check_digit":
        right = int(item.item_id[10])
        wrong = (right + rng.between(1, 9)) % 10
        item.item_id = f"{item.item_id[:10]}{wrong}{item.item_id[11:]}"
        return f"ItemId {item.item_id!r} has check digit {wrong}; the right one is {right}"
    if kind == "country_unknown":
        n, line = _pick_line(rng, item)
        line.origin = rng.pick(_UNKNOWN_COUNTRIES)
        return f"line {n + 1} OriginCountry {line.origin!r} is not an ISO 3166-1 country"
    if kind == "currency_unknown":
        code = rng.pick(_UNKNOWN_CURRENCIES)
        item.currency = code
        for line in item.lines:
            line.currency = code
        return f"Currency {code!r} (item and lines) is not an ISO 4217 currency"
    if kind == "currency_mismatch":
        n, line = _pick_line(rng, item)
        line.currency = rng.pick([c for c in _PER_EUR if c != item.currency])
        return (
            f"line {n + 1} Currency {line.currency!r} differs from item Currency {item.currency!r}"
        )
    if kind == "value_total_mismatch":
        right = item.total
        item.total += rng.pick((1000, 1, 100, 500, 2500))
        return f"TotalValue {_amount(item.total)} is not the sum of line values {_amount(right)}"
    if kind == "weight_exceeds_gross":
        n, line = _pick_line(rng, item)
        net = sum(each.grams for each in item.lines)
        line.grams += item.gross_grams - net + rng.between(1, 250)
        total = sum(each.grams for each in item.lines)
        return f"net weights add up to {_kg(total)} kg, above GrossWeight {_kg(item.gross_grams)}"
    if kind == "duplicate_item_id":
        item.item_id = rng.pick(valid_ids)
        return f"ItemId {item.item_id!r} repeats the id of an earlier valid item"
    if kind == "ioss_invalid":
        good = f"{rng.pick(_EU_NUMERIC)}{rng.between(0, 10**7 - 1):07d}"
        item.ioss = rng.pick(
            (f"IM{good[:5]}", f"XX{good}", f"IM{good[:9]}", f"IM{good}{rng.between(0, 9)}")
        )
        return f"IossNumber {item.ioss!r} is not IM + 3-digit country code + 7 digits"
    if kind == "hs_code_missing":
        n, line = _pick_line(rng, item)
        line.hs = None
        return f"line {n + 1} of a {item.category} item has no HsCode"
    if kind == "hs_chapter_unknown":
        n, line = _pick_line(rng, item)
        line.hs = rng.pick(_BAD_CHAPTERS) + (line.hs or "000000")[2:]
        return f"line {n + 1} HsCode {line.hs!r} has no HS chapter {line.hs[:2]!r}"
    if kind == "destination_mismatch":
        taken = {item.addressee.country, item.departure}
        item.destination = rng.pick([c.code for c in _COUNTRIES if c.code not in taken])
        return (
            f"Transport DestinationCountry {item.destination!r} is not the addressee's "
            f"country {item.addressee.country!r}"
        )
    if kind == "schema_pattern":
        coded = [line for line in item.lines if line.hs]
        if coded and rng.random() < 0.5:
            line = rng.pick(coded)
            hs = line.hs or ""
            letters = "".join(rng.pick("ABOIS") for _ in range(2))
            line.hs = hs[:2] + letters + hs[4:]
            return f"HsCode {line.hs!r} breaks the pattern [0-9]{{6,10}}"
        item.currency = item.currency.lower()
        for line in item.lines:
            line.currency = item.currency
        return f"Currency {item.currency!r} (item and lines) breaks the pattern [A-Z]{{3}}"
    if kind == "schema_enumeration":
        item.category = rng.pick(_BAD_CATEGORIES)
        return f"Category {item.category!r} is not one of the CN 22/CN 23 categories"
    if kind == "schema_missing_element":
        item.sender.name = None
        return "Sender/Name is missing"
    if kind == "schema_unexpected_element":
        item.colour = rng.pick(("red", "blue", "green"))
        return "unexpected element Colour after Category"
    if kind == "schema_value":
        if rng.random() < 0.5:
            item.gross_text = f"{_kg(item.gross_grams)}{rng.between(1, 9)}"
            return f"GrossWeight {item.gross_text!r} has more than 3 decimals"
        n, line = _pick_line(rng, item)
        line.quantity = 0
        return f"line {n + 1} Quantity '0' is not a positive integer"
    raise AssertionError(kind)  # pragma: no cover


# --- rendering -----------------------------------------------------------------------------
# Items are written as text (one per line) and the document is then parsed and serialized by
# lxml: building ~45 elements per item with SubElement costs about 3x more.


def _esc(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _render_party(out: list[str], tag: str, party: _Party) -> None:
    out.append(f"<{tag}>")
    if party.name is not None:
        out.append(f"<Name>{_esc(party.name)}</Name>")
    out.append("<Address>")
    out.extend(f"<Street>{_esc(street)}</Street>" for street in party.streets)
    out.append(f"<City>{_esc(party.city)}</City>")
    if party.postcode is not None:
        out.append(f"<Postcode>{party.postcode}</Postcode>")
    if party.subdivision is not None:
        out.append(f"<Subdivision>{_esc(party.subdivision)}</Subdivision>")
    out.append(f"<Country>{party.country}</Country></Address>")
    if party.email is not None:
        out.append(f"<Email>{_esc(party.email)}</Email>")
    if party.phone is not None:
        out.append(f"<Phone>{party.phone}</Phone>")
    if party.eori is not None:
        out.append(f"<Eori>{party.eori}</Eori>")
    out.append(f"</{tag}>")


def _render(out: list[str], item: _Item) -> None:
    """Append ``item`` as XML text, elements in the order of the XSD sequences."""
    out.append(f"<Item><ItemId>{item.item_id}</ItemId><Category>{item.category}</Category>")
    if item.colour is not None:
        out.append(f"<Colour>{item.colour}</Colour>")
    out.append(f"<PostingDate>{item.posting_date}</PostingDate>")
    if item.office is not None:
        out.append(f"<OfficeOfOrigin>{item.office}</OfficeOfOrigin>")
    _render_party(out, "Sender", item.sender)
    _render_party(out, "Addressee", item.addressee)
    gross = item.gross_text or _kg(item.gross_grams)
    out.append(
        f"<GrossWeight>{gross}</GrossWeight><TotalValue>{_amount(item.total)}</TotalValue>"
        f"<Currency>{item.currency}</Currency>"
    )
    if item.postage is not None:
        out.append(f"<Postage>{_amount(item.postage)}</Postage>")
    if item.insured is not None:
        out.append(f"<InsuredValue>{_amount(item.insured)}</InsuredValue>")
    if item.ioss is not None or item.importer_eori is not None:
        out.append("<Importer>")
        if item.ioss is not None:
            out.append(f"<IossNumber>{item.ioss}</IossNumber>")
        if item.importer_eori is not None:
            out.append(f"<Eori>{item.importer_eori}</Eori>")
        out.append("</Importer>")
    out.append("<Contents>")
    for line in item.lines:
        hs = f"<HsCode>{line.hs}</HsCode>" if line.hs is not None else ""
        out.append(
            f"<Line><Description>{_esc(line.description)}</Description>"
            f"<Quantity>{line.quantity}</Quantity><NetWeight>{_kg(line.grams)}</NetWeight>"
            f"<Value>{_amount(line.value)}</Value><Currency>{line.currency}</Currency>{hs}"
            f"<OriginCountry>{line.origin}</OriginCountry></Line>"
        )
    out.append(f"</Contents><Transport><DepartureCountry>{item.departure}</DepartureCountry>")
    if item.airport is not None:
        out.append(f"<DepartureAirport>{item.airport}</DepartureAirport>")
    if item.departure_time is not None:
        out.append(f"<DepartureTime>{item.departure_time}</DepartureTime>")
    out.append(f"<DestinationCountry>{item.destination}</DestinationCountry>")
    if item.carrier is not None:
        out.append(f"<Carrier>{item.carrier}</Carrier>")
    if item.flight is not None:
        out.append(f"<FlightNumber>{item.flight}</FlightNumber>")
    if item.receptacle is not None:
        out.append(f"<ReceptacleId>{item.receptacle}</ReceptacleId>")
    out.append("</Transport>")
    if item.comments is not None:
        out.append(f"<Comments>{_esc(item.comments)}</Comments>")
    out.append("</Item>\n")


# --- entry point ---------------------------------------------------------------------------


def _operator_country(operator_id: str) -> _Country | None:
    """The country of a known operator id, or of an id that starts with "CC-" (or "CC_" ...)."""
    for code, known in _OPERATORS.items():
        if known == operator_id:
            return _BY_CODE[code]
    match = re.match(r"([A-Za-z]{2})(?:[-_.:]|$)", operator_id)
    return _BY_CODE.get(match.group(1).upper()) if match else None


def generate_batch(
    items: int,
    *,
    invalid_ratio: float = 0.0,
    seed: int = 0,
    operator_id: str | None = None,
) -> SampleBatch:
    """A realistic item batch of ``items`` items, ``round(items * invalid_ratio)`` of them faulty.

    The same arguments give the same bytes. ``operator_id`` defaults to a designated operator
    chosen by the seed; an id such as ``"DE-POST"`` fixes the sender country (DE), and an id
    without a known country prefix gets a seed-chosen sender country.

    Raises:
        ValueError: ``items`` is not in 1..10000, ``invalid_ratio`` not in 0..1, or
            ``operator_id`` is not an Identifier (1-64 of letters, digits and ``._:-``).
    """
    if isinstance(items, bool) or not isinstance(items, int) or not 1 <= items <= MAX_ITEMS:
        raise ValueError(f"items must be an integer from 1 to {MAX_ITEMS}, got {items!r}")
    ratio = float(invalid_ratio)
    if math.isnan(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"invalid_ratio must be between 0 and 1, got {invalid_ratio!r}")
    if operator_id is not None and not _IDENTIFIER.fullmatch(operator_id):
        raise ValueError(f"operator_id must be 1-64 of A-Z a-z 0-9 . _ : -, got {operator_id!r}")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    country = rng.choice(_COUNTRIES)
    if operator_id is None:
        operator_id = _OPERATORS[country.code]
    else:
        country = _operator_country(operator_id) or country
    created = datetime(2026, 1, 5) + timedelta(minutes=rng.randrange(355 * 24 * 60))
    batch_id = f"{country.code}-{created:%Y%m%d}-{rng.randrange(16**8):08X}"
    faults_by_index = _assign_faults(rng, items, round(items * ratio))

    out = [
        f'<ItemBatch xmlns="{NAMESPACE}"><Header><BatchId>{batch_id}</BatchId>'
        f"<OperatorId>{operator_id}</OperatorId>"
        f"<CreatedAt>{created.isoformat()}Z</CreatedAt></Header><Items>\n"
    ]
    fast = _Rng(rng)
    generator = _Generator(fast, country, created)
    serials = rng.sample(range(10**8), items)
    valid_ids: list[str] = []
    faults: list[SeededFault] = []
    for index in range(items):
        kind = faults_by_index.get(index)
        item = generator.item(serials[index], kind)
        if kind is None:
            valid_ids.append(item.item_id)
        else:
            faults.append(SeededFault(index, kind, _seed_fault(fast, item, kind, valid_ids)))
        _render(out, item)
    out.append("</Items></ItemBatch>")
    root = etree.fromstring("".join(out).encode(), _PARSER)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return SampleBatch(
        xml=xml,
        batch_id=batch_id,
        operator_id=operator_id,
        item_count=items,
        faults=tuple(faults),
    )
