"""Smoke runs of the end-to-end bench: every accepted item reaches its final notice.

They start the real service (``python -m connector run``) and the releasing mock Customs in
subprocesses, as ``make bench`` does, on small data. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from bench import e2e, targets
from bench.harness import OPERATOR, Batch, Credentials, Operator, env_database_url, item_ids_of
from connector.sample import generate_batch

PG_URL = env_database_url(os.environ)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return Credentials.create(tmp_path_factory.mktemp("bench-credentials"))


def _batches(count: int, items: int, *, invalid_ratio: float = 0.0) -> list[Batch]:
    generated = [
        generate_batch(items, seed=500 + n, operator_id=OPERATOR, invalid_ratio=invalid_ratio).xml
        for n in range(count)
    ]
    return [Batch(xml, item_ids_of(xml)) for xml in generated]


def _assert_all_released(run: e2e.Run, expected: int) -> None:
    assert run.items == expected
    assert run.final == run.items
    assert run.customs["declarations"] == expected
    assert run.customs["released"] == expected
    assert run.customs["refused_decisions"] == 0
    assert run.customs["refused_batches"] == {}
    assert len(run.latencies_s) == expected
    assert run.seconds > 0


@pytest.mark.slow
async def test_sqlite_run_gives_every_accepted_item_its_final_notice(
    credentials: Credentials,
) -> None:
    # 10 % invalid: the rejected items are not waited for, the accepted ones all are.
    batches = _batches(3, 200, invalid_ratio=0.1)
    run = await e2e.throughput(credentials, batches, name="smoke")
    _assert_all_released(run, 3 * 180)
    assert run.peak_rss_mb is not None
    assert run.service_cpu_s is not None


@pytest.mark.slow
async def test_paced_pushes_give_every_item_its_final_notice(credentials: Credentials) -> None:
    run = await e2e.latency(credentials, _batches(5, 50), 0.1, name="smoke paced")
    _assert_all_released(run, 250)


@pytest.mark.slow
async def test_backlog_drains_to_the_last_item(credentials: Credentials) -> None:
    backlog = await e2e.backlog(credentials, _batches(2, 300))
    assert backlog.items == 600
    assert backlog.intake_rss_mb is not None
    assert backlog.drain_rss_mb is not None


def test_harness_reads_item_ids_in_order() -> None:
    xml = generate_batch(5, seed=3, operator_id=OPERATOR).xml
    ids = item_ids_of(xml)
    assert len(ids) == 5
    assert all(f"<ItemId>{item_id}</ItemId>".encode() in xml for item_id in ids)


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is None, reason="set CONNECTOR_TEST_DATABASE_URL")
async def test_two_replicas_on_postgresql_give_every_item_its_final_notice(
    credentials: Credentials,
) -> None:
    assert PG_URL is not None
    run = await e2e.throughput(
        credentials, _batches(4, 250), name="smoke pg2", server_url=PG_URL, replicas=2
    )
    _assert_all_released(run, 1000)
    assert run.replicas == 2


def test_a_missing_postgresql_url_means_no_postgresql_runs() -> None:
    assert env_database_url({}) is None
    assert env_database_url({"CONNECTOR_TEST_DATABASE_URL": ""}) is None
    bench = "postgresql+asyncpg://bench@localhost/b"
    both = {"CONNECTOR_TEST_DATABASE_URL": "postgresql+asyncpg://t@localhost/t"}
    assert env_database_url({**both, "CONNECTOR_BENCH_DATABASE_URL": bench}) == bench


async def test_a_run_without_progress_fails_instead_of_hanging() -> None:
    async with Operator(["http://127.0.0.1:9"], stall_s=0.2) as operator:
        operator.accepted = {"RR000000001PL", "RR000000002PL"}
        operator.final_at = {"RR000000001PL": 0.0}
        with pytest.raises(AssertionError, match="1 of 2 accepted items have no final notice"):
            await operator.wait_final(asyncio.create_task(asyncio.sleep(0)))


async def test_a_failed_push_ends_the_wait_with_its_error() -> None:
    async def refused() -> None:
        raise AssertionError("push refused: 401")

    async with Operator(["http://127.0.0.1:9"]) as operator:
        with pytest.raises(AssertionError, match="push refused: 401"):
            await operator.wait_final(asyncio.create_task(refused()))


def _run(name: str, items: int, seconds: float, **extra: Any) -> e2e.Run:
    return e2e.Run(name, items, seconds, final=items, latencies_s=[0.1, 0.2, 3.0], **extra)


@pytest.mark.parametrize("with_pg", [True, False])
def test_the_summary_has_every_key_and_null_for_a_skipped_part(
    with_pg: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = {
        "sqlite": _run("b", 1000, 2.0, peak_rss_mb=150.0, process_rss_mb=(150.0,)),
        "latency": _run("d", 3, 1.0),
        "sqlite_10x": _run("f", 10_000, 19.0),
    }
    if with_pg:
        runs["pg1"] = _run("c1", 1000, 2.0)
        runs["pg2"] = _run("c2", 1000, 1.0, replicas=2, process_rss_mb=(120.0, 130.0))
    backlog = e2e.Backlog(2000, 1.0, 4.0, 210.0, 180.0, 210.0)
    skipped = None if with_pg else "PostgreSQL runs skipped: no server"
    summary = targets._report(targets.sizes(True), 1000.0, runs, backlog, skipped)
    keys = {
        "bound_items_per_s",
        "e2e_sqlite_items_per_s",
        "ratio_sqlite",
        "e2e_pg1_items_per_s",
        "e2e_pg2_items_per_s",
        "scale_pg2_over_pg1",
        "p50_ms",
        "p99_ms",
        "peak_rss_mb",
        "growth_10x",
    }
    assert keys <= summary.keys()
    assert summary["ratio_sqlite"] == 0.5
    assert summary["growth_10x"] == 9.5
    assert summary["peak_rss_mb"] == 210.0
    assert summary["p50_ms"] == 200.0
    assert summary["p99_ms"] == 3000.0
    if with_pg:
        assert summary["scale_pg2_over_pg1"] == 2.0
        assert summary["peak_rss_mb_any_run"] == 150.0
    else:
        assert summary["e2e_pg1_items_per_s"] is None
        assert summary["e2e_pg2_items_per_s"] is None
        assert summary["scale_pg2_over_pg1"] is None
        assert "no server" in capsys.readouterr().out
