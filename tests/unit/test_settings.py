"""Tests for loading, validating and redacting the settings (connector.settings)."""

from __future__ import annotations

import hashlib
import re
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from connector.core.xmlsafe import ParseLimits
from connector.errors import ConfigurationError
from connector.ports import OperatorRecord
from connector.settings import (
    DatabaseSettings,
    OperatorSettings,
    Settings,
    hash_token,
    load_settings,
    validate_settings,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
EXAMPLE = CONFIG_DIR / "connector.toml"
README = CONFIG_DIR / "README.md"


def write_config(directory: Path, text: str) -> Path:
    path = directory / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path | None, environ: dict[str, str] | None = None) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ or {})
    return info.value


# --- defaults and layering ---------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    """With no file and an empty environment every setting has its documented default."""
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.database.url == "sqlite+aiosqlite:///ead-connector.db"
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.http.max_body_bytes == 32 * 1024 * 1024
    assert settings.http.tls_cert is settings.http.tls_key is settings.http.client_ca is None
    assert settings.connector_id == "ead-connector"
    assert settings.admin_token is None
    assert settings.key_passphrase is None
    assert settings.operators == ()
    assert settings.limits.parse_limits() == ParseLimits()


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after validation."""
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.http.port = 1
    with pytest.raises(ValidationError):
        settings.connector_id = "other"


def test_file_values_apply_and_environment_beats_file(tmp_path: Path) -> None:
    """A file value is used unless the environment sets the same key, which wins."""
    path = write_config(
        tmp_path,
        '[http]\nhost = "0.0.0.0"\nport = 9000\n[limits]\nmax_depth = 20\n',
    )
    settings = load_settings(
        path, {"CONNECTOR_HTTP__PORT": "9100", "CONNECTOR_LIMITS__MAX_BYTES": "1024"}
    )
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == 9100
    assert settings.limits.parse_limits() == ParseLimits(max_bytes=1024, max_depth=20)


def test_config_path_from_environment(tmp_path: Path) -> None:
    """CONNECTOR_CONFIG names the file when no path is passed."""
    path = write_config(tmp_path, 'connector_id = "from-file"\n')
    assert load_settings(None, {"CONNECTOR_CONFIG": str(path)}).connector_id == "from-file"


def test_config_path_argument_beats_environment(tmp_path: Path) -> None:
    """An explicit path wins over CONNECTOR_CONFIG."""
    chosen = write_config(tmp_path, 'connector_id = "chosen"\n')
    environ = {"CONNECTOR_CONFIG": str(tmp_path / "elsewhere.toml")}
    assert load_settings(chosen, environ).connector_id == "chosen"


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        (
            "CONNECTOR_DATABASE_URL",
            "postgresql+asyncpg://db.internal/ead",
            lambda s: s.database.url,
        ),
        (
            "CONNECTOR_DATABASE__URL",
            "postgresql+asyncpg://db.internal/ead",
            lambda s: s.database.url,
        ),
        ("CONNECTOR_ADMIN_TOKEN", "admin-secret", lambda s: s.admin_token.get_secret_value()),
        (
            "CONNECTOR_KEY_PASSPHRASE",
            "passphrase",
            lambda s: s.key_passphrase.get_secret_value(),
        ),
        ("CONNECTOR_CONNECTOR_ID", "connector-2", lambda s: s.connector_id),
    ],
)
def test_well_known_environment_names(
    name: str, value: str, read: typing.Callable[[Settings], object]
) -> None:
    """The flat names of DESIGN.md and the nested names both set their key."""
    assert read(load_settings(None, {name: value})) == value


def test_flat_and_nested_names_must_agree() -> None:
    """Two variables for the same key with different values are an error naming both."""
    environ = {
        "CONNECTOR_DATABASE_URL": "sqlite+aiosqlite:///a.db",
        "CONNECTOR_DATABASE__URL": "sqlite+aiosqlite:///b.db",
    }
    error = load_error(None, environ)
    assert "CONNECTOR_DATABASE_URL" in str(error)
    assert "CONNECTOR_DATABASE__URL" in str(error)
    same = dict.fromkeys(environ, "sqlite+aiosqlite:///a.db")
    assert load_settings(None, same).database.url == "sqlite+aiosqlite:///a.db"


def test_unrelated_and_empty_variables_are_ignored() -> None:
    """Variables that name no setting, and empty values, leave the defaults alone."""
    environ = {
        "CONNECTOR_TEST_DATABASE_URL": "postgresql://elsewhere/test",
        "CONNECTOR_ADMIN_TOKEN": "",
        "PATH": "/usr/bin",
        "HTTP__PORT": "1",
    }
    assert load_settings(None, environ) == Settings()


def test_unknown_key_from_environment_names_the_variable() -> None:
    """A typo below a known section is an error that names the key and the variable."""
    error = load_error(None, {"CONNECTOR_HTTP__PROT": "9000"})
    assert str(error) == "http.prot: unknown key (from CONNECTOR_HTTP__PROT)"


def test_environment_indexes_and_extends_operators(tmp_path: Path) -> None:
    """A number in a variable name picks an operator; the next free number adds one."""
    path = write_config(tmp_path, '[[operators]]\nid = "OP-A"\ntoken_sha256 = "' + "a" * 64 + '"\n')
    settings = load_settings(
        path,
        {
            "CONNECTOR_OPERATORS__0__ENABLED": "false",
            "CONNECTOR_OPERATORS__1__ID": "OP-B",
            "CONNECTOR_OPERATORS__1__TOKEN": "token-b",
        },
    )
    assert [(o.id, o.enabled) for o in settings.operators] == [("OP-A", False), ("OP-B", True)]
    assert settings.operators[1].token is not None
    assert settings.operators[1].token.get_secret_value() == "token-b"


def test_environment_index_must_not_skip_operators() -> None:
    """An operator index past the end of the list is an error naming the variable."""
    error = load_error(None, {"CONNECTOR_OPERATORS__2__ID": "X"})
    assert str(error).startswith("CONNECTOR_OPERATORS__2__ID: index 2 skips entries")


# --- validation failures -------------------------------------------------------------------

OP = '[[operators]]\nid = "OP-A"\n'
TOKEN = 'token = "token-a"\n'

BROKEN: list[tuple[str, str, str]] = [
    ("unknown-top-key", 'databse = "x"\n', "databse: unknown key"),
    (
        "db-scheme",
        '[database]\nurl = "mysql://u@h/db"\n',
        "database.url: scheme must be one of sqlite+aiosqlite, postgresql+asyncpg",
    ),
    ("port-range", "[http]\nport = 70000\n", "http.port: "),
    ("tls-half", '[http]\ntls_cert = "{cert}"\n', "http: give both tls_cert and tls_key"),
    ("tls-missing-file", '[http]\ntls_cert = "nope.pem"\n', "http.tls_cert: file not found"),
    (
        "client-ca-without-tls",
        '[http]\nclient_ca = "{cert}"\n',
        "http.client_ca: client certificates need HTTPS",
    ),
    ("depth-range", "[limits]\nmax_depth = 0\n", "limits.max_depth: "),
    ("connector-id", 'connector_id = "has space"\n', "connector_id: String should match"),
    ("operator-id", '[[operators]]\nid = "bad id!"\n' + TOKEN, "operators[0].id: "),
    ("operator-id-missing", "[[operators]]\n" + TOKEN, "operators[0].id: required"),
    ("operator-unknown-key", OP + TOKEN + 'tokn = "x"\n', "operators[0].tokn: unknown key"),
    ("no-auth", OP, "operators[0]: no authentication"),
    ("empty-token", OP + 'token = ""\n', "operators[0].token: must not be empty"),
    (
        "token-and-hash",
        OP + TOKEN + 'token_sha256 = "' + "a" * 64 + '"\n',
        "operators[0]: give either token (or token_file) or token_sha256, not both",
    ),
    ("bad-sha256", OP + 'token_sha256 = "xyz"\n', "operators[0].token_sha256: must be 64"),
    (
        "bad-cert-fingerprint",
        OP + 'client_cert_sha256 = "zz"\n',
        "operators[0].client_cert_sha256: must be 64",
    ),
    (
        "token-file-missing",
        OP + 'token_file = "secrets/none.token"\n',
        "operators[0].token_file: cannot read ",
    ),
    (
        "token-and-token-file",
        OP + TOKEN + 'token_file = "{cert}"\n',
        "operators[0].token_file: give either token or token_file, not both",
    ),
    (
        "pull-both",
        OP + TOKEN + '[[operators]]\nid = "OP-B"\ntoken = "token-b"\n'
        '[operators.pull]\nurl = "https://x.example/b"\ndirectory = "drop"\n'
        "[operators.schedule]\ninterval_seconds = 60\n",
        "operators[1].pull: give either url or directory, not both",
    ),
    (
        "pull-neither",
        OP + TOKEN + "[operators.pull]\nretries = 1\n[operators.schedule]\ninterval_seconds = 5\n",
        "operators[0].pull: give either url or directory, one is required",
    ),
    (
        "pull-url-scheme",
        OP
        + TOKEN
        + '[operators.pull]\nurl = "ftp://x/y"\n[operators.schedule]\ncron = "* * * * *"\n',
        "operators[0].pull.url: must be an absolute http:// or https:// URL",
    ),
    (
        "pull-url-credentials",
        OP + TOKEN + '[operators.pull]\nurl = "https://u:pw@x/y"\n'
        '[operators.schedule]\ncron = "* * * * *"\n',
        "operators[0].pull.url: must not hold credentials",
    ),
    (
        "pull-retries",
        OP + TOKEN + '[operators.pull]\nurl = "https://x/y"\nretries = -1\n'
        "[operators.schedule]\ninterval_seconds = 5\n",
        "operators[0].pull.retries: ",
    ),
    (
        "schedule-missing",
        OP + TOKEN + '[operators.pull]\ndirectory = "drop"\n',
        "operators[0].schedule: required when pull is set",
    ),
    (
        "schedule-without-pull",
        OP + TOKEN + "[operators.schedule]\ninterval_seconds = 5\n",
        "operators[0].schedule: a schedule needs a pull source",
    ),
    (
        "schedule-both",
        OP + TOKEN + '[operators.pull]\ndirectory = "drop"\n'
        '[operators.schedule]\ninterval_seconds = 5\ncron = "* * * * *"\n',
        "operators[0].schedule: give either interval_seconds or cron, not both",
    ),
    (
        "schedule-interval",
        OP
        + TOKEN
        + '[operators.pull]\ndirectory = "drop"\n[operators.schedule]\ninterval_seconds = 0\n',
        "operators[0].schedule.interval_seconds: ",
    ),
    (
        "schedule-cron",
        OP
        + TOKEN
        + '[operators.pull]\ndirectory = "drop"\n[operators.schedule]\ncron = "* * * *"\n',
        "operators[0].schedule.cron: not a valid 5-field crontab expression",
    ),
    ("webhook", OP + TOKEN + 'webhook_url = "mailto:x@y"\n', "operators[0].webhook_url: must be"),
    (
        "duplicate-id",
        OP + TOKEN + OP + 'token = "token-b"\n',
        "operators[1].id: duplicate operator id 'OP-A' (also operators[0])",
    ),
    (
        "duplicate-token",
        OP + TOKEN + '[[operators]]\nid = "OP-B"\ntoken_sha256 = "' + hash_token("token-a") + '"\n',
        "operators[1].token_sha256: same token as operators[0]",
    ),
    ("operators-not-a-list", "[operators]\nid = 1\n", "operators: "),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_each_problem_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    """Every invalid setting raises ConfigurationError with a line starting at its key."""
    cert = tmp_path / "some.pem"
    cert.write_text("not really a certificate\n")
    path = write_config(tmp_path, text.replace("{cert}", cert.as_posix()))
    error = load_error(path)
    assert not isinstance(error.__cause__, ValidationError)
    assert any(line.startswith(expected) for line in str(error).splitlines()), str(error)
    assert error.code == "configuration_invalid"


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    """Several problems give one line each, in one error."""
    path = write_config(tmp_path, '[http]\nport = "x"\n[limits]\nmax_bytes = 0\nbogus = 1\n')
    error = load_error(path)
    lines = str(error).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "http.port",
        "limits.max_bytes",
        "limits.bogus",
    ]
    assert error.context["problems"] == lines


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    """A config file that is named but absent stops loading instead of using defaults."""
    error = load_error(tmp_path / "absent.toml")
    assert str(error).startswith("config: file not found: ")


def test_malformed_toml_is_an_error(tmp_path: Path) -> None:
    """A file that is not TOML is a ConfigurationError naming the file."""
    path = write_config(tmp_path, "[http\nport = 1\n")
    error = load_error(path)
    assert str(error).startswith(f"config: {path} is not valid TOML")


# --- secrets ---------------------------------------------------------------------------------

SECRETS = {
    "admin": "admin-S3CRET-1",
    "passphrase": "pass-S3CRET-2",
    "operator": "operator-S3CRET-3",
    "source": "source-S3CRET-4",
    "db": "db-S3CRET-5",
    "query": "query-S3CRET-6",
    "file": "file-S3CRET-7",
}


def test_secrets_never_appear_in_repr_str_or_json(tmp_path: Path) -> None:
    """Tokens, passphrases and database passwords are redacted in every rendering."""
    (tmp_path / "op.token").write_text(SECRETS["file"] + "\n")
    path = write_config(
        tmp_path,
        '[[operators]]\nid = "OP-A"\ntoken_file = "op.token"\n'
        '[[operators]]\nid = "OP-B"\ntoken = "' + SECRETS["operator"] + '"\n'
        '[operators.pull]\nurl = "https://x.example/pull"\n'
        '[operators.schedule]\ncron = "*/5 * * * *"\n',
    )
    settings = load_settings(
        path,
        {
            "CONNECTOR_ADMIN_TOKEN": SECRETS["admin"],
            "CONNECTOR_KEY_PASSPHRASE": SECRETS["passphrase"],
            "CONNECTOR_OPERATORS__1__PULL__TOKEN": SECRETS["source"],
            "CONNECTOR_DATABASE_URL": (
                f"postgresql+asyncpg://connector:{SECRETS['db']}@db.internal:5432/ead"
                f"?ssl=require&password={SECRETS['query']}"
            ),
        },
    )
    renderings = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.database),
        str(settings.database),
        settings.database.redacted_url,
        repr(settings.operators),
    ]
    for rendering in renderings:
        for secret in SECRETS.values():
            assert secret not in rendering
    # ...while the values themselves stay usable.
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == SECRETS["admin"]
    assert settings.operators[0].token is not None
    assert settings.operators[0].token.get_secret_value() == SECRETS["file"]
    assert SECRETS["db"] in settings.database.url


def test_error_messages_do_not_echo_secrets() -> None:
    """A rejected database URL or token is named by key, never quoted."""
    error = load_error(
        None,
        {
            "CONNECTOR_DATABASE_URL": f"mysql://u:{SECRETS['db']}@h/db",
            "CONNECTOR_OPERATORS__0__ID": "OP A",
            "CONNECTOR_OPERATORS__0__TOKEN": SECRETS["operator"],
        },
    )
    assert "database.url" in str(error)
    assert "operators[0].id" in str(error)
    for secret in SECRETS.values():
        assert secret not in str(error)
        assert secret not in repr(error.as_dict())


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("sqlite+aiosqlite:///ead-connector.db", "sqlite+aiosqlite:///ead-connector.db"),
        ("sqlite+aiosqlite:////var/lib/ead.db", "sqlite+aiosqlite:////var/lib/ead.db"),
        ("postgresql+asyncpg://db/ead", "postgresql+asyncpg://db/ead"),
        ("postgresql+asyncpg://u@db/ead", "postgresql+asyncpg://u@db/ead"),
        ("postgresql+asyncpg://u:p@db:5432/ead", "postgresql+asyncpg://u:***@db:5432/ead"),
        ("postgresql+asyncpg://u:p:/x?@db/ead", "postgresql+asyncpg://u:***@db/ead"),
        ("postgresql+asyncpg://:p@db/ead", "postgresql+asyncpg://:***@db/ead"),
        (
            "postgresql+asyncpg://db/ead?user=u&password=p&ssl=require",
            "postgresql+asyncpg://db/ead?user=u&password=***&ssl=require",
        ),
    ],
)
def test_redacted_url(url: str, redacted: str) -> None:
    """redacted_url hides the password in the user info and in the query string."""
    database = DatabaseSettings(url=url)
    assert database.redacted_url == redacted
    assert repr(database) == f"DatabaseSettings(url={redacted!r})"


# --- operators and files ------------------------------------------------------------------------


def test_hash_token_is_hex_sha256() -> None:
    """hash_token is the lower-case hex SHA-256 of the UTF-8 token."""
    assert hash_token("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert hash_token("é") == hashlib.sha256("é".encode()).hexdigest()


def test_operator_records() -> None:
    """Records carry the hashed token, the lower-cased hash or fingerprint, and the flags."""
    fingerprint = ":".join(["AB"] * 32)
    settings = Settings(
        operators=(
            OperatorSettings(id="OP-A", name="Operator A", token=SecretStr("token-a")),
            OperatorSettings(id="OP-B", token_sha256="C" * 64, enabled=False),
            OperatorSettings(id="OP-C", client_cert_sha256=fingerprint),
        )
    )
    assert settings.operator_records() == (
        OperatorRecord("OP-A", "Operator A", True, hash_token("token-a"), None),
        OperatorRecord("OP-B", "OP-B", False, "c" * 64, None),
        OperatorRecord("OP-C", "OP-C", True, None, "ab" * 32),
    )


def test_token_file_is_read_stripped_and_relative_to_the_config(tmp_path: Path) -> None:
    """A token_file is read at load time, stripped, and found next to the config file."""
    (tmp_path / "conf" / "secrets").mkdir(parents=True)
    (tmp_path / "conf" / "secrets" / "op.token").write_text("  token-a \n\n")
    path = write_config(
        tmp_path / "conf",
        '[[operators]]\nid = "OP-A"\ntoken_file = "secrets/op.token"\n'
        '[operators.pull]\ndirectory = "drop"\n[operators.schedule]\ninterval_seconds = 1\n',
    )
    (operator,) = load_settings(path, {}).operators
    assert operator.token is not None
    assert operator.token.get_secret_value() == "token-a"
    assert operator.token_file == tmp_path / "conf" / "secrets" / "op.token"
    assert operator.pull is not None
    assert operator.pull.directory == tmp_path / "conf" / "drop"


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    """A token file holding only white space is rejected, naming its key."""
    (tmp_path / "admin.token").write_text(" \n")
    path = write_config(tmp_path, 'admin_token_file = "admin.token"\n')
    assert str(load_error(path)).startswith("admin_token_file: ")


def test_tls_paths_resolve_against_the_config(tmp_path: Path) -> None:
    """Relative TLS files are looked up next to the config file, not in the working directory."""
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("pem\n")
    path = write_config(
        tmp_path,
        '[http]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\nclient_ca = "ca.pem"\n',
    )
    http = load_settings(path, {}).http
    assert (http.tls_cert, http.tls_key, http.client_ca) == (
        tmp_path / "cert.pem",
        tmp_path / "key.pem",
        tmp_path / "ca.pem",
    )


def test_validate_settings_raises_configuration_error() -> None:
    """validate_settings turns pydantic's errors into a ConfigurationError too."""
    with pytest.raises(ConfigurationError, match=r"^http\.port: "):
        validate_settings({"http": {"port": -1}})


# --- the shipped example and its reference ------------------------------------------------------


def test_example_config_loads(tmp_path: Path) -> None:
    """config/connector.toml loads once its token file exists next to it."""
    config = tmp_path / "connector.toml"
    shutil.copy(EXAMPLE, config)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ch-post.token").write_text("ch-post-token\n")
    for name in (
        "customs/eu-ics2.pem",
        "customs/plant-health.pem",
        "tls/customs-ca.pem",
        "tls/connector-client.pem",
        "tls/connector-client.key",
    ):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("PEM files of the deployment\n")
    settings = load_settings(None, {"CONNECTOR_CONFIG": str(config)})

    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    ch, de = settings.operators
    assert ch.id == "CH-POST"
    assert ch.pull is not None
    assert ch.pull.directory is not None
    assert ch.schedule is not None
    assert ch.schedule.interval_seconds == 60
    assert ch.webhook_url is not None
    assert de.id == "DE-DPAG"
    assert de.token is None
    assert de.token_sha256 is not None
    assert de.pull is not None
    assert de.pull.url is not None
    assert de.schedule is not None
    assert de.schedule.cron == "*/5 * * * *"
    assert settings.operator_records()[0].token_sha256 == hash_token("ch-post-token")
    customs, agency = settings.destinations
    assert (customs.kind, agency.kind) == ("customs", "agency")
    assert customs.certificates == (tmp_path / "customs" / "eu-ics2.pem",)
    assert agency.hs_chapters == tuple(range(6, 15))


def test_example_config_commits_no_secret(tmp_path: Path) -> None:
    """Without its token file the example does not load: the token is not in the repository."""
    error = load_error(EXAMPLE)
    assert str(error).startswith("operators[0].token_file: cannot read ")


def _keys(model: type[BaseModel], prefix: str = "") -> typing.Iterator[str]:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        candidates: tuple[object, ...] = typing.get_args(annotation) or (annotation,)
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if nested:
            suffix = "[]." if name in ("operators", "destinations") else "."
            yield from _keys(nested[0], key + suffix)
        else:
            yield key


def test_readme_documents_every_key() -> None:
    """config/README.md has a row for every setting, so the reference cannot fall behind."""
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_.\[\]]+)` \|", text, flags=re.MULTILINE))
    assert set(_keys(Settings)) == documented


def test_every_field_has_a_docstring() -> None:
    """Each setting carries a one-line description (shown in the schema and the reference)."""
    models: list[type[BaseModel]] = [Settings]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
            for arg in typing.get_args(field.annotation) or (field.annotation,):
                if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                    models.append(arg)
