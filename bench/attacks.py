"""How long each hostile file of the test corpus takes to be refused (target: < 2 s each)."""

from __future__ import annotations

import time
from pathlib import Path

from connector.cli import validate_file

ATTACKS = Path(__file__).resolve().parents[1] / "tests" / "data" / "attacks"


def run() -> list[tuple[str, str, float]]:
    """(file, error code, seconds) per attack file, slowest first."""
    results = []
    for path in sorted(ATTACKS.glob("*.xml")):
        started = time.perf_counter()
        verdict = validate_file(path)
        elapsed = time.perf_counter() - started
        results.append((path.name, verdict.error_code or "ACCEPTED", elapsed))
    return sorted(results, key=lambda row: -row[2])
