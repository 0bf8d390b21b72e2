"""Denied-party screening: names in any script against the fictional sample list.

Every list entry is FICTIONAL (config/checks/denied_parties.csv); the near misses are common
real-world names that must not match.
"""

# Names are deliberately written in Cyrillic script too.
# ruff: noqa: RUF001
from __future__ import annotations

import random
from dataclasses import replace

import pytest
from unidecode import unidecode

from connector import checks_loader
from connector.core.checks.names import NameNormalizer, score_names, skeleton, to_latin
from connector.core.checks.outcome import Severity
from connector.core.checks.parties import (
    AddressScreening,
    DeniedParty,
    DeniedPartyList,
    Screening,
    ScreeningSettings,
)
from connector.core.checks.subject import PartyView

CONFIG = checks_loader.default_check_config()
SCREENING = CONFIG.screening
LISTED = SCREENING.parties
#: The shipped list with every address screened (``address_screening = "all"``).
SCREEN_ALL = Screening(
    LISTED.with_settings(replace(LISTED.settings, address_screening=AddressScreening.ALL))
)


def _party(
    name: str, address: str = "Hauptstraße 5 München 80331 DE", role: str = "Sender"
) -> PartyView:
    return PartyView(role, name, address, address.rsplit(" ", 1)[-1])


@pytest.mark.parametrize(
    ("name", "entry_id", "code"),
    [
        # Cyrillic, matched after transliteration (entry 0001 is "Ivan Fictitiousovich Testov")
        ("Иван Фиктивович Тестов", "fict-person-0001", "party_denied"),
        ("Иван Тестов", "fict-person-0001", "party_denied"),
        ("IVAN TESTOV", "fict-person-0001", "party_denied"),
        ("Iwan Testow", "fict-person-0001", "party_denied"),  # German transliteration
        ("Ivan Tyestov", "fict-person-0001", "party_possible_match"),  # a typo
        ("ООО «Фиктивный Импорт»", "fict-company-0006", "party_denied"),
        ("Fiktivnyi Import LLC", "fict-company-0006", "party_denied"),
        ("Дмитро Вигаданий", "fict-person-0015", "party_denied"),  # Ukrainian
        # Chinese, written without spaces: compared as one compact string
        ("虚构贸易有限公司", "fict-company-0002", "party_denied"),
        ("Xugou Maoyi Co., Ltd.", "fict-company-0002", "party_denied"),
        ("XUGOU MAOYI", "fict-company-0002", "party_denied"),
        ("王虚构", "fict-person-0007", "party_denied"),
        # Arabic, with the article and without
        ("ظاهر خيالي المثالي", "fict-person-0003", "party_denied"),
        ("ظاهر خيالي", "fict-person-0003", "party_possible_match"),  # the family name left out
        ("Zaher Khayali al Mithali", "fict-person-0003", "party_possible_match"),
        ("حسن وهمي", "fict-person-0014", "party_denied"),
        ("سراب للخدمات اللوجستية", "fict-company-0008", "party_denied"),
        # Latin, with legal forms and parts left out
        ("Phantom Dual Use Components", "fict-company-0004", "party_denied"),
        ("PHANTOM COMPONENTS GMBH", "fict-company-0004", "party_denied"),
        ("Jean Baptiste Imaginaire", "fict-person-0009", "party_denied"),
        ("Maria Ficticia", "fict-person-0010", "party_possible_match"),
        ("Placeholder Optics", "fict-company-0013", "party_possible_match"),
    ],
)
def test_listed_names_match_in_any_script(name: str, entry_id: str, code: str) -> None:
    """Listed names match after transliteration and normalization, with an explanation."""
    problem = SCREENING.judge(_party(name))
    assert problem is not None
    assert (problem.code, problem.detail["entry_id"]) == (code, entry_id)
    assert problem.path == "Sender/Name"
    assert problem.severity is (Severity.ERROR if code == "party_denied" else Severity.WARNING)
    score, threshold = problem.detail["score"], problem.detail["threshold"]
    assert isinstance(score, float)
    assert isinstance(threshold, float)
    assert score >= threshold
    assert entry_id in problem.message
    assert f"{score:g}" in problem.message
    assert problem.detail["dataset"] == "ead_connector_fictional_demo"
    assert problem.detail["list_source"] == "denied_parties.csv"
    assert problem.detail["token_pairs"]


@pytest.mark.parametrize(
    "name",
    [
        "Ivan Petrov",  # shares the first name
        "Иван Петров",
        "Olga Testova",  # a surname like the listed one, another first name
        "Pyotr Fictitiousovich Testov",  # another first name
        "Ivan Fictitiousovich Petrov",  # another surname
        "Тестов",  # the surname alone
        "Wang Wei",  # the most common Chinese name
        "王伟",
        "虚构科技有限公司",  # another fictional company: "Xugou Technology"
        "Xugou Trading Co Ltd",
        "Hassan Ali",
        "حسن علي",
        "Mohammed Ali",
        "Zahir Hassan",
        "Jean-Pierre Imaginaire",
        "Phantom Trading GmbH",
        "ООО «Реальный Импорт»",
        "Дмитро Коваленко",
        "Maria Garcia",
        "Müller Handelsgesellschaft mbH",
    ],
)
def test_near_misses_do_not_match(name: str) -> None:
    """Common names and names sharing one word with a list entry are not flagged."""
    assert LISTED.match_name(name) is None
    assert SCREENING.judge(_party(name)) is None


def test_a_real_sample_batch_has_no_false_matches() -> None:
    """Names and addresses of 3,000 generated items (many scripts) match nothing."""
    from connector.core.checks import check_report
    from connector.core.inbound import validate_item_batch
    from connector.sample import generate_batch

    report = validate_item_batch(generate_batch(3000, seed=21).xml)
    findings = check_report(report, CONFIG)
    assert not [f for f in findings if f.code.startswith("party_")]


@pytest.mark.parametrize(
    ("address", "entry_id"),
    [
        ("Erfundene Straße 7 Berlin 10115 DE", "fict-company-0004"),
        ("Erfundene Str. 7, 10115 Berlin", "fict-company-0004"),
        ("Office 404, Sarab Tower Dubai AE", "fict-person-0003"),
        ("Unit 9, 42 Notreal Lane Manchester M1 1AA GB", "fict-company-0013"),
        ("ул. Вымышленная 1, Москва 101000 RU", "fict-person-0001"),  # Cyrillic spelling
    ],
)
def test_listed_addresses_match_in_full(address: str, entry_id: str) -> None:
    """With every address screened, an unlisted name at a listed address is a warning
    naming the entry and the address; by default addresses only support name matches."""
    party = _party("Klaus Neumann", address, role="Addressee")
    assert SCREENING.judge(party) is None
    problem = SCREEN_ALL.judge(party)
    assert problem is not None
    assert (problem.code, problem.severity) == ("party_address_match", Severity.WARNING)
    assert problem.path == "Addressee/Address"
    assert problem.detail["entry_id"] == entry_id
    assert problem.detail["matched_address"] in problem.message


@pytest.mark.parametrize(
    "address",
    [
        "Erfundene Straße 9 Berlin 10115 DE",  # another house number
        "Hauptstraße 7 Berlin 10115 DE",  # another street
        "Office 404, Tower Bridge House London AE",
        "Sarab Tower Dubai AE",  # no office number
    ],
)
def test_addresses_matched_in_part_pass(address: str) -> None:
    """Every word and number of the listed address must be present."""
    assert LISTED.match_address(address) is None


def test_addresses_support_name_matches() -> None:
    """A matched name's address is compared with the entry's listed addresses."""
    at_listed = SCREENING.judge(_party("Ivan Testov", "1 Vymyshlennaya ulitsa Moskva 101000 RU"))
    assert at_listed is not None
    assert at_listed.detail["listed_address"] == "1 Vymyshlennaya ulitsa, Moskva, 101000"
    assert at_listed.detail["address_score"] == 100.0
    assert "the address matches too" in at_listed.message
    elsewhere = SCREENING.judge(_party("Ivan Testov"))
    assert elsewhere is not None
    assert "the address matches" not in elsewhere.message
    score = elsewhere.detail["address_score"]
    assert isinstance(score, float)
    assert score < 50
    unlisted = SCREENING.judge(_party("Maria Exempla Ficticia"))  # no listed address
    assert unlisted is not None
    assert "address_score" not in unlisted.detail


def test_name_normalization() -> None:
    """Legal forms, titles and the Arabic article go; scripts become Latin tokens."""
    normalizer = NameNormalizer(["GmbH", "Co Ltd", "ООО", "有限公司", "LLC"], ["Dr", "al"])
    assert normalizer.normalize("Phantom Components GmbH").tokens == ("phantom", "components")
    assert normalizer.normalize("ООО «Фиктивный Импорт»").tokens == ("fiktivnyi", "import")
    assert normalizer.normalize("OOO Fiktivny Import").tokens == ("fiktivny", "import")
    assert normalizer.normalize("虚构贸易有限公司").tokens == ("xu", "gou", "mao", "yi")
    assert normalizer.normalize("Xugou Maoyi Co., Ltd.").tokens == ("xugou", "maoyi")
    assert normalizer.normalize("Dr. Zahir al-Mithali").tokens == ("zahir", "mithali")
    arabic = normalizer.normalize("ظاهر المثالي")
    assert arabic.abjad
    assert arabic.tokens == ("zhr", "mthly")
    assert normalizer.normalize("GmbH").tokens == ("gmbh",)  # nothing else left: kept


@pytest.mark.parametrize(
    "text", ["Иван Тестов", "虚构贸易", "ظاهر خيالي", "Ολυμπία", "Jürgen Weiß", "٤٠٤", "plain"]
)
def test_cached_transliteration_equals_unidecode(text: str) -> None:
    """The per-code-point table gives unidecode's result."""
    assert to_latin(text) == unidecode(text)


def test_skeletons_compare_abjad_spellings() -> None:
    """Arabic script (no short vowels) meets a Latin-only entry through consonant skeletons."""
    assert skeleton("muhammad") == skeleton("mohammed") == "mhmd"
    normalizer = NameNormalizer()
    latin = DeniedPartyList(
        [DeniedParty("x-1", "Person", "Zahir Khayali")], normalizer, ScreeningSettings()
    )
    match = latin.match_name("ظاهر خيالي")
    assert match is not None
    assert 85 <= match.result.score < 95  # a possible match, not a denial
    result = score_names(normalizer.normalize("Zahir Khayali"), normalizer.normalize("Zahir"), 80)
    assert result.score < 95  # extra words on one side never reach the reject threshold


def test_thresholds_are_configurable() -> None:
    """Raising the review threshold drops possible matches; lowering reject denies them."""
    entries = [DeniedParty("x-1", "Person", "Ivan Fictitiousovich Testov", ("Ivan Testov",))]
    normalizer = NameNormalizer()
    strict = Screening(DeniedPartyList(entries, normalizer, ScreeningSettings(review_threshold=95)))
    assert strict.judge(_party("Ivan Tyestov")) is None
    lax = Screening(
        DeniedPartyList(
            entries, normalizer, ScreeningSettings(reject_threshold=90, review_threshold=80)
        )
    )
    problem = lax.judge(_party("Ivan Tyestov"))
    assert problem is not None
    assert problem.code == "party_denied"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"review_threshold": 96.0}, "must not be above"),
        ({"reject_threshold": 0.0}, "reject_threshold"),
        ({"token_threshold": 120.0}, "token_threshold"),
        ({"address_threshold": -1.0}, "address_threshold"),
    ],
)
def test_bad_thresholds_are_refused(settings: dict[str, float], message: str) -> None:
    """Thresholds are scores in (0, 100], review at most reject."""
    with pytest.raises(ValueError, match=message):
        ScreeningSettings(**settings)


def test_large_lists_go_through_the_prefilter() -> None:
    """With thousands of similar names, the prefilter keeps the right candidate."""
    rng = random.Random(5)
    syllables = ["mo", "ha", "med", "ali", "ras", "kov", "ten", "ser", "gei", "lin", "ma", "ria"]
    entries = [
        DeniedParty(
            f"gen-{n}",
            "Person",
            " ".join("".join(rng.choice(syllables) for _ in range(3)).title() for _ in range(2)),
        )
        for n in range(3000)
    ]
    entries.append(DeniedParty("target", "Person", "Mohamed Alirasov"))
    listed = DeniedPartyList(entries, NameNormalizer(), ScreeningSettings(max_candidates=16))
    assert listed.name_count > 2900
    match = listed.match_name("Mohamed Alirasov")
    assert match is not None
    assert (match.entry.id, match.result.score) == ("target", 100.0)
    assert listed.match_name("Zhang Wei") is None
