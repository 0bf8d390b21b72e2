"""Loading the check configuration: shipped defaults, errors naming file and line, reloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connector import checks_loader
from connector.core.checks import CheckName
from connector.core.inbound import validate_item_batch
from connector.errors import ConfigurationError

ITEMS = Path(__file__).parents[2] / "data" / "checks" / "items.xml"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped configuration."""
    target = tmp_path / "checks"
    shutil.copytree(checks_loader.default_checks_dir(), target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_configuration_loads_once() -> None:
    """The default configuration runs every check and is built once per process."""
    config = checks_loader.default_check_config()
    assert config is checks_loader.default_check_config()
    assert config.enabled == frozenset(CheckName)
    assert config.nomenclature.edition == "HS 2022"
    assert len(config.screening.parties) == 15
    assert config.screening.settings.reject_threshold == 95
    assert (checks_loader.default_checks_dir() / "denied_parties.csv").is_file()
    assert checks_loader.default_hs_file().stat().st_size < 1_000_000


def test_findings_for_report_uses_the_default_configuration() -> None:
    """The CLI entry point gives the findings of the shipped configuration."""
    findings = checks_loader.findings_for_report(validate_item_batch(ITEMS.read_bytes()))
    assert {f.code for f in findings} >= {"party_denied", "hs_code_unknown"}


def test_overrides_of_enabled_checks_and_list(config_dir: Path, tmp_path: Path) -> None:
    """``enabled`` and ``list_file`` override the files."""
    other = tmp_path / "other.csv"
    other.write_text("id,schema,name\nx-1,Person,Someone Else\n", encoding="utf-8")
    config = checks_loader.load_check_config(config_dir, enabled={CheckName.HS}, list_file=other)
    assert config.enabled == {CheckName.HS}
    assert [entry.id for entry in config.screening.parties.entries] == ["x-1"]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("checks.toml", "[hs]", "[hs", r"checks\.toml: not valid TOML: .*line 8"),
        ("checks.toml", "reject_threshold = 95 ", "reject_threshold = \"high\" ",
         r"checks\.toml: line 33: parties\.reject_threshold: expected a number, got 'high'"),
        ("checks.toml", "review_threshold = 85 ", "review_threshold = 99 ",
         r"checks\.toml: line 24: parties: review_threshold must not be above reject_threshold"),
        ("checks.toml", "suggestions = 3", "suggestions = 3\nsugestions = 4",
         r"checks\.toml: line 14: hs\.sugestions: unknown key"),
        ("checks.toml", 'enabled = ["hs"', 'enabled = ["sanctions"',
         r"checks\.toml: line 6: enabled: 'sanctions' is not a valid CheckName"),
        ("checks.toml", 'vague_severity = "warning"', 'vague_severity = "fatal"',
         r"checks\.toml: line 18: descriptions\.vague_severity: 'fatal' is not a valid Severity"),
        ("checks.toml", 'list_file = "denied_parties.csv"', 'list_file = "missing.csv"',
         r"missing\.csv: file not found"),
        ("checks.toml", 'address_screening = "evidence"', 'address_screening = "some"',
         r"checks\.toml: line \d+: parties\.address_screening: 'some' is not a valid"),
        ("prohibited.toml", 'action = "review"', 'action = "block"',
         r"prohibited\.toml: line 55: rule\[4\]\.action: 'block' is not a valid Action"),
        ("prohibited.toml", 'hs_prefixes = ["93"]', 'hs_prefixes = ["9x"]',
         r"prohibited\.toml: line 23: rule\[0\]\.hs_prefixes: '9x' is not 2 to 10 digits"),
        ("prohibited.toml", 'destinations = ["IN"]', 'destinations = ["India"]',
         r"prohibited\.toml: line 72: rule\[6\]\.destinations: 'India' is not an ISO"),
        ("descriptions.toml", '"03" = [', '"3" = [',
         r"descriptions\.toml: line 71: chapters\.3: an HS chapter is two digits"),
        ("names.toml", "legal_forms = [", "legal_form = [",
         r"names\.toml: line 6: legal_form: unknown key"),
        ("denied_parties.csv", "id,schema,name,", "id,schema,fullname,",
         r"denied_parties\.csv: line 1: missing column\(s\) name"),
        ("denied_parties.csv", "fict-company-0002,", "fict-person-0001,",
         r"denied_parties\.csv: line 3: id 'fict-person-0001' already on line 2"),
        ("denied_parties.csv", "Person,Zahir Khayali al-Mithali,", "Person,,",
         r"denied_parties\.csv: line 4: an entry needs an id and a name"),
    ],
)  # fmt: skip
def test_configuration_errors_name_file_and_line(
    config_dir: Path, file: str, old: str, new: str, expected: str
) -> None:
    """A faulty file stops loading with a message naming the file, line and key."""
    _edit(config_dir / file, old, new)
    with pytest.raises(ConfigurationError, match=expected):
        checks_loader.load_check_config(config_dir)


def test_nomenclature_file_errors_name_the_line(config_dir: Path, tmp_path: Path) -> None:
    """A replacement HS file is checked row by row."""
    hs = tmp_path / "hs.csv"
    hs.write_text("# Edition: HS 2028\ncode,description\n61,Apparel\n6109x,T-shirts\n")
    _edit(config_dir / "checks.toml", 'nomenclature_file = ""', f'nomenclature_file = "{hs}"')
    with pytest.raises(ConfigurationError, match=r"hs\.csv: line 4: expected a 2, 4 or 6-digit"):
        checks_loader.load_check_config(config_dir)
    hs.write_text("# Edition: HS 2028\ncode,description\n61,Apparel\n610910,T-shirts\n")
    config = checks_loader.load_check_config(config_dir)
    assert (config.nomenclature.edition, len(config.nomenclature)) == ("HS 2028", 1)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_list_is_reloaded_when_its_file_changes(config_dir: Path) -> None:
    """After ``reload_seconds`` a changed list is loaded; a broken one keeps the old list."""
    clock = _Clock()
    source = checks_loader.CheckConfigSource(config_dir, clock=clock)
    first = source.current()
    assert source.list_path == config_dir / "denied_parties.csv"
    listed = first.screening.parties
    assert listed.match_name("Cornelius Nobody") is None

    with source.list_path.open("a", encoding="utf-8") as out:
        out.write("fict-person-0099,Person,Cornelius Nobody,,,,,,,,,demo,,,\n")
    clock.now += 30  # before reload_seconds (60): no look at the file
    assert source.current() is first
    clock.now += 31
    second = source.current()
    assert second is not first
    assert second.screening.parties.match_name("Cornelius Nobody") is not None
    assert second.nomenclature is first.nomenclature  # only the list is rebuilt
    assert source.refresh() is False  # unchanged since

    source.list_path.write_text("id,schema\nbroken,Person\n", encoding="utf-8")
    assert source.refresh() is False
    assert source.current() is second
    assert source.last_error is not None
    assert "missing column(s) name" in source.last_error.message
