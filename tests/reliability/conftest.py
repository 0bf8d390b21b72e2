"""Fixtures shared by the reliability suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.hostile import Served


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The connector's HTTP app on a loopback port in its own thread, one per module."""
    app = Served()
    try:
        yield app
    finally:
        app.close()
