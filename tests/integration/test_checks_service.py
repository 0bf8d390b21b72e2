"""The checks in the service: the [checks] settings, their wiring, and where findings show."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from connector import checks_loader
from connector.adapters.web.server import item_view
from connector.app import open_connector
from connector.cli import _print_item
from connector.errors import ConfigurationError
from connector.settings import ChecksSettings, validate_settings
from connector.testing import FrozenClock, InMemoryItemStore
from tests.unit.flow.test_accept_checks import DENIED, OPERATOR, VAGUE, batch

SETTINGS = {"operators": [{"id": OPERATOR, "token": "t" * 32}]}


def test_checks_are_on_by_default_with_the_shipped_configuration() -> None:
    """Without a [checks] table the checks run with config/checks, looked at every minute."""
    settings = validate_settings(SETTINGS)

    assert settings.checks == ChecksSettings(enabled=True, config=None, reload_seconds=60.0)


def test_a_relative_checks_config_is_resolved_against_the_config_file(tmp_path: Path) -> None:
    """checks.config is relative to the directory of the configuration file."""
    shutil.copytree(checks_loader.default_checks_dir(), tmp_path / "checks")

    settings = validate_settings(
        {**SETTINGS, "checks": {"config": "checks/checks.toml", "reload_seconds": 5}},
        base_dir=tmp_path,
    )

    assert settings.checks.config == tmp_path / "checks" / "checks.toml"
    assert settings.checks.reload_seconds == 5


@pytest.mark.parametrize(
    ("checks", "key"),
    [
        ({"config": "nowhere/checks.toml"}, "checks.config"),
        ({"reload_seconds": -1}, "checks.reload_seconds"),
        ({"enable": True}, "checks.enable"),
    ],
)
def test_bad_checks_settings_name_their_key(
    tmp_path: Path, checks: dict[str, object], key: str
) -> None:
    """A missing configuration, a negative interval or an unknown key stops startup."""
    with pytest.raises(ConfigurationError) as raised:
        validate_settings({**SETTINGS, "checks": checks}, base_dir=tmp_path)

    assert any(line.startswith(f"{key}:") for line in str(raised.value).splitlines())


async def test_the_service_rejects_error_findings_and_shows_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With default settings, intake rejects a denied party; the item view and CLI show a
    warning."""
    store = InMemoryItemStore()
    connector = await open_connector(validate_settings(SETTINGS), store=store, clock=FrozenClock())
    try:
        ack = await connector.accept.accept_batch(OPERATOR, batch())
    finally:
        await connector.close()

    assert not ack.items[DENIED].accepted
    warned = store.items[(OPERATOR, ack.items[VAGUE].item_id)]
    view = item_view(warned, ())
    assert [(f["severity"], f["code"]) for f in view["findings"]] == [  # type: ignore[attr-defined]
        ("warning", "description_vague")
    ]
    _print_item(warned, ())
    printed = capsys.readouterr().out
    assert "findings:" in printed
    assert "warning description_vague /ItemBatch/Items/Item[3]/Contents/Line[1]/Description" in (
        printed
    )


async def test_checks_off_in_the_settings_accept_every_valid_item() -> None:
    """enabled = false gives the stages no checks."""
    store = InMemoryItemStore()
    settings = validate_settings({**SETTINGS, "checks": {"enabled": False}})
    connector = await open_connector(settings, store=store, clock=FrozenClock())
    try:
        ack = await connector.accept.accept_batch(OPERATOR, batch())
    finally:
        await connector.close()

    assert connector.accept.checks is None
    assert connector.amend.checks is None
    assert all(item.accepted and not item.findings for item in ack.items)


async def test_the_service_follows_a_rewritten_list(tmp_path: Path) -> None:
    """A list file rewritten while the service runs decides the next intake."""
    shutil.copytree(checks_loader.default_checks_dir(), tmp_path / "checks")
    settings = validate_settings(
        {**SETTINGS, "checks": {"config": "checks", "reload_seconds": 0}}, base_dir=tmp_path
    )
    store = InMemoryItemStore()
    connector = await open_connector(settings, store=store, clock=FrozenClock())
    try:
        before = await connector.accept.accept_batch(OPERATOR, batch((1,), "CHK-A"))
        list_file = tmp_path / "checks" / "denied_parties.csv"
        lines = list_file.read_text(encoding="utf-8").splitlines(keepends=True)
        list_file.write_text(
            "".join(line for line in lines if not line.startswith("fict-person-0001")),
            encoding="utf-8",
        )
        after = await connector.accept.accept_batch(OPERATOR, batch((1,), "CHK-B"))
    finally:
        await connector.close()

    assert not before.items[0].accepted
    assert after.items[0].accepted
