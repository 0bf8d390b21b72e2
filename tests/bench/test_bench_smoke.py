"""Smoke runs of the benchmarks: they work end to end (make bench prints the figures)."""

from __future__ import annotations

import logging

import structlog

from bench import forward


def test_forward_bench_forwards_every_item() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        sign, sent = forward.run(quick=True)  # raises unless every item reached the mock
    finally:
        structlog.reset_defaults()
    assert sign.items == sent.items == 3 * forward.BATCH
    assert sign.seconds > 0
    assert sent.seconds > 0
    assert sent.baseline_seconds == sign.baseline_seconds
