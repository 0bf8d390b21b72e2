"""Settings of signing, forwarding and the Customs destinations and border agencies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.settings import load_settings


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "customs.pem").write_text("pinned certificate (contents read later)\n")
    (tmp_path / "keys").mkdir(exist_ok=True)
    path = tmp_path / "connector.toml"
    path.write_text(body, encoding="utf-8")
    return path


BASE = """
[signing]
keys_dir = "keys"

[[operators]]
id = "CH-POST"
token_sha256 = "8ef4a169eb932f534460f1a8ce0b2ed2de8599ebfb3e51e02e71dd442b1cf3c3"
"""

CUSTOMS = """
[[destinations]]
id = "EU-ICS2"
url = "https://ics2.example.eu/v1/declarations"
countries = ["DE", "FR"]
certificates = ["customs.pem"]
"""


def test_destination_loads_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, BASE + CUSTOMS), {})
    (destination,) = settings.destinations
    assert destination.kind == "customs"
    assert destination.countries == ("DE", "FR")
    assert destination.certificates == (tmp_path / "customs.pem",)
    assert settings.signing.keys_dir == tmp_path / "keys"
    assert settings.forwarding.batch_size == 500


def test_agency_needs_chapters_and_fields(tmp_path: Path) -> None:
    agency = """
[[destinations]]
id = "PLANT-HEALTH"
kind = "agency"
url = "https://plants.example.eu/copies"
certificates = ["customs.pem"]
"""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_write(tmp_path, BASE + agency), {})
    assert "destinations[0].hs_chapters: an agency subscribes" in str(caught.value)
    full = agency + 'hs_chapters = [6, 7, 14]\nfields = ["Contents/Line/HsCode"]\n'
    (destination,) = load_settings(_write(tmp_path, BASE + full), {}).destinations
    assert destination.hs_chapters == (6, 7, 14)
    assert destination.countries == ()


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ('"https://ics2', '"http://ics2', "destinations[0].url: must be an https:// URL"),
        ('["DE", "FR"]', '["DE", "fr"]', "'fr' is not an ISO 3166-1 alpha-2 code"),
        ('["DE", "FR"]', "[]", "destinations[0].countries: a Customs destination covers"),
        ('["customs.pem"]', "[]", "give at least one pinned certificate"),
        ('["customs.pem"]', '["missing.pem"]', "file not found"),
        ('countries = ["DE", "FR"]', 'countries = ["DE"]\nhs_chapters = [6]', "for agencies"),
        ('countries = ["DE", "FR"]', 'countries = ["DE"]\noperators = ["XX"]', "unknown operator"),
    ],
)
def test_bad_destinations_are_named(tmp_path: Path, replace: str, by: str, expected: str) -> None:
    assert replace in CUSTOMS
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        load_settings(_write(tmp_path, BASE + CUSTOMS.replace(replace, by)), {})


def test_duplicate_destination_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"duplicate destination id 'EU-ICS2'"):
        load_settings(_write(tmp_path, BASE + CUSTOMS + CUSTOMS), {})


def test_destinations_need_signing_keys(tmp_path: Path) -> None:
    body = (BASE + CUSTOMS).replace('[signing]\nkeys_dir = "keys"\n', "")
    with pytest.raises(ConfigurationError, match=r"signing.keys_dir: destinations need"):
        load_settings(_write(tmp_path, body), {})


def test_client_cert_and_key_go_together(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_text("x")
    body = BASE + CUSTOMS + 'client_cert = "client.pem"\n'
    with pytest.raises(ConfigurationError, match="give both client_cert and client_key"):
        load_settings(_write(tmp_path, body), {})


def test_environment_overrides_a_destination(tmp_path: Path) -> None:
    environ = {"CONNECTOR_DESTINATIONS__0__MAX_CONCURRENCY": "9"}
    settings = load_settings(_write(tmp_path, BASE + CUSTOMS), environ)
    assert settings.destinations[0].max_concurrency == 9


def test_passphrase_is_secret(tmp_path: Path) -> None:
    (tmp_path / "pass.txt").write_text("s3cret-pass\n")
    body = BASE + CUSTOMS + 'client_key_passphrase_file = "pass.txt"\n'
    settings = load_settings(_write(tmp_path, body), {})
    secret = settings.destinations[0].client_key_passphrase
    assert secret is not None
    assert secret.get_secret_value() == "s3cret-pass"
    assert "s3cret-pass" not in repr(settings) + settings.model_dump_json()


def test_backoff_bounds_are_checked(tmp_path: Path) -> None:
    body = BASE + "[forwarding]\nbackoff_seconds = 60\nmax_backoff_seconds = 10\n"
    with pytest.raises(ConfigurationError, match=r"forwarding\.max_backoff_seconds"):
        load_settings(_write(tmp_path, body), {})
