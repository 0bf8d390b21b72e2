"""The full round trip on loopback: operator push or pull → forward → Customs decides →
signed notice at the operator, as ``make demo`` runs it (HTTPS, mTLS, real signatures).

Figures: accepted items per second from the first push to the last final notice, and the
intake-to-final-notice latency per item (p50, p99). Customs answers in rounds every 0.3 s and
holds, refers, stops or rejects a share of items (released or decided finally in a later
round), so the latency includes those second rounds. The baseline beside the throughput is
parse + validate + sign of the same number of items (no I/O), for scale.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import tempfile
import time
from pathlib import Path

from bench.timing import Figure
from connector.adapters.keystore import KeyRing
from connector.core import signing
from connector.core.inbound import validate_item_batch
from connector.core.xmlsafe import parse_xml
from connector.demo import DemoOptions, run_demo
from connector.sample import generate_batch


def _baseline_seconds(items: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        key = KeyRing.create(Path(directory), b"bench passphrase", "ec", "bench", 30).active
        batches = [
            generate_batch(min(250, items - start), seed=start, operator_id="DE-POST").xml
            for start in range(0, items, 250)
        ]
        started = time.perf_counter()
        for data in batches:
            validate_item_batch(data)
            signing.sign(parse_xml(data), key)
        return time.perf_counter() - started


def run(quick: bool) -> tuple[list[Figure], dict[str, float]]:
    items = 600 if quick else 3000
    result = asyncio.run(run_demo(DemoOptions(items=items, seed=11, progress=io.StringIO())))
    if not result.ok:
        raise AssertionError(f"round trip incomplete: {result.final} of {result.accepted}")
    latencies = sorted(result.latencies_s)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int((len(latencies) - 1) * 0.99)] * 1000
    figure = Figure(
        f"round trip push -> notice ({items:,} items)",
        result.accepted,
        result.seconds,
        _baseline_seconds(result.accepted),
    )
    return [figure], {"roundtrip_p50_ms": round(p50), "roundtrip_p99_ms": round(p99)}
