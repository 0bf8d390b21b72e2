"""``python -m bench [--quick]``: print each figure with its in-run baseline, the scale-out
figures against their targets (:mod:`bench.targets`), then one JSON line.

``--quick`` is the smoke version (under a minute on the 2-core development VM): smaller data
everywhere, the 10,000-item validation and the demo round trip left out (the steady-load
latency of :mod:`bench.targets` measures the round trip).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform

import structlog

from bench import attacks, checks, forward, intake, roundtrip, targets, validation


def main() -> None:
    # The figures are the output: keep the service's info logs out of it.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    figures = (
        validation.run(args.quick)
        + intake.run(args.quick)
        + checks.run(args.quick)
        + forward.run(args.quick)
    )
    latency: dict[str, float] = {}
    if not args.quick:
        trip, latency = roundtrip.run(args.quick)
        figures += trip
    print(f"{'figure':<52} {'items/s':>12} {'baseline/s':>12} {'ratio':>7}")
    for figure in figures:
        print(
            f"{figure.name:<52} {figure.items_per_s:>12,.0f} "
            f"{figure.baseline_items_per_s:>12,.0f} {figure.ratio:>7.2f}"
        )
    rejected = attacks.run()
    slowest = rejected[0]
    print(
        f"attack corpus: {len(rejected)} files, all refused: "
        f"{all(code != 'ACCEPTED' for _, code, _ in rejected)}; slowest {slowest[0]} "
        f"({slowest[1]}) in {slowest[2] * 1000:.1f} ms (target < 2000 ms)"
    )
    summary: dict[str, object] = {
        figure.name.replace(" ", "_")
        .replace(",", "")
        .replace("(", "")
        .replace(")", "")
        .replace("%", "pct"): {
            "items_per_s": round(figure.items_per_s),
            "baseline_items_per_s": round(figure.baseline_items_per_s),
            "ratio": round(figure.ratio, 3),
        }
        for figure in figures
    }
    summary["attack_slowest_ms"] = round(slowest[2] * 1000, 1)
    summary.update(latency)
    if latency:
        print(
            f"round trip intake -> final notice: p50 {latency['roundtrip_p50_ms']} ms, "
            f"p99 {latency['roundtrip_p99_ms']} ms"
        )
    summary.update(targets.run(args.quick))
    summary["quick"] = args.quick
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
