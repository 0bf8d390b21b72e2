"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Every test starts from structlog's defaults: a CLI run in-process (which configures
    logging for the service) must not change what the next test's log capture sees."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
