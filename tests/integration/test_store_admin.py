"""The ItemStore contract of administration (memory, SQLite, PostgreSQL): operators added,
disabled and given new tokens by an admin, kept so by the configuration sync; the audit log;
the item search."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from connector.core.model import CustomsDecision, ItemState
from connector.core.references import item_reference
from connector.core.retry import RetryDecision
from connector.errors import ConfigurationError, IllegalTransition, NotFound
from connector.ports import AuditEntry, CustomsReceipt, ItemSearch, OperatorRecord
from tests.integration.conftest import T0, Store, incoming, item_id, make_intake
from tests.integration.test_store_decisions import decision, response

OP_A = OperatorRecord("OPA", "Post A", True, token_sha256="a" * 64, cert_sha256="c" * 64)
OP_B = OperatorRecord("OPB", "Post B", True, token_sha256="b" * 64)
NEW = OperatorRecord("OPN", "New Post", True, token_sha256="n" * 64)
AT = T0 + timedelta(hours=1)


def audit(action: str, target: str, **detail: object) -> AuditEntry:
    return AuditEntry(AT, "api", action, target, detail, request_id="req-1")


async def _actions(store: Store) -> list[tuple[str, str]]:
    return [(entry.action, entry.target) for entry in await store.audit_after(0, 1000)]


# -- operators ------------------------------------------------------------------------------


async def test_an_added_operator_authenticates_and_is_admin_managed(store: Store) -> None:
    await store.upsert_operators((OP_A,))

    added = await store.add_operator(NEW, audit("operator.add", "OPN", name="New Post"))

    assert added.record == NEW
    assert (added.managed_by, added.admin_disabled, added.token_rotated_at) == ("admin", False, AT)
    assert await store.operator_by_token("n" * 64) == NEW
    listed = {op.record.operator_id: op for op in await store.admin_operators()}
    assert list(listed) == ["OPA", "OPN"]
    assert listed["OPA"].managed_by == "config"
    assert listed["OPA"].token_rotated_at is None
    [entry] = await store.audit_after(0, 10)
    assert (entry.actor, entry.action, entry.target, entry.request_id) == (
        "api",
        "operator.add",
        "OPN",
        "req-1",
    )
    assert entry.detail == {"name": "New Post"}
    assert entry.id is not None
    assert entry.at == AT


async def test_adding_a_taken_id_or_credential_changes_nothing(store: Store) -> None:
    await store.upsert_operators((OP_A,))

    with pytest.raises(IllegalTransition):
        await store.add_operator(replace(NEW, operator_id="OPA"), audit("operator.add", "OPA"))
    with pytest.raises(IllegalTransition):
        await store.add_operator(replace(NEW, token_sha256="a" * 64), audit("operator.add", "x"))
    with pytest.raises(IllegalTransition):
        await store.add_operator(
            replace(NEW, token_sha256=None, cert_sha256="c" * 64), audit("operator.add", "x")
        )

    assert [op.record.operator_id for op in await store.admin_operators()] == ["OPA"]
    assert await store.operator_by_token("a" * 64) == OP_A
    assert await store.audit_after(0, 10) == ()


async def test_a_rotated_token_replaces_the_old_one_at_once(store: Store) -> None:
    await store.upsert_operators((OP_A, OP_B))

    rotated = await store.rotate_operator_token("OPA", "r" * 64, audit("operator.rotate", "OPA"))

    assert rotated.record.token_sha256 == "r" * 64
    assert rotated.token_rotated_at == AT
    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_token("r" * 64) == replace(OP_A, token_sha256="r" * 64)
    assert await store.operator_by_cert("c" * 64) is not None  # the certificate is untouched
    with pytest.raises(IllegalTransition):  # another operator's token
        await store.rotate_operator_token("OPA", "b" * 64, audit("operator.rotate", "OPA"))
    with pytest.raises(NotFound):
        await store.rotate_operator_token("NOPE", "z" * 64, audit("operator.rotate", "NOPE"))
    assert await _actions(store) == [("operator.rotate", "OPA")]


async def test_a_disabled_operator_stops_authenticating_until_enabled(store: Store) -> None:
    await store.upsert_operators((OP_A,))

    disabled = await store.set_operator_disabled("OPA", True, audit("operator.disable", "OPA"))

    assert (disabled.admin_disabled, disabled.record.enabled) == (True, False)
    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_cert("c" * 64) is None
    enabled = await store.set_operator_disabled("OPA", False, audit("operator.enable", "OPA"))
    assert (enabled.admin_disabled, enabled.record.enabled) == (False, True)
    assert await store.operator_by_token("a" * 64) == OP_A
    with pytest.raises(NotFound):
        await store.set_operator_disabled("NOPE", True, audit("operator.disable", "NOPE"))
    assert await _actions(store) == [("operator.disable", "OPA"), ("operator.enable", "OPA")]


async def test_enabling_an_operator_the_configuration_disables_is_refused(store: Store) -> None:
    await store.upsert_operators((replace(OP_A, enabled=False), OP_B))

    with pytest.raises(IllegalTransition, match="configuration"):
        await store.set_operator_disabled("OPA", False, audit("operator.enable", "OPA"))
    await store.upsert_operators((OP_B,))  # dropped from the configuration
    with pytest.raises(IllegalTransition):
        await store.set_operator_disabled("OPA", False, audit("operator.enable", "OPA"))

    assert await store.operator_by_token("a" * 64) is None
    assert await store.audit_after(0, 10) == ()


async def test_the_configuration_sync_keeps_the_admins_decisions(store: Store) -> None:
    """A restart (upsert_operators again) neither re-enables an operator an admin disabled,
    nor brings back a configured token an admin rotated away, nor drops an added operator."""
    await store.upsert_operators((OP_A, OP_B))
    await store.set_operator_disabled("OPA", True, audit("operator.disable", "OPA"))
    await store.rotate_operator_token("OPB", "r" * 64, audit("operator.rotate", "OPB"))
    await store.add_operator(NEW, audit("operator.add", "OPN"))

    ignored = await store.upsert_operators((OP_A, replace(OP_B, name="Post B renamed")))

    assert ignored == ("OPB",)
    assert await store.operator_by_token("a" * 64) is None
    assert await store.operator_by_cert("c" * 64) is None
    assert await store.operator_by_token("b" * 64) is None
    b = await store.operator_by_token("r" * 64)
    assert b is not None
    assert (b.operator_id, b.name) == ("OPB", "Post B renamed")
    assert await store.operator_by_token("n" * 64) == NEW
    listed = {op.record.operator_id: op for op in await store.admin_operators()}
    assert (listed["OPA"].admin_disabled, listed["OPN"].managed_by) == (True, "admin")
    # The same configuration once more reports the ignored token again; no token: nothing.
    assert await store.upsert_operators((OP_A, replace(OP_B, token_sha256=None))) == ()


async def test_a_configured_token_equal_to_the_rotated_one_is_not_reported(store: Store) -> None:
    await store.upsert_operators((OP_B,))
    await store.rotate_operator_token("OPB", "r" * 64, audit("operator.rotate", "OPB"))

    assert await store.upsert_operators((replace(OP_B, token_sha256="r" * 64),)) == ()
    assert await store.operator_by_token("r" * 64) is not None


async def test_an_operator_dropped_from_the_configuration_loses_a_rotated_token(
    store: Store,
) -> None:
    await store.upsert_operators((OP_A, OP_B))
    await store.rotate_operator_token("OPA", "r" * 64, audit("operator.rotate", "OPA"))

    await store.upsert_operators((OP_B,))

    assert await store.operator_by_token("r" * 64) is None
    listed = {op.record.operator_id: op for op in await store.admin_operators()}
    assert listed["OPA"].record.token_sha256 is None
    assert listed["OPA"].token_rotated_at is None
    assert listed["OPA"].record.enabled is False


async def test_the_configuration_adopts_an_added_operator_and_keeps_its_token(
    store: Store,
) -> None:
    await store.add_operator(NEW, audit("operator.add", "OPN"))

    ignored = await store.upsert_operators(
        (replace(NEW, name="Configured", token_sha256="x" * 64),)
    )

    assert ignored == ("OPN",)
    [adopted] = await store.admin_operators()
    assert (adopted.managed_by, adopted.record.name) == ("config", "Configured")
    assert await store.operator_by_token("n" * 64) is not None
    assert await store.operator_by_token("x" * 64) is None


async def test_a_configured_token_an_added_operator_holds_is_a_configuration_error(
    store: Store,
) -> None:
    await store.add_operator(NEW, audit("operator.add", "OPN"))

    with pytest.raises(ConfigurationError):
        await store.upsert_operators((replace(OP_A, token_sha256="n" * 64),))


# -- the audit log in the changes' transactions ---------------------------------------------


async def test_replay_and_pause_append_their_audit_rows(store: Store) -> None:
    await store.record_intake(make_intake(2))
    claims = await store.claim_for_forwarding("w", 10, 60, T0 + timedelta(seconds=1))
    dead = RetryDecision(retry_at=None, dead=True, reason="out of attempts")
    await store.record_forward_failure(claims[:1], "w", "503", dead, T0)
    reference = claims[0].reference

    await store.replay(reference, AT, audit=audit("dead.replay", reference))
    await store.set_paused("pull:OP1", True, audit=audit("schedule.pause", "pull:OP1"))
    await store.set_paused("pull:OP1", False)  # no audit entry given: none written

    assert await _actions(store) == [("dead.replay", reference), ("schedule.pause", "pull:OP1")]
    # A replay that fails writes no audit row either.
    with pytest.raises(IllegalTransition):
        await store.replay(reference, AT, audit=audit("dead.replay", reference))
    assert len(await store.audit_after(0, 10)) == 2


async def test_the_audit_log_pages_by_id_and_keeps_the_detail(store: Store) -> None:
    for number in range(5):
        stored = await store.record_audit(audit("key.rotate", f"k{number}", previous=number))
        assert stored.id is not None
    first = await store.audit_after(0, 2)
    assert [entry.target for entry in first] == ["k0", "k1"]
    assert first[1].id is not None
    rest = await store.audit_after(first[1].id, 10)
    assert [entry.target for entry in rest] == ["k2", "k3", "k4"]
    assert rest[0].detail == {"previous": 2}
    assert json.dumps(dict(rest[0].detail))  # plain JSON
    last = rest[-1].id
    assert last is not None
    assert await store.audit_after(last, 10) == ()


# -- item search ----------------------------------------------------------------------------


async def _items_for_search(store: Store) -> None:
    """OPA: 3 items received at T0, T0+1h, T0+2h; OPB: 2 at T0+1h."""
    for hour in range(3):
        intake = make_intake(
            (incoming(0, hour),),
            operator_id="OPA",
            batch_id=f"A{hour}",
            received_at=T0 + timedelta(hours=hour),
        )
        await store.record_intake(intake)
    await store.record_intake(
        make_intake(2, operator_id="OPB", batch_id="B", received_at=T0 + timedelta(hours=1))
    )


async def _decide_first_of_a(store: Store) -> None:
    """OPA's items FORWARDED, its first one decided HOLD; OPB's stay FORWARDING."""
    later = T0 + timedelta(hours=3)
    claims = await store.claim_for_forwarding("w", 100, 60, later)
    receipt = CustomsReceipt("EU-ICS2", "DB1", later, b"<r/>")
    held = [claim for claim in claims if claim.operator_id == "OPA"]
    await store.record_forwarded(held, "w", "DB1", b"<s/>", receipt, later)
    await store.apply_response(
        response("R1", 1, minutes=240), [decision("R1", 0, CustomsDecision.HOLD, operator_id="OPA")]
    )


async def test_search_filters_by_operator_state_decision_and_time(store: Store) -> None:
    await _items_for_search(store)
    await _decide_first_of_a(store)
    a = [item_reference("OPA", item_id(number)) for number in range(3)]
    b = [item_reference("OPB", item_id(number)) for number in range(2)]

    async def refs(**criteria: object) -> list[str]:
        found = await store.search_items(ItemSearch(**criteria))  # type: ignore[arg-type]
        return [item.reference for item in found]

    everything = await refs()
    assert everything[0] == a[2]  # newest first
    assert everything[-1] == a[0]
    assert sorted(everything[1:4]) == sorted([a[1], *b])
    assert await refs(operator_id="OPA") == [a[2], a[1], a[0]]
    assert await refs(operator_id="OPB", state=ItemState.FORWARDING) == sorted(b, reverse=True)
    assert await refs(state=ItemState.DECIDED) == [a[0]]
    assert await refs(decision=CustomsDecision.HOLD) == [a[0]]
    assert await refs(decision=CustomsDecision.RELEASE) == []
    hour = timedelta(hours=1)
    assert await refs(operator_id="OPA", received_from=T0 + hour) == [a[2], a[1]]
    assert await refs(operator_id="OPA", received_to=T0 + hour) == [a[0]]
    assert await refs(received_from=T0 + hour, received_to=T0 + 2 * hour) == sorted(
        [a[1], *b], reverse=True
    )
    assert await refs(operator_id="NOPE") == []


async def test_search_pages_with_the_last_items_cursor(store: Store) -> None:
    await _items_for_search(store)
    everything = await store.search_items(ItemSearch(limit=100))
    assert len(everything) == 5

    pages: list[str] = []
    after = None
    for _ in range(len(everything) + 1):  # bounded: a cursor that does not advance fails
        page = await store.search_items(ItemSearch(limit=2, after=after))
        pages.extend(item.reference for item in page)
        if len(page) < 2:
            break
        after = (page[-1].received_at, page[-1].reference)
    assert pages == [item.reference for item in everything]
    assert await store.search_items(ItemSearch(limit=0)) == ()
