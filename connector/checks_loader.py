"""Loads the check configuration and data files once, for the pure checks in the core.

This is the only module of the checks that reads files: ``config/checks/*.toml``, the
denied-party list (OpenSanctions "simple" CSV) and the HS nomenclature shipped in
``connector/data/hs6.csv``. It turns them into the parsed, indexed objects of
:class:`connector.core.checks.CheckConfig`. Every error is a :class:`ConfigurationError`
naming the file and, where it can, the line.

:class:`CheckConfigSource` keeps a configuration current: it reloads the denied-party list
when its file changes (modification time or size), keeping the previous list when the new
file does not load.
"""

from __future__ import annotations

import csv
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import MappingProxyType

import structlog

from connector.core import checks
from connector.core.checks import CheckConfig, CheckName, Finding, Severity
from connector.core.checks.descriptions import DescriptionRules
from connector.core.checks.hs import Nomenclature
from connector.core.checks.names import NameNormalizer
from connector.core.checks.parties import (
    AddressScreening,
    DeniedParty,
    DeniedPartyList,
    Screening,
    ScreeningSettings,
)
from connector.core.checks.prohibited import Action, ArticleRule, ProhibitedRules
from connector.core.inbound import ValidationReport
from connector.errors import ConfigurationError, UnknownCode
from connector.settings import ChecksSettings

__all__ = [
    "OPENSANCTIONS_COLUMNS",
    "CheckConfigSource",
    "configured_checks",
    "default_check_config",
    "default_checks_dir",
    "default_hs_file",
    "findings_for_report",
    "load_check_config",
    "parse_nomenclature",
    "parse_opensanctions_csv",
]

_log = structlog.get_logger("connector.checks")

#: Columns of the OpenSanctions "simple" CSV export; ``id``, ``schema`` and ``name`` are
#: required, the others optional.
OPENSANCTIONS_COLUMNS = (
    "id",
    "schema",
    "name",
    "aliases",
    "birth_date",
    "countries",
    "addresses",
    "identifiers",
    "sanctions",
    "phones",
    "emails",
    "dataset",
    "first_seen",
    "last_seen",
    "last_change",
)
_REQUIRED_COLUMNS = ("id", "schema", "name")


def default_checks_dir() -> Path:
    """The check configuration shipped with the package.

    ``connector/_checks`` in an installed wheel (when the build force-includes
    ``config/checks`` there), the repository's ``config/checks`` in a checkout.
    """
    package = Path(__file__).resolve().parent
    installed = package / "_checks"
    if installed.is_dir():
        return installed
    return package.parent / "config" / "checks"


def default_hs_file() -> Path:
    """The HS 2022 nomenclature shipped in the package."""
    return Path(__file__).resolve().parent / "data" / "hs6.csv"


# --- small readers that name the file and line of every fault ------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot be read: {exc}") from exc


def _read_toml(path: Path) -> tuple[dict[str, object], str]:
    text = _read_text(path)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:  # its message gives line and column
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc


def _line_of(text: str, header: str | None, occurrence: int, key: str | None) -> int | None:
    """Best-effort line number of ``key`` in the ``occurrence``-th table ``header``."""
    current: str | None = None
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            current = line.split("#", 1)[0].strip()
            seen[current] = seen.get(current, 0) + 1
            if key is None and current == header and seen[current] == occurrence + 1:
                return number
            continue
        if current != header or (header is not None and seen.get(header) != occurrence + 1):
            continue
        if key is not None:
            name = line.split("=", 1)[0].strip().strip('"').strip("'")
            if "=" in line and name == key:
                return number
    return None


class _Table:
    """Typed access to one TOML table; faults name the file, line and dotted key."""

    def __init__(
        self,
        data: Mapping[str, object],
        path: Path,
        text: str,
        name: str = "",
        header: str | None = None,
        occurrence: int = 0,
    ) -> None:
        self.data = data
        self.path = path
        self.text = text
        self.name = name
        self.header = header
        self.occurrence = occurrence
        self.used: set[str] = set()

    def error(self, key: str | None, message: str) -> ConfigurationError:
        line = _line_of(self.text, self.header, self.occurrence, key)
        where = f"{self.path}" + (f": line {line}" if line else "")
        dotted = ".".join(part for part in (self.name, key or "") if part)
        return ConfigurationError(
            f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}"
        )

    def _get(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key)

    def text_value(self, key: str, default: str | None = None) -> str:
        value = self._get(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected text, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        return float(value)

    def words(self, key: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of text, got {value!r}")
        return tuple(value)

    def table(self, key: str) -> _Table:
        value = self._get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {value!r}")
        name = f"{self.name}.{key}" if self.name else key
        return _Table(value, self.path, self.text, name, f"[{name}]")

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "expected an array of tables")
        return [
            _Table(item, self.path, self.text, f"{key}[{n}]", f"[[{key}]]", n)
            for n, item in enumerate(value)
        ]

    def severity(self, key: str, default: Severity) -> Severity:
        value = self.text_value(key, default.value)
        try:
            return Severity(value)
        except UnknownCode as exc:
            raise self.error(key, exc.message) from None

    def done(self) -> None:
        """Refuse keys nobody asked for (a typo must not be silently ignored)."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


# --- the data files --------------------------------------------------------------------------


def parse_nomenclature(text: str, source: str, max_suggestions: int = 3) -> Nomenclature:
    """The nomenclature: ``#`` comment lines (one ``# Edition: ...``), then code,description CSV."""
    edition = "HS"
    body_start = 0
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if not line.startswith("#"):
            body_start = number
            break
        label, _, value = line[1:].partition(":")
        if label.strip().lower() == "edition" and value.strip():
            edition = value.strip()
    reader = csv.reader(lines[body_start:])
    header = next(reader, None)
    if header != ["code", "description"]:
        raise ConfigurationError(
            f"{source}: line {body_start + 1}: expected the header code,description, got {header}"
        )
    rows: list[tuple[str, str]] = []
    for row in reader:
        if len(row) != 2 or not row[0].isdigit() or len(row[0]) not in (2, 4, 6):
            raise ConfigurationError(
                f"{source}: line {body_start + reader.line_num}: expected a 2, 4 or 6-digit "
                f"code and a description, got {row}"
            )
        rows.append((row[0], row[1]))
    if not any(len(code) == 6 for code, _ in rows):
        raise ConfigurationError(f"{source}: holds no 6-digit subheadings")
    return Nomenclature.from_rows(rows, edition=edition, max_suggestions=max_suggestions)


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (cell or "").split(";") if part.strip())


def parse_opensanctions_csv(text: str, source: str) -> tuple[DeniedParty, ...]:
    """Entries of a list in the OpenSanctions "simple" CSV format."""
    reader = csv.DictReader(text.splitlines(keepends=True))
    columns = reader.fieldnames or []
    missing = [column for column in _REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise ConfigurationError(
            f"{source}: line 1: missing column(s) {', '.join(missing)} of the OpenSanctions "
            f"simple CSV format (found: {', '.join(columns) or 'nothing'})"
        )
    entries: list[DeniedParty] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise ConfigurationError(f"{source}: line {line}: more cells than columns")
            entry_id = (row.get("id") or "").strip()
            name = (row.get("name") or "").strip()
            if not entry_id or not name:
                raise ConfigurationError(f"{source}: line {line}: an entry needs an id and a name")
            if entry_id in seen:
                raise ConfigurationError(
                    f"{source}: line {line}: id {entry_id!r} already on line {seen[entry_id]}"
                )
            seen[entry_id] = line
            entries.append(
                DeniedParty(
                    id=entry_id,
                    schema=(row.get("schema") or "").strip(),
                    name=name,
                    aliases=_split(row.get("aliases")),
                    countries=tuple(c.upper() for c in _split(row.get("countries"))),
                    addresses=_split(row.get("addresses")),
                    sanctions=(row.get("sanctions") or "").strip(),
                    dataset=(row.get("dataset") or "").strip(),
                )
            )
    except csv.Error as exc:
        raise ConfigurationError(f"{source}: line {reader.line_num}: {exc}") from exc
    return tuple(entries)


# --- the configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ListSpec:
    """What is needed to (re)build the screening index from the list file."""

    path: Path
    list_format: str
    normalizer: NameNormalizer
    address_normalizer: NameNormalizer
    settings: ScreeningSettings
    reload_seconds: float


def _descriptions(path: Path, vague: Severity, contradiction: Severity) -> DescriptionRules:
    data, text = _read_toml(path)
    root = _Table(data, path, text)
    generic: dict[str, str] = {}
    generic_table = root.table("generic")
    for key, hint in generic_table.data.items():
        generic_table.used.add(key)
        if not isinstance(hint, str) or not hint.strip():
            raise generic_table.error(key, "expected a hint (text)")
        for term in key.split("|"):
            if term.strip():
                generic[term.strip().casefold()] = hint.strip()
    chapters: dict[str, set[str]] = {}
    chapter_table = root.table("chapters")
    for chapter in chapter_table.data:
        if not (len(chapter) == 2 and chapter.isdigit()):
            raise chapter_table.error(chapter, "an HS chapter is two digits")
        for keyword in chapter_table.words(chapter):
            chapters.setdefault(keyword.casefold(), set()).add(chapter)
    rules = DescriptionRules(
        generic=MappingProxyType(generic),
        filler=frozenset(w.casefold() for w in root.words("filler")),
        units=frozenset(w.casefold() for w in root.words("units")),
        cut_words=frozenset(w.casefold() for w in root.words("cut_words", ("for",))),
        head_cut_words=frozenset(w.casefold() for w in root.words("head_cut_words", ("for",))),
        chapter_keywords=MappingProxyType({k: frozenset(v) for k, v in chapters.items()}),
        skip_categories=frozenset(root.words("skip_categories")),
        vague_severity=vague,
        contradiction_severity=contradiction,
        default_hint=root.text_value(
            "default_hint", "say what the thing is, what it is made of and what it is for"
        ),
    )
    root.done()
    return rules


def _codes(table: _Table, key: str) -> frozenset[str]:
    codes = table.words(key)
    for code in codes:
        if code != "*" and not (len(code) == 2 and code.isalpha() and code.isupper()):
            raise table.error(key, f"{code!r} is not an ISO 3166-1 alpha-2 code or '*'")
    return frozenset(codes)


def _prohibited(path: Path) -> ProhibitedRules:
    data, text = _read_toml(path)
    root = _Table(data, path, text)
    rules: list[ArticleRule] = []
    ids: set[str] = set()
    for table in root.tables("rule"):
        rule_id = table.text_value("id")
        if rule_id in ids:
            raise table.error("id", f"rule id {rule_id!r} is used twice")
        ids.add(rule_id)
        try:
            action = Action(table.text_value("action"))
        except UnknownCode as exc:
            raise table.error("action", exc.message) from None
        prefixes = table.words("hs_prefixes")
        for prefix in prefixes:
            if not prefix.isdigit() or not 2 <= len(prefix) <= 10:
                raise table.error("hs_prefixes", f"{prefix!r} is not 2 to 10 digits")
        keywords = table.words("keywords")
        if not prefixes and not keywords:
            raise table.error(None, "a rule needs hs_prefixes or keywords")
        destinations = _codes(table, "destinations") or frozenset({"*"})
        rules.append(
            ArticleRule(
                id=rule_id,
                action=action,
                reason=table.text_value("reason"),
                destinations=destinations,
                except_destinations=_codes(table, "except_destinations"),
                hs_prefixes=prefixes,
                keywords=keywords,
                unless=table.words("unless"),
            )
        )
        table.done()
    root.done()
    return ProhibitedRules(tuple(rules))


def _address_screening(table: _Table) -> AddressScreening:
    value = table.text_value("address_screening", AddressScreening.EVIDENCE.value)
    try:
        return AddressScreening(value)
    except UnknownCode as exc:
        raise table.error("address_screening", exc.message) from None


def _normalizers(path: Path) -> tuple[NameNormalizer, NameNormalizer]:
    data, text = _read_toml(path)
    root = _Table(data, path, text)
    names = NameNormalizer(root.words("legal_forms"), root.words("stopwords"))
    addresses = NameNormalizer((), root.words("address_stopwords"))
    root.done()
    return names, addresses


def _screening(spec: _ListSpec) -> Screening:
    if spec.list_format != "opensanctions-simple":
        raise ConfigurationError(
            f"parties.list_format {spec.list_format!r} is not supported "
            "(supported: opensanctions-simple)"
        )
    entries = parse_opensanctions_csv(_read_text(spec.path), str(spec.path))
    parties = DeniedPartyList(
        entries,
        spec.normalizer,
        spec.settings,
        address_normalizer=spec.address_normalizer,
        source=spec.path.name,
    )
    return Screening(parties)


def _checks_file(config: Path) -> Path:
    """``checks.toml`` of a configuration directory, or the file itself."""
    return config / "checks.toml" if config.is_dir() else config


def _load(
    location: Path, enabled: Iterable[CheckName] | None, list_file: Path | None
) -> tuple[CheckConfig, _ListSpec]:
    path = _checks_file(location)
    config_dir = path.parent
    data, text = _read_toml(path)
    root = _Table(data, path, text)
    names = root.words("enabled", [name.value for name in CheckName])
    try:
        configured = frozenset(checks.parse_check_names(",".join(names) or "none"))
    except UnknownCode as exc:
        raise root.error("enabled", exc.message) from None

    hs_table = root.table("hs")
    hs_name = hs_table.text_value("nomenclature_file", "")
    hs_path = _resolve(config_dir, hs_name) if hs_name else default_hs_file()
    suggestions = int(hs_table.number("suggestions", 3))
    hs_table.done()
    nomenclature = parse_nomenclature(_read_text(hs_path), str(hs_path), suggestions)

    desc_table = root.table("descriptions")
    descriptions = _descriptions(
        _resolve(config_dir, desc_table.text_value("terms_file", "descriptions.toml")),
        desc_table.severity("vague_severity", Severity.WARNING),
        desc_table.severity("contradiction_severity", Severity.WARNING),
    )
    desc_table.done()

    art_table = root.table("prohibited")
    prohibited = _prohibited(
        _resolve(config_dir, art_table.text_value("rules_file", "prohibited.toml"))
    )
    art_table.done()

    party_table = root.table("parties")
    defaults = ScreeningSettings()
    try:
        settings = ScreeningSettings(
            reject_threshold=party_table.number("reject_threshold", defaults.reject_threshold),
            review_threshold=party_table.number("review_threshold", defaults.review_threshold),
            token_threshold=party_table.number("token_threshold", defaults.token_threshold),
            address_threshold=party_table.number("address_threshold", defaults.address_threshold),
            max_candidates=int(party_table.number("max_candidates", defaults.max_candidates)),
            address_screening=_address_screening(party_table),
        )
    except ValueError as exc:
        raise party_table.error(None, str(exc)) from None
    normalizer, address_normalizer = _normalizers(
        _resolve(config_dir, party_table.text_value("names_file", "names.toml"))
    )
    spec = _ListSpec(
        path=list_file or _resolve(config_dir, party_table.text_value("list_file")),
        list_format=party_table.text_value("list_format", "opensanctions-simple"),
        normalizer=normalizer,
        address_normalizer=address_normalizer,
        settings=settings,
        reload_seconds=party_table.number("reload_seconds", 60),
    )
    if list_file is not None:
        party_table.used.add("list_file")
    party_table.done()
    root.done()
    config = CheckConfig(
        enabled=frozenset(enabled) if enabled is not None else configured,
        nomenclature=nomenclature,
        descriptions=descriptions,
        prohibited=prohibited,
        screening=_screening(spec),
    )
    return config, spec


def load_check_config(
    config_dir: Path | None = None,
    *,
    enabled: Iterable[CheckName] | None = None,
    list_file: Path | None = None,
) -> CheckConfig:
    """Read and index the check configuration of ``config_dir`` (default: the shipped one).

    ``config_dir`` may also name the ``checks.toml`` file itself; the files it names are
    relative to its directory. ``enabled`` overrides the configured checks (``--checks``);
    ``list_file`` the denied-party list. Raises :class:`ConfigurationError` naming the file
    and line.
    """
    config, _ = _load(config_dir or default_checks_dir(), enabled, list_file)
    return config


@cache
def default_check_config() -> CheckConfig:
    """The shipped configuration, loaded once per process."""
    return load_check_config()


def findings_for_report(
    report: ValidationReport, config: CheckConfig | None = None
) -> tuple[Finding, ...]:
    """Findings of the checks on the accepted items of ``report`` (default configuration)."""
    return checks.check_report(report, config or default_check_config())


class CheckConfigSource:
    """A check configuration whose denied-party list follows its file.

    :meth:`current` is cheap: it looks at the file at most every ``reload_seconds`` (from
    ``checks.toml``) and reloads the list only when its modification time or size changed.
    A list that fails to load leaves the previous one in force; the error is kept in
    :attr:`last_error` and logged. ``reload_seconds`` overrides the interval of
    ``checks.toml`` (the ``[checks]`` setting of the service).

    Large lists take seconds to index. The caller of :meth:`current` that finds the file
    changed reloads it (intake calls it from its worker thread, never on the event loop);
    callers meanwhile get the configuration in force without waiting. :meth:`refresh`
    reloads now, e.g. from a scheduled job.
    """

    def __init__(
        self,
        config_dir: Path | None = None,
        *,
        enabled: Iterable[CheckName] | None = None,
        list_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_seconds: float | None = None,
    ) -> None:
        self._config, self._spec = _load(config_dir or default_checks_dir(), enabled, list_file)
        if reload_seconds is not None:
            self._spec = replace(self._spec, reload_seconds=reload_seconds)
        self._clock = clock
        self._stamp = self._stamp_of(self._spec.path)
        self._checked_at = clock()
        self._lock = threading.Lock()
        self.last_error: ConfigurationError | None = None

    @staticmethod
    def _stamp_of(path: Path) -> tuple[int, int] | None:
        try:
            status = path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    @property
    def list_path(self) -> Path:
        return self._spec.path

    @property
    def reload_seconds(self) -> float:
        return self._spec.reload_seconds

    def current(self) -> CheckConfig:
        """The configuration, with the list reloaded first if it is due and changed.

        A caller that finds another one reloading gets the configuration in force at once.
        """
        due = self._clock() - self._checked_at >= self._spec.reload_seconds
        if due and self._lock.acquire(blocking=False):
            try:
                self._refresh_locked()
            finally:
                self._lock.release()
        return self._config

    def __call__(self) -> CheckConfig:
        """The same as :meth:`current`, so the source is a ``Callable[[], CheckConfig]``."""
        return self.current()

    def refresh(self) -> bool:
        """Reload the list now if its file changed; whether a new list is in force."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        self._checked_at = self._clock()
        stamp = self._stamp_of(self._spec.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            screening = _screening(self._spec)
        except ConfigurationError as exc:
            self.last_error = exc
            _log.error("checks.list_reload_failed", error=exc.message)
            return False
        self.last_error = None
        self._config = replace(self._config, screening=screening)
        _log.info(
            "checks.list_reloaded",
            path=str(self._spec.path),
            entries=len(screening.parties),
        )
        return True


def configured_checks(settings: ChecksSettings) -> Callable[[], CheckConfig] | None:
    """The intake checks' configuration in force as ``settings`` give it, None when the
    checks are off.

    Loading indexes the HS nomenclature and the denied-party list (call it off the event
    loop). The returned callable looks at the list file at most every
    ``settings.reload_seconds`` (one ``stat``) and reloads a changed list in the thread or
    intake worker process that noticed it.
    """
    if not settings.enabled:
        return None
    return CheckConfigSource(settings.config, reload_seconds=settings.reload_seconds).current
