"""``python -m bench [--quick]``: print each figure with its in-run baseline, then one JSON line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform

import structlog

from bench import attacks, checks, forward, intake, roundtrip, validation


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
    trip, latency = roundtrip.run(args.quick)
    figures += trip
    print(f"{'figure':<40} {'items/s':>12} {'baseline/s':>12} {'ratio':>7}")
    for figure in figures:
        print(
            f"{figure.name:<40} {figure.items_per_s:>12,.0f} "
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
    print(
        f"round trip intake -> final notice: p50 {latency['roundtrip_p50_ms']} ms, "
        f"p99 {latency['roundtrip_p99_ms']} ms"
    )
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
