"""Settings of referral answers and polled Customs destinations (answers_url, responses_url)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from connector.adapters import keystore
from connector.errors import ConfigurationError
from connector.forwarder import answer_endpoints
from connector.settings import load_settings
from tests.unit.test_settings_destinations import BASE, CUSTOMS, _write


def test_answers_go_to_the_declarations_url_unless_named(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, BASE + CUSTOMS), {})
    (destination,) = settings.destinations
    assert (destination.answers_url, destination.responses_url) == (None, None)
    assert destination.poll_interval_seconds == 60


def test_polled_destination_with_its_own_answers_url(tmp_path: Path) -> None:
    polled = CUSTOMS + (
        'answers_url = "https://ics2.example.eu/v1/answers"\n'
        'responses_url = "https://ics2.example.eu/v1/responses"\n'
        "poll_interval_seconds = 15\n"
    )
    settings = load_settings(_write(tmp_path, BASE + polled), {})
    (destination,) = settings.destinations
    assert destination.answers_url == "https://ics2.example.eu/v1/answers"
    assert destination.responses_url == "https://ics2.example.eu/v1/responses"
    assert destination.poll_interval_seconds == 15


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('answers_url = "http://ics2.example.eu/v1/answers"\n', "answers_url: must be an https"),
        ('responses_url = "ftp://x/y"\n', "responses_url: must be an"),
        ("poll_interval_seconds = 0\n", "poll_interval_seconds"),
    ],
)
def test_unusable_urls_and_intervals_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_write(tmp_path, BASE + CUSTOMS + extra), {})
    assert message in str(caught.value)


def test_an_agency_has_no_answers_or_responses(tmp_path: Path) -> None:
    agency = """
[[destinations]]
id = "PLANT-HEALTH"
kind = "agency"
url = "https://plants.example.eu/copies"
hs_chapters = [6]
fields = ["ItemId"]
certificates = ["customs.pem"]
responses_url = "https://plants.example.eu/responses"
"""
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_write(tmp_path, BASE + CUSTOMS + agency), {})
    assert "answers_url and responses_url are for Customs" in str(caught.value)


def test_answer_endpoints_keep_tls_and_pins_and_change_only_the_url(tmp_path: Path) -> None:
    _, certificate = keystore.generate_key("ec", "Customs", 2)
    pem = tmp_path / "customs.pem"
    settings_path = _write(
        tmp_path, BASE + CUSTOMS + 'answers_url = "https://ics2.example.eu/v1/answers"\n'
    )
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    settings = load_settings(settings_path, {})
    [(destination, endpoint)] = answer_endpoints(settings).items()
    assert (destination, endpoint.url) == ("EU-ICS2", "https://ics2.example.eu/v1/answers")
    assert endpoint.customs_certificates == (certificate,)
