"""The scale-out figures of ``make bench``, measured in one run on the same machine and data.

(a) ``bound``: the lower bound of the work per item in one thread (:mod:`bench.bound`);
(b) ``e2e SQLite``: the service end to end, one process on SQLite (:func:`bench.e2e.throughput`);
(c) ``e2e PostgreSQL``: the same with 1 and with 2 replicas on one fresh PostgreSQL database,
    when ``CONNECTOR_BENCH_DATABASE_URL`` or ``CONNECTOR_TEST_DATABASE_URL`` names a server;
(d) ``latency``: p50 and p99 from push to final notice at a steady offered load of 1,000
    items/s (100-item pushes every 0.1 s) on SQLite (:func:`bench.e2e.latency`);
(e) ``backlog``: peak RSS of the service with a backlog of accepted items, and how fast it
    drains (:func:`bench.e2e.backlog`);
(f) ``growth``: the SQLite run again with 10x the items; ``growth_10x`` = time(10x) / time(x).

:func:`run` prints a table, each figure beside its target, and returns the summary keys.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import bound, e2e
from bench.harness import OPERATOR, Batch, Credentials, env_database_url, item_ids_of, percentile
from connector.sample import generate_batch

__all__ = ["Sizes", "run", "sizes"]


@dataclass(frozen=True)
class Sizes:
    """How much each figure pushes."""

    batches: int
    """Batches (of ``batch_items``) of the bound and of the SQLite and PostgreSQL runs (x)."""
    growth: int
    """Batches of the 10x run (10 * ``batches``)."""
    backlog: int
    """Batches accepted before the drain."""
    latency_s: float
    """Seconds of steady offered load."""
    repeat: int = 3
    """Runs of the bound (the fastest counts)."""
    batch_items: int = 1_000
    paced_items: int = 100
    paced_interval_s: float = 0.1


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(batches=1, growth=10, backlog=2, latency_s=2.0, repeat=1, batch_items=500)
    return Sizes(batches=10, growth=100, backlog=100, latency_s=20.0)


def _generate(items: int, seed: int) -> bytes:
    return generate_batch(items, seed=seed, operator_id=OPERATOR).xml


def _batches(count: int, items: int, seed: int) -> list[Batch]:
    """``count`` generated batches (the same for the same arguments), made on every core."""
    if count < 8:
        generated = [_generate(items, seed + n) for n in range(count)]
    else:
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            generated = list(pool.map(_generate, [items] * count, range(seed, seed + count)))
    return [Batch(xml, item_ids_of(xml)) for xml in generated]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _round(value: float | None, digits: int = 0) -> float | None:
    if value is None:
        return None
    return round(value, digits) if digits else float(round(value))


def _per_item_ms(cpu_s: float | None, items: int) -> float | None:
    return cpu_s * 1000 / items if cpu_s is not None and items else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT MET")


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "skipped"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f}{unit}"


async def _measure(
    credentials: Credentials,
    plan: Sizes,
    data: list[Batch],
    paced: list[Batch],
    server_url: str | None,
) -> tuple[dict[str, e2e.Run], e2e.Backlog]:
    runs: dict[str, e2e.Run] = {}
    x = data[: plan.batches]

    def done(name: str) -> None:
        print(f"  {name}: done at {time.monotonic() - started:.0f} s", flush=True)

    started = time.monotonic()
    runs["sqlite"] = await e2e.throughput(credentials, x, name="e2e SQLite, 1 process")
    done("(b) SQLite")
    if server_url is not None:
        for replicas in (1, 2):
            runs[f"pg{replicas}"] = await e2e.throughput(
                credentials,
                x,
                name=f"e2e PostgreSQL, {replicas} replica{'s' if replicas > 1 else ''}",
                server_url=server_url,
                replicas=replicas,
            )
            done(f"(c) PostgreSQL, {replicas} replica(s)")
    runs["latency"] = await e2e.latency(
        credentials, paced, plan.paced_interval_s, name="steady 1,000 items/s, SQLite"
    )
    done("(d) latency")
    backlog = await e2e.backlog(credentials, data[: plan.backlog])
    done("(e) backlog")
    runs["sqlite_10x"] = await e2e.throughput(
        credentials, data[: plan.growth], name="e2e SQLite, 10x the items"
    )
    done("(f) 10x")
    return runs, backlog


def run(quick: bool) -> dict[str, object]:
    """Measure (a) to (f), print the table, return the summary keys for the JSON line."""
    plan = sizes(quick)
    server_url = env_database_url(os.environ)
    started = time.monotonic()
    data = _batches(max(plan.batches, plan.growth, plan.backlog), plan.batch_items, 8_000)
    paced = _batches(round(plan.latency_s / plan.paced_interval_s), plan.paced_items, 20_000)
    print(f"scale figures: data generated in {time.monotonic() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="ead-bench-") as name:
        credentials = Credentials.create(Path(name))
        bound_items, bound_s = bound.run(data[: plan.batches], credentials.ring, plan.repeat)
        print(f"  (a) bound: done in {bound_s:.1f} s", flush=True)
        runs, backlog = asyncio.run(_measure(credentials, plan, data, paced, server_url))
    skipped = (
        None
        if server_url is not None
        else "PostgreSQL runs skipped: set CONNECTOR_BENCH_DATABASE_URL or "
        "CONNECTOR_TEST_DATABASE_URL (postgresql+asyncpg://...)"
    )
    return _report(plan, bound_items / bound_s, runs, backlog, skipped)


def _report(
    plan: Sizes,
    bound_per_s: float,
    runs: dict[str, e2e.Run],
    backlog: e2e.Backlog,
    skipped: str | None,
) -> dict[str, object]:
    sqlite, latency, grown = runs["sqlite"], runs["latency"], runs["sqlite_10x"]
    pg1, pg2 = runs.get("pg1"), runs.get("pg2")
    ratio = sqlite.items_per_s / bound_per_s
    scale = _ratio(pg2.items_per_s, pg1.items_per_s) if pg1 and pg2 else None
    latencies = latency.latencies_s
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    offered = plan.paced_items / plan.paced_interval_s
    peak_rss = backlog.peak_rss_mb
    per_process = [rss for one in runs.values() for rss in one.process_rss_mb]
    peak_any = max(per_process) if per_process else None
    growth = grown.seconds / sqlite.seconds
    growth_cpu = _ratio(grown.service_cpu_s, sqlite.service_cpu_s)
    print()
    print(
        f"{'run':<36} {'items':>8} {'seconds':>8} {'items/s':>9} "
        f"{'CPU ms/item: service':>21} {'Customs':>8} {'database':>9} {'operator':>9} "
        f"{'peak RSS MB':>12}"
    )
    for one in runs.values():
        cpu = [
            _ms(_per_item_ms(used, one.items))
            for used in (one.service_cpu_s, one.customs_cpu_s, one.database_cpu_s, one.bench_cpu_s)
        ]
        print(
            f"{one.name:<36} {one.items:>8,} {one.seconds:>8.1f} {one.items_per_s:>9,.0f} "
            f"{cpu[0]:>21} {cpu[1]:>8} {cpu[2]:>9} {cpu[3]:>9} {_fmt(one.peak_rss_mb):>12}"
        )
    print(
        f"{'backlog: intake (forwarding off)':<36} {backlog.items:>8,} {backlog.intake_s:>8.1f} "
        f"{backlog.items / backlog.intake_s:>9,.0f} {'':>50} {_fmt(backlog.intake_rss_mb):>12}"
    )
    print(
        f"{'backlog: drain to the final notice':<36} {backlog.items:>8,} {backlog.drain_s:>8.1f} "
        f"{backlog.drain_items_per_s:>9,.0f} {'':>50} {_fmt(backlog.drain_rss_mb):>12}"
    )
    if skipped:
        print(skipped)
    print()
    rows = [
        ("(a) bound: validate+checks+insert+sign", _fmt(bound_per_s, "/s"), "-", None),
        (
            "(b) e2e SQLite",
            _fmt(sqlite.items_per_s, "/s"),
            ">= 5,000/s",
            sqlite.items_per_s >= 5_000,
        ),
        ("    e2e SQLite / bound", f"{ratio:.2f}", ">= 0.50", ratio >= 0.5),
        ("(c) e2e PostgreSQL, 1 replica", _fmt(pg1.items_per_s if pg1 else None, "/s"), "-", None),
        ("    e2e PostgreSQL, 2 replicas", _fmt(pg2.items_per_s if pg2 else None, "/s"), "-", None),
        (
            "    2 replicas / 1 replica",
            _fmt(scale, "x"),
            ">= 1.70x",
            None if scale is None else scale >= 1.7,
        ),
        (f"(d) p50 at {offered:,.0f} items/s offered", _fmt(p50, " ms"), "-", None),
        ("    p99", _fmt(p99, " ms"), "< 2,000 ms", p99 < 2_000),
        (
            f"(e) peak RSS, {backlog.items:,}-item backlog",
            _fmt(peak_rss, " MB"),
            "< 400 MB",
            None if peak_rss is None else peak_rss < 400,
        ),
        ("    peak RSS of one process, any run", _fmt(peak_any, " MB"), "-", None),
        (
            f"(f) growth_10x ({sqlite.items:,} -> {grown.items:,} items)",
            f"{growth:.2f}",
            "<= 11",
            growth <= 11,
        ),
        ("    service CPU time(10x) / CPU time(x)", _fmt(growth_cpu, "x"), "-", None),
    ]
    print(f"{'target':<44} {'measured':>12} {'target':>12}  verdict")
    for label, value, target, ok in rows:
        print(f"{label:<44} {value:>12} {target:>12}  {_met(ok)}")
    summary: dict[str, object] = {
        "bound_items_per_s": _round(bound_per_s),
        "e2e_sqlite_items_per_s": _round(sqlite.items_per_s),
        "ratio_sqlite": _round(ratio, 3),
        "e2e_pg1_items_per_s": _round(pg1.items_per_s) if pg1 else None,
        "e2e_pg2_items_per_s": _round(pg2.items_per_s) if pg2 else None,
        "scale_pg2_over_pg1": _round(scale, 3),
        "p50_ms": _round(p50),
        "p99_ms": _round(p99),
        "latency_offered_items_per_s": _round(offered),
        "peak_rss_mb": _round(peak_rss, 1),
        "peak_rss_mb_any_run": _round(peak_any, 1),
        "backlog_items": backlog.items,
        "backlog_drain_items_per_s": _round(backlog.drain_items_per_s),
        "growth_10x": _round(growth, 3),
        "growth_10x_service_cpu": _round(growth_cpu, 3),
        "e2e_sqlite_10x_items_per_s": _round(grown.items_per_s),
        "service_cpu_ms_per_item": _round(_per_item_ms(sqlite.service_cpu_s, sqlite.items), 3),
        "customs_cpu_ms_per_item": _round(_per_item_ms(sqlite.customs_cpu_s, sqlite.items), 3),
        "e2e_items": sqlite.items,
    }
    if skipped:
        summary["pg_skipped"] = skipped
    return summary
