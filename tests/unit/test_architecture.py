"""Structural guards: the core stays pure, and every error belongs to one tree."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path

import pytest

import connector
import connector.core
import connector.errors

FORBIDDEN_IN_CORE = {
    "aiohttp",
    "sqlmodel",
    "sqlalchemy",
    "apscheduler",
    "asyncpg",
    "aiosqlite",
    "socket",
    "urllib",
    "http",
    "requests",
    "subprocess",
    "connector.adapters",
    "connector.flow",
    "connector.cli",
}
CORE = Path(connector.core.__file__).parent


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_core_imports_no_io_library(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_is_listed() -> None:
    names = {m.name for m in pkgutil.iter_modules([str(CORE)])}
    assert {"inbound", "model", "rules", "s10", "schemas", "xmlsafe"} <= names


def test_every_error_class_derives_from_connector_error_with_a_code() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(connector.errors, inspect.isclass)
        if obj.__module__ == "connector.errors"
    ]
    assert len(classes) > 5
    codes = set()
    for cls in classes:
        assert issubclass(cls, connector.errors.ConnectorError), cls
        assert cls.__doc__, cls
        assert cls.code not in codes, f"duplicate code {cls.code}"
        codes.add(cls.code)
        assert 400 <= cls.http_status < 600
        assert (
            cls.code in (connector.errors.__doc__ or "") or cls is connector.errors.ConnectorError
        )
