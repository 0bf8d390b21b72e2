"""Typed, frozen settings, validated once at startup, with their secrets redacted.

:func:`load_settings` builds one :class:`Settings` from three layers, the later one winning
key by key:

1. **Defaults** of the models below.
2. **The TOML file** named by the ``config_path`` argument, else by ``CONNECTOR_CONFIG`` in
   the environment mapping. Without either there is no file (defaults + environment); a
   file that is named but missing is an error.
3. **The environment mapping** passed by the caller (``os.environ`` in the CLI; this module
   never reads ``os.environ`` itself). ``CONNECTOR_`` + the dotted key in upper case with
   ``__`` between levels: ``CONNECTOR_HTTP__PORT``, ``CONNECTOR_DATABASE__URL``; a number
   indexes ``operators`` (``CONNECTOR_OPERATORS__0__TOKEN``). The well-known flat names
   ``CONNECTOR_DATABASE_URL``, ``CONNECTOR_ADMIN_TOKEN`` and ``CONNECTOR_KEY_PASSPHRASE``
   mean ``database.url``, ``admin_token`` and ``key_passphrase``. Empty values count as
   unset. Variables whose first level names no setting (``CONNECTOR_TEST_DATABASE_URL``)
   are ignored; an unknown key below a known one is an error, like in the file.

Secrets come from the environment or from files (``*_file`` keys, read at load time and
stripped); relative paths are resolved against the config file's directory. Every problem
is reported at once in a :class:`~connector.errors.ConfigurationError`, one line per
problem, each naming its dotted key (``operators[1].pull: ...``); a raw pydantic
``ValidationError`` never leaves :func:`load_settings`. Tokens, passphrases and the
database password never appear in ``repr()``, ``str()`` or ``model_dump_json()``.
"""

from __future__ import annotations

import copy
import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.core.xmlsafe import DEFAULT_LIMITS, LIBXML2_MAX_DEPTH, ParseLimits
from connector.errors import ConfigurationError
from connector.ports import OperatorRecord

__all__ = [
    "ChecksSettings",
    "DatabaseSettings",
    "DestinationSettings",
    "ForwardingSettings",
    "HttpSettings",
    "IntakeSettings",
    "LimitsSettings",
    "LogSettings",
    "NotifySettings",
    "OperatorSettings",
    "PullSettings",
    "ScheduleSettings",
    "Settings",
    "SigningSettings",
    "hash_token",
    "load_settings",
    "validate_settings",
]

ENV_PREFIX: Final = "CONNECTOR_"
ENV_NESTED_DELIMITER: Final = "__"
ENV_CONFIG: Final = "CONNECTOR_CONFIG"
#: Flat environment names of DESIGN.md §5 and the key each one sets.
ENV_FLAT_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "CONNECTOR_DATABASE_URL": ("database", "url"),
    "CONNECTOR_ADMIN_TOKEN": ("admin_token",),
    "CONNECTOR_KEY_PASSPHRASE": ("key_passphrase",),
}

DATABASE_SCHEMES: Final = ("sqlite+aiosqlite", "postgresql+asyncpg")
IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9._:\-]{1,64}$"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_COUNTRY = re.compile(r"[A-Z]{2}")
# Password in the userinfo, with SQLAlchemy's URL grammar (it may hold ':' and '/', not '@').
_URL_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/@]*):(?P<password>[^@]*)@")
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&]password=)[^&#]*")
_REDACTED: Final = "***"
#: Top-level keys that hold lists of tables (indexed from the environment).
_LIST_KEYS: Final = frozenset({"operators", "destinations"})

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def hash_token(token: str) -> str:
    """The lower-case hex SHA-256 of a bearer token, as operators are looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def _problem(message: str, key: str | None = None) -> PydanticCustomError:
    """A validation error whose line names ``key`` below the model's own location."""
    context: dict[str, str] = {"message": message}
    if key is not None:
        context["key"] = key
    return PydanticCustomError("configuration", "{message}", context)


def _read_secret_files(data: Any, pairs: tuple[tuple[str, str], ...]) -> Any:
    """Replace each ``<secret>_file`` by the file's stripped text under ``<secret>``."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for secret_key, file_key in pairs:
        raw = data.get(file_key)
        if raw is None:
            continue
        if not isinstance(raw, str | Path):
            continue  # the field's own type check reports it
        if data.get(secret_key) is not None:
            raise _problem(f"give either {secret_key} or {file_key}, not both", file_key)
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _problem(f"cannot read {path}: {reason}", file_key) from exc
        if not text:
            raise _problem(f"{path} is empty", file_key)
        data[secret_key] = text
        data[file_key] = path
    return data


def _check_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not value.get_secret_value():
        raise _problem("must not be empty")
    return value


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0]
    if not sep or scheme.lower() not in ("http", "https") or not host:
        raise _problem("must be an absolute http:// or https:// URL")
    if "@" in host:
        raise _problem("must not hold credentials; use the token or token_file key")
    return value


def _check_existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise _problem(f"file not found: {value}")
    return value


_Secret = Annotated[SecretStr | None, AfterValidator(_check_secret)]
_HttpUrl = Annotated[str | None, AfterValidator(_check_http_url)]
_ExistingFile = Annotated[Path | None, AfterValidator(_check_existing_file)]


class LogSettings(BaseModel):
    """The service's structured logs (on stderr)."""

    model_config = _MODEL_CONFIG

    level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe events written."""
    format: Literal["auto", "json", "console"] = "auto"
    """``json`` (one object per line), ``console`` (text), or ``auto``: JSON unless stderr is
    a terminal."""


class DatabaseSettings(BaseModel):
    """Where the connector keeps its state."""

    model_config = _MODEL_CONFIG

    url: str = "sqlite+aiosqlite:///ead-connector.db"
    """SQLAlchemy async URL: ``sqlite+aiosqlite:///PATH`` or ``postgresql+asyncpg://...``."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme, sep, _ = value.partition("://")
        if not sep or scheme not in DATABASE_SCHEMES:
            raise _problem(f"scheme must be one of {', '.join(DATABASE_SCHEMES)}")
        return value

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``; safe to log."""
        url = _URL_PASSWORD.sub(rf"\g<head>:{_REDACTED}@", self.url, count=1)
        return _QUERY_PASSWORD.sub(rf"\g<head>{_REDACTED}", url)

    @field_serializer("url")
    def _serialize_url(self, value: str) -> str:
        return self.redacted_url

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", self.redacted_url


class HttpSettings(BaseModel):
    """The HTTP API server."""

    model_config = _MODEL_CONFIG

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` for every interface)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port to listen on (0: any free port)."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    """Largest accepted request body, in bytes."""
    request_timeout_seconds: float = Field(default=60.0, gt=0)
    """Longest time one request may take, in seconds."""
    tls_cert: _ExistingFile = None
    """PEM certificate (chain) of the server; with ``tls_key``, serves HTTPS."""
    tls_key: _ExistingFile = None
    """PEM private key of ``tls_cert``."""
    client_ca: _ExistingFile = None
    """PEM CA bundle to verify client certificates with (mTLS); needs ``tls_cert``."""
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    """Requests per second each operator may make on average (0: no limit)."""
    rate_limit_burst: int = Field(default=40, ge=1)
    """Requests an operator may make at once before the rate applies."""

    @model_validator(mode="after")
    def _check_tls(self) -> HttpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _problem("give both tls_cert and tls_key, or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise _problem("client certificates need HTTPS: set tls_cert and tls_key", "client_ca")
        return self


class LimitsSettings(BaseModel):
    """Limits on every XML document parsed (see :mod:`connector.core.xmlsafe`)."""

    model_config = _MODEL_CONFIG

    max_bytes: int = Field(default=DEFAULT_LIMITS.max_bytes, ge=1)
    """Largest accepted XML document, in bytes."""
    max_depth: int = Field(default=DEFAULT_LIMITS.max_depth, ge=1, le=LIBXML2_MAX_DEPTH)
    """Deepest accepted element nesting; the root element is depth 1."""

    def parse_limits(self) -> ParseLimits:
        """These limits as the parser takes them."""
        return ParseLimits(max_bytes=self.max_bytes, max_depth=self.max_depth)


class IntakeSettings(BaseModel):
    """How pushed and pulled item batches are validated and checked."""

    model_config = _MODEL_CONFIG

    workers: int = Field(default=0, ge=0, le=64)
    """Worker processes that validate and check batches (about one per CPU core the service
    may use); 0: a thread of the service's own process, which suits one core and tests."""


class PullSettings(BaseModel):
    """Where batches of one operator are pulled from: an HTTP source or a drop directory."""

    model_config = _MODEL_CONFIG

    url: _HttpUrl = None
    """HTTP source, read with ``GET`` and the operator's cursor."""
    directory: Path | None = None
    """Drop directory; read files move to its ``done/`` or ``failed/`` subfolder."""
    token: _Secret = None
    """Bearer token for the HTTP source (prefer the environment or ``token_file``)."""
    token_file: Path | None = None
    """File holding the HTTP source's token, read at startup."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest time one HTTP fetch may take, in seconds."""
    retries: int = Field(default=2, ge=0)
    """Further attempts after a failed HTTP fetch, within one scheduled run."""

    @model_validator(mode="before")
    @classmethod
    def _read_files(cls, data: Any) -> Any:
        return _read_secret_files(data, (("token", "token_file"),))

    @model_validator(mode="after")
    def _check_source(self) -> PullSettings:
        if (self.url is None) == (self.directory is None):
            which = "not both" if self.url is not None else "one is required"
            raise _problem(f"give either url or directory, {which}")
        if self.directory is not None and self.token is not None:
            raise _problem("a drop directory takes no token", "token")
        return self


class ScheduleSettings(BaseModel):
    """When an operator's source is pulled: every N seconds or on a crontab."""

    model_config = _MODEL_CONFIG

    interval_seconds: int | None = Field(default=None, gt=0)
    """Seconds between two pulls."""
    cron: str | None = None
    """Five-field crontab expression (minute hour day month weekday), e.g. ``*/5 * * * *``."""

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise _problem(f"not a valid 5-field crontab expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _check_one(self) -> ScheduleSettings:
        if (self.interval_seconds is None) == (self.cron is None):
            which = "not both" if self.cron is not None else "one is required"
            raise _problem(f"give either interval_seconds or cron, {which}")
        return self


class OperatorSettings(BaseModel):
    """One postal operator: identity, authentication, pull source and notice webhook."""

    model_config = _MODEL_CONFIG

    id: str = Field(pattern=IDENTIFIER_PATTERN)
    """Operator id as in its messages: 1 to 64 of ``A-Z a-z 0-9 . _ : -``."""
    name: str = ""
    """Display name (defaults to the id)."""
    enabled: bool = True
    """A disabled operator cannot authenticate and is not pulled."""
    token: _Secret = None
    """Bearer token the operator authenticates with (prefer the environment or a file)."""
    token_file: Path | None = None
    """File holding the operator's bearer token, read at startup."""
    token_sha256: str | None = None
    """Hex SHA-256 of the bearer token, for configs that must not hold the token."""
    client_cert_sha256: str | None = None
    """Hex SHA-256 fingerprint of the operator's mTLS client certificate (colons allowed)."""
    pull: PullSettings | None = None
    """Pull source; without it the operator only pushes."""
    schedule: ScheduleSettings | None = None
    """When to pull; required with ``pull``."""
    webhook_url: _HttpUrl = None
    """URL signed notices are POSTed to; without it the operator reads the notice feed."""

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        data = _read_secret_files(data, (("token", "token_file"),))
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("id"), str):
            data["name"] = data["id"]
        return data

    @field_validator("token_sha256", "client_cert_sha256")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digest = value.replace(":", "").strip().lower()
        if not _SHA256_HEX.fullmatch(digest):
            raise _problem("must be 64 hexadecimal digits (a SHA-256)")
        return digest

    @model_validator(mode="after")
    def _check_auth_and_schedule(self) -> OperatorSettings:
        if self.token is not None and self.token_sha256 is not None:
            raise _problem("give either token (or token_file) or token_sha256, not both")
        if self.token is None and self.token_sha256 is None and self.client_cert_sha256 is None:
            raise _problem(
                "no authentication: give token, token_file, token_sha256 or client_cert_sha256"
            )
        if self.pull is not None and self.schedule is None:
            raise _problem("required when pull is set", "schedule")
        if self.pull is None and self.schedule is not None:
            raise _problem("a schedule needs a pull source", "schedule")
        return self

    @property
    def token_hash(self) -> str | None:
        """SHA-256 of the bearer token, from ``token`` or ``token_sha256``."""
        if self.token is not None:
            return hash_token(self.token.get_secret_value())
        return self.token_sha256

    def record(self) -> OperatorRecord:
        """The operator as authentication and the store see it."""
        return OperatorRecord(
            operator_id=self.id,
            name=self.name,
            enabled=self.enabled,
            token_sha256=self.token_hash,
            cert_sha256=self.client_cert_sha256,
        )


class ChecksSettings(BaseModel):
    """The data-quality and compliance checks run on intake (docs/checks.md)."""

    model_config = _MODEL_CONFIG

    enabled: bool = True
    """Run the checks on every accepted item; false: intake validates only."""
    config: Path | None = None
    """``checks.toml``, or the directory holding it (default: the shipped config/checks)."""
    reload_seconds: float = Field(default=60.0, ge=0)
    """How often the denied-party list file is looked at (modification time and size); a
    changed list is reloaded by the next intake, a broken one leaves the previous in force."""

    @field_validator("config")
    @classmethod
    def _check_config(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise _problem(f"not found: {value}")
        return value


class SigningSettings(BaseModel):
    """The connector's own signing keys (see ``ead-connector keys``)."""

    model_config = _MODEL_CONFIG

    keys_dir: Path | None = None
    """Key ring directory (``keys generate|rotate``); its active key signs, the others verify."""


class ForwardingSettings(BaseModel):
    """How accepted items are sent to Customs: batching, leases, retries, evidence."""

    model_config = _MODEL_CONFIG

    batch_size: int = Field(default=500, ge=1, le=10_000)
    """Most items claimed and sent per declaration batch."""
    concurrency: int = Field(default=2, ge=1, le=32)
    """Batches in flight at once per process (one is signed while another waits for Customs)."""
    idle_seconds: float = Field(default=1.0, gt=0)
    """Pause between forward runs when there was nothing to send."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """How long a claim is held; a crashed replica's claims are taken over after it."""
    max_attempts: int = Field(default=8, ge=1)
    """Attempts before an item goes to the dead letters (``ead-connector dead``)."""
    backoff_seconds: float = Field(default=5.0, ge=0)
    """Delay after the first failed attempt; doubled after each further one."""
    max_backoff_seconds: float = Field(default=900.0, ge=0)
    """Longest delay between two attempts."""
    evidence_retention_days: int = Field(default=400, ge=1)
    """Days the signed batches and Customs receipts are kept as evidence."""

    @model_validator(mode="after")
    def _check_backoff(self) -> ForwardingSettings:
        if self.max_backoff_seconds < self.backoff_seconds:
            raise _problem("must not be below backoff_seconds", "max_backoff_seconds")
        return self


class NotifySettings(BaseModel):
    """How signed notices are delivered to the operators' webhooks (``operators[].webhook_url``)."""

    model_config = _MODEL_CONFIG

    batch_size: int = Field(default=200, ge=1, le=10_000)
    """Most notices claimed per notify run."""
    concurrency: int = Field(default=8, ge=1, le=64)
    """Notices POSTed at once per process (also the connection pool size)."""
    idle_seconds: float = Field(default=1.0, gt=0)
    """Pause between notify runs when there was nothing to deliver."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """How long a claim is held; a crashed replica's claims are taken over after it."""
    max_attempts: int = Field(default=12, ge=1)
    """Failed deliveries before a notice is dead (it stays in the operator's feed)."""
    backoff_seconds: float = Field(default=5.0, ge=0)
    """Delay after the first failed delivery; doubled after each further one."""
    max_backoff_seconds: float = Field(default=900.0, ge=0)
    """Longest delay between two deliveries of a notice."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest time to open a connection to a webhook."""
    timeout_seconds: float = Field(default=15.0, gt=0)
    """Longest time one delivery may take, the answer included."""
    ca_file: _ExistingFile = None
    """PEM CA bundle to verify ``https://`` webhooks with (default: the system store)."""

    @model_validator(mode="after")
    def _check_backoff(self) -> NotifySettings:
        if self.max_backoff_seconds < self.backoff_seconds:
            raise _problem("must not be below backoff_seconds", "max_backoff_seconds")
        return self


class DestinationSettings(BaseModel):
    """A Customs risk system (``kind = "customs"``) or another border agency (``"agency"``)."""

    model_config = _MODEL_CONFIG

    id: str = Field(pattern=IDENTIFIER_PATTERN)
    """Destination id, written into each declaration batch (``Destination``)."""
    kind: Literal["customs", "agency"] = "customs"
    """``customs`` declares items; an ``agency`` gets a minimized, informational copy."""
    url: str
    """HTTPS URL the signed batches are POSTed to."""
    countries: tuple[str, ...] = ()
    """ISO 3166-1 alpha-2 destination countries this destination covers (empty: every
    country, for an agency only)."""
    operators: tuple[str, ...] = ()
    """Only items of these operators (empty: every operator); the more specific route wins."""
    hs_chapters: tuple[int, ...] = ()
    """Agency only: the HS chapters (1-99) it subscribes to, e.g. 6-14 for plant health."""
    fields: tuple[str, ...] = ()
    """Agency only: the item fields its copy holds (``Contents/Line/HsCode``, ...)."""
    certificates: tuple[Path, ...]
    """PEM certificates the destination signs its receipts and responses with (pinned)."""
    ca_file: _ExistingFile = None
    """PEM CA bundle to verify the destination's TLS server with (default: system store)."""
    client_cert: _ExistingFile = None
    """PEM client certificate (chain) for mTLS."""
    client_key: _ExistingFile = None
    """PEM private key of ``client_cert``."""
    client_key_passphrase: _Secret = None
    """Passphrase of ``client_key`` when it is encrypted (prefer the environment or a file)."""
    client_key_passphrase_file: Path | None = None
    """File holding the passphrase of ``client_key``."""
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """Longest time to open a connection."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Longest time one send may take, answer included."""
    max_concurrency: int = Field(default=4, ge=1)
    """Most sends in flight to this destination at once."""
    fast_retries: int = Field(default=2, ge=0)
    """Further attempts within one send after a connection error, 429 or 5xx."""
    answers_url: str | None = None
    """Customs only: HTTPS URL referral answers are POSTed to (default: ``url``)."""
    responses_url: str | None = None
    """Customs only: HTTPS URL polled for signed responses (none: Customs calls back)."""
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    """Pause between polls of ``responses_url`` once it has nothing new."""

    @model_validator(mode="before")
    @classmethod
    def _read_files(cls, data: Any) -> Any:
        return _read_secret_files(data, (("client_key_passphrase", "client_key_passphrase_file"),))

    @field_validator("url", "answers_url", "responses_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        checked = _check_http_url(value)
        if checked is None or not checked.lower().startswith("https://"):
            raise _problem("must be an https:// URL (server verification is always on)")
        return checked

    @field_validator("countries")
    @classmethod
    def _check_countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for country in value:
            if not _COUNTRY.fullmatch(country):
                raise _problem(f"{country!r} is not an ISO 3166-1 alpha-2 code")
        return value

    @field_validator("hs_chapters")
    @classmethod
    def _check_chapters(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for chapter in value:
            if not 1 <= chapter <= 99:
                raise _problem(f"{chapter} is not an HS chapter (1-99)")
        return value

    @field_validator("certificates")
    @classmethod
    def _check_certificates(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        if not value:
            raise _problem("give at least one pinned certificate")
        for path in value:
            if not path.is_file():
                raise _problem(f"file not found: {path}")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> DestinationSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise _problem("give both client_cert and client_key, or neither")
        if self.kind == "customs":
            if not self.countries:
                raise _problem("a Customs destination covers at least one country", "countries")
            if self.hs_chapters or self.fields:
                raise _problem("hs_chapters and fields are for agencies", "hs_chapters")
        elif self.answers_url is not None or self.responses_url is not None:
            raise _problem("answers_url and responses_url are for Customs", "responses_url")
        if self.kind == "agency":
            if not self.hs_chapters:
                raise _problem("an agency subscribes to at least one HS chapter", "hs_chapters")
            if not self.fields:
                raise _problem("an agency copy needs its allow-list of fields", "fields")
        return self


class Settings(BaseSettings):
    """Everything the connector is configured with; build it with :func:`load_settings`."""

    # Only the keyword arguments are a source: Settings() never reads os.environ or a .env
    # file behind the caller's back; load_settings() does the layering.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    connector_id: str = Field(default="ead-connector", pattern=IDENTIFIER_PATTERN)
    """This connector's id in the messages it sends."""
    admin_token: _Secret = None
    """Bearer token of the admin API (``CONNECTOR_ADMIN_TOKEN``); no token, no admin API."""
    admin_token_file: Path | None = None
    """File holding the admin token, read at startup."""
    key_passphrase: _Secret = None
    """Passphrase of the signing key files (``CONNECTOR_KEY_PASSPHRASE``)."""
    key_passphrase_file: Path | None = None
    """File holding the key passphrase, read at startup."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    """Database settings."""
    log: LogSettings = Field(default_factory=LogSettings)
    """Log settings."""
    http: HttpSettings = Field(default_factory=HttpSettings)
    """HTTP API server settings."""
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    """XML parsing limits."""
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    """Where batches are validated and checked."""
    operators: tuple[OperatorSettings, ...] = ()
    """The postal operators (``[[operators]]`` tables in TOML)."""
    signing: SigningSettings = Field(default_factory=SigningSettings)
    """The connector's signing keys."""
    forwarding: ForwardingSettings = Field(default_factory=ForwardingSettings)
    """Sending to Customs: batching, retries, evidence."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    """Delivering signed notices to the operators' webhooks."""
    checks: ChecksSettings = Field(default_factory=ChecksSettings)
    """The data-quality and compliance checks on intake."""
    destinations: tuple[DestinationSettings, ...] = ()
    """Customs destinations and border agencies (``[[destinations]]`` tables in TOML)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _read_files(cls, data: Any) -> Any:
        return _read_secret_files(
            data,
            (("admin_token", "admin_token_file"), ("key_passphrase", "key_passphrase_file")),
        )

    @model_validator(mode="after")
    def _check_operators(self) -> Settings:
        ids: dict[str, int] = {}
        tokens: dict[str, int] = {}
        certs: dict[str, int] = {}
        for index, operator in enumerate(self.operators):
            if operator.id in ids:
                raise _problem(
                    f"duplicate operator id {operator.id!r} (also operators[{ids[operator.id]}])",
                    f"operators[{index}].id",
                )
            ids[operator.id] = index
            token_hash = operator.token_hash
            if token_hash is not None:
                if token_hash in tokens:
                    field = "token" if operator.token is not None else "token_sha256"
                    raise _problem(
                        f"same token as operators[{tokens[token_hash]}]",
                        f"operators[{index}].{field}",
                    )
                tokens[token_hash] = index
            cert = operator.client_cert_sha256
            if cert is not None:
                if cert in certs:
                    raise _problem(
                        f"same client certificate as operators[{certs[cert]}]",
                        f"operators[{index}].client_cert_sha256",
                    )
                certs[cert] = index
        return self

    @model_validator(mode="after")
    def _check_destinations(self) -> Settings:
        seen: dict[str, int] = {}
        operator_ids = {operator.id for operator in self.operators}
        for index, destination in enumerate(self.destinations):
            if destination.id in seen:
                raise _problem(
                    f"duplicate destination id {destination.id!r} "
                    f"(also destinations[{seen[destination.id]}])",
                    f"destinations[{index}].id",
                )
            seen[destination.id] = index
            unknown = sorted(set(destination.operators) - operator_ids)
            if unknown:
                raise _problem(
                    f"unknown operator(s): {', '.join(unknown)}", f"destinations[{index}].operators"
                )
        if self.destinations and self.signing.keys_dir is None:
            raise _problem("destinations need the connector's signing keys", "signing.keys_dir")
        return self

    def operator_records(self) -> tuple[OperatorRecord, ...]:
        """Every configured operator (enabled or not) as authentication sees it."""
        return tuple(operator.record() for operator in self.operators)


def validate_settings(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    env_keys: Mapping[tuple[str | int, ...], str] | None = None,
) -> Settings:
    """Validate raw settings (as read from TOML); relative paths resolve against ``base_dir``.

    Raises :class:`ConfigurationError` with one line per problem; ``env_keys`` (key path →
    variable name) lets a line say which environment variable set the value.
    """
    raw = copy.deepcopy(dict(data))
    if base_dir is not None:
        _resolve_paths(raw, base_dir)
    try:
        # Not model_validate(context=...): BaseSettings has its own __init__, which pydantic
        # calls instead, so a validation context would not reach the nested models.
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = _problem_lines(exc, env_keys or {})
        raise ConfigurationError(
            "\n".join(lines), problems=lines, key=lines[0].split(":", 1)[0]
        ) from None


def load_settings(config_path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Settings from the TOML file (argument, else ``CONNECTOR_CONFIG``) and ``environ``."""
    path = config_path
    if path is None and environ.get(ENV_CONFIG):
        path = Path(environ[ENV_CONFIG])
    data: dict[str, Any] = {}
    base_dir: Path | None = None
    if path is not None:
        data = _read_toml(path)
        base_dir = path.absolute().parent
    env_keys = _apply_environment(data, environ)
    return validate_settings(data, base_dir=base_dir, env_keys=env_keys)


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Make the relative file and directory keys relative to ``base_dir``, in place."""

    def resolve(table: Any, keys: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            return
        for key in keys:
            value = table.get(key)
            if isinstance(value, str | Path) and str(value) and not Path(value).is_absolute():
                table[key] = str(base_dir / value)

    resolve(data, ("admin_token_file", "key_passphrase_file"))
    resolve(data.get("http"), ("tls_cert", "tls_key", "client_ca"))
    operators = data.get("operators")
    for operator in operators if isinstance(operators, list | tuple) else ():
        resolve(operator, ("token_file",))
        if isinstance(operator, dict):
            resolve(operator.get("pull"), ("token_file", "directory"))
    resolve(data.get("signing"), ("keys_dir",))
    resolve(data.get("notify"), ("ca_file",))
    resolve(data.get("checks"), ("config",))
    destinations = data.get("destinations")
    for destination in destinations if isinstance(destinations, list | tuple) else ():
        resolve(
            destination,
            ("ca_file", "client_cert", "client_key", "client_key_passphrase_file"),
        )
        if isinstance(destination, dict) and isinstance(destination.get("certificates"), list):
            destination["certificates"] = [
                str(base_dir / value)
                if isinstance(value, str) and value and not Path(value).is_absolute()
                else value
                for value in destination["certificates"]
            ]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigurationError(f"config: file not found: {path}", key="config") from None
    except OSError as exc:
        raise ConfigurationError(
            f"config: cannot read {path}: {exc.strerror}", key="config"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config: {path} is not valid TOML: {exc}", key="config") from None


def _env_path(name: str) -> tuple[str, ...] | None:
    """The key path a ``CONNECTOR_*`` variable sets, or None when it is not a setting."""
    if name in ENV_FLAT_NAMES:
        return ENV_FLAT_NAMES[name]
    if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
        return None
    parts = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER))
    if parts[0] not in Settings.model_fields or any(not part for part in parts):
        return None
    return parts


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> dict[tuple[str | int, ...], str]:
    """Overlay the environment on ``data`` in place; returns which variable set which key."""
    found: dict[tuple[str | int, ...], tuple[str, str]] = {}
    problems: list[str] = []
    for name, value in environ.items():
        parts = _env_path(name)
        if parts is None or value == "":
            continue
        key = tuple(int(part) if part.isdigit() else part for part in parts)
        if key in found and found[key][1] != value:
            problems.append(f"{found[key][0]} and {name} disagree; set only one")
            continue
        found[key] = (name, value)
    # Ascending indices, so CONNECTOR_OPERATORS__1__* may follow the file's operators[0].
    for key in sorted(found, key=lambda k: tuple((isinstance(p, int), str(p).zfill(9)) for p in k)):
        name, value = found[key]
        problem = _set_path(data, key, value)
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        raise ConfigurationError("\n".join(problems), problems=problems, key="environment")
    return {key: name for key, (name, _) in found.items()}


def _set_path(data: dict[str, Any], key: tuple[str | int, ...], value: str) -> str | None:
    """Set ``data[key...] = value``, creating tables; a problem description or None."""
    node: Any = data
    for depth, part in enumerate(key):
        last = depth == len(key) - 1
        step: str | int = part
        if isinstance(node, list):
            if not isinstance(part, int):
                return f"{_key_text(key[:depth])} is a list; expected an index, got {part!r}"
            if part > len(node):
                return f"index {part} skips entries; {_key_text(key[:depth])} has {len(node)}"
            if part == len(node):
                node.append({})
        elif isinstance(node, dict):
            step = str(part)
            if not last and step not in node:
                next_is_index = isinstance(key[depth + 1], int)
                node[step] = [] if next_is_index and step in _LIST_KEYS else {}
        else:
            return f"{_key_text(key[:depth])} is not a table"
        if last:
            node[step] = value
        else:
            node = node[step]
    return None


def _key_text(loc: tuple[str | int, ...]) -> str:
    """A location as a dotted key: ``operators[1].pull.url``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "settings"


def _problem_lines(
    exc: ValidationError, env_keys: Mapping[tuple[str | int, ...], str]
) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        context = error.get("ctx") or {}
        key = _key_text(loc) if loc else ""
        if "key" in context:
            key = f"{key}.{context['key']}" if key else str(context["key"])
        message = {
            "extra_forbidden": "unknown key",
            "missing": "required",
        }.get(error["type"], error["msg"])
        line = f"{key or 'settings'}: {message}"
        origin = [name for path, name in env_keys.items() if _key_text(path) == key]
        if origin:
            line += f" (from {origin[0]})"
        if line not in lines:
            lines.append(line)
    return lines
