"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    items: int
    seconds: float
    baseline_seconds: float

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds

    @property
    def baseline_items_per_s(self) -> float:
        return self.items / self.baseline_seconds

    @property
    def ratio(self) -> float:
        """Throughput relative to the baseline (1.0 = as fast as the baseline)."""
        return self.baseline_seconds / self.seconds


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def interleaved(
    fn: Callable[[], object], baseline: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Best times of ``fn`` and ``baseline``, run alternately so drift hits both alike."""
    fn()
    baseline()
    best_fn = best_base = float("inf")
    for _ in range(repeat):
        best_base = min(best_base, best_of(baseline, 1))
        best_fn = min(best_fn, best_of(fn, 1))
    return best_fn, best_base
