"""The async engine, the schema migrations, and the translation of database errors.

Two backends: ``sqlite+aiosqlite:///PATH`` (the embedded default) and
``postgresql+asyncpg://...`` (production, several replicas).

SQLite profile (tech-notes 20): WAL, ``synchronous=NORMAL``, ``busy_timeout=30000``,
``foreign_keys=ON``, a checkpoint every 10,000 WAL pages (past a far larger backstop
when the store checkpoints from a thread: :mod:`connector.adapters.db.checkpoint`) and a
16 MiB page cache (see :data:`_SQLITE_PRAGMAS`), and SQLAlchemy rather than the driver
emits BEGIN, so that every write transaction starts with ``BEGIN IMMEDIATE`` (it takes the
write lock up front and never fails half-way with "database is locked") while reads, on an
engine from :func:`read_only`, start with a plain deferred BEGIN and never wait for writers.

:func:`wrap_errors` is the one place where SQLAlchemy and driver errors become
:class:`~connector.errors.ConnectorError`\\ s; nothing from those libraries leaves
:mod:`connector.adapters.db`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.adapters.db.checkpoint import BACKSTOP_PAGES
from connector.errors import ConfigurationError, ConnectorError, StoreUnavailable

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "create_engine",
    "current_revision",
    "downgrade",
    "ensure_at_head",
    "head_revision",
    "read_only",
    "upgrade",
    "wrap_errors",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "ead-connector db upgrade"

_SQLITE = "sqlite+aiosqlite"
_POSTGRES = "postgresql+asyncpg"
_READ_ONLY = "ead_read_only"
_SQLITE_PRAGMAS = (
    "busy_timeout=30000",  # first: switching to WAL may itself wait for a lock
    "journal_mode=WAL",
    # In WAL, a commit is in the WAL file (the OS's page cache) before COMMIT returns: a
    # killed process loses nothing it committed; only a power cut can take the last ones.
    "synchronous=NORMAL",
    "foreign_keys=ON",
    # Checkpoint every 10,000 pages (~40 MiB of WAL) rather than every 1,000: the committing
    # writer runs it, and forwarding 1,000 items writes ~1,100 pages, most of them twice
    # (claim, then record). Fewer, larger checkpoints copy a page once and sync less often.
    # How often the WAL is copied back does not change what a commit guarantees.
    "wal_autocheckpoint=10000",
    # 16 MiB of page cache per connection (default 2 MiB), enough for the indexes a
    # 1,000-item intake or forward touches at random (references are hashes).
    "cache_size=-16384",
)
#: Serialises concurrent ``db upgrade`` runs of several replicas on PostgreSQL.
_MIGRATION_LOCK_ID = 0x45AD_C0DE


def create_engine(
    url: str, *, schema: str | None = None, background_checkpoints: bool = False
) -> AsyncEngine:
    """An async engine for ``url``, with the backend's profile applied.

    ``schema`` (PostgreSQL only) is put first on the ``search_path``: the tables and
    Alembic's version table live there. ``background_checkpoints`` (SQLite): a
    :class:`~connector.adapters.db.checkpoint.WalCheckpointer` checkpoints the WAL, so
    commits only do it past a far larger backstop. Raises ConfigurationError for any other
    URL.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigurationError(
            "the database URL cannot be parsed; use sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST:PORT/DATABASE"
        ) from error
    if parsed.drivername == _SQLITE:
        if schema is not None:
            raise ConfigurationError("a schema can only be chosen on PostgreSQL")
        return _sqlite_engine(parsed, background_checkpoints)
    if parsed.drivername == _POSTGRES:
        return _postgres_engine(parsed, schema)
    raise ConfigurationError(
        f"unsupported database URL scheme {parsed.drivername!r}; "
        f"use {_SQLITE}:///PATH or {_POSTGRES}://..."
    )


def _sqlite_engine(url: URL, background_checkpoints: bool) -> AsyncEngine:
    if url.database in (None, "", ":memory:") or "memory" in url.query.values():
        raise ConfigurationError(
            "an in-memory SQLite database is not durable; give a file path "
            "(sqlite+aiosqlite:///PATH)"
        )
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not emit BEGIN itself (it would be a deferred one, and none
        # before DDL); the "begin" listener below does it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(f"PRAGMA {pragma}")
            if background_checkpoints:
                cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, schema: str | None) -> AsyncEngine:
    settings = {"application_name": "ead-connector"}
    if schema is not None:
        settings["search_path"] = schema
    return create_async_engine(url, pool_pre_ping=True, connect_args={"server_settings": settings})


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and pool) for transactions that only read.

    On SQLite they begin DEFERRED instead of IMMEDIATE, so readers do not queue behind the
    single writer; on PostgreSQL nothing changes.
    """
    return engine.execution_options(**{_READ_ONLY: True})


@contextmanager
def wrap_errors(
    action: str, *, on_conflict: type[ConnectorError] = StoreUnavailable
) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors raised inside into ConnectorErrors, cause kept.

    ``action`` says what was attempted ("recording an intake"). A constraint violation
    becomes ``on_conflict`` (StoreUnavailable by default: a concurrent writer won and a retry
    will see its result); a lost connection, a lock timeout or any other database failure
    becomes StoreUnavailable. Messages carry no SQL and no connection details; those stay
    on the chained cause for the logs.
    """
    try:
        yield
    except ConnectorError:
        raise
    except exc.IntegrityError as error:
        raise on_conflict(
            f"{action} conflicted with another write; nothing was stored",
            constraint=_constraint_name(error),
        ) from error
    except exc.DBAPIError as error:
        lost = (
            error.statement is None  # raised while connecting
            or error.connection_invalidated
            or isinstance(error, exc.OperationalError | exc.InterfaceError)
        )
        reason = "the database is unavailable" if lost else "the database refused it"
        raise StoreUnavailable(f"{action} failed: {reason}") from error
    except exc.StatementError as error:
        if isinstance(error.orig, ValueError | TypeError):
            # A value the database could not take (e.g. a naive datetime): the caller's bug.
            raise ValueError(f"{action}: {error.orig}") from error
        raise StoreUnavailable(f"{action} failed: the database is unavailable") from error
    except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
        # OSError and TimeoutError: a driver that cannot even connect raises them unwrapped.
        raise StoreUnavailable(f"{action} failed: the database is unavailable") from error


def _constraint_name(error: exc.IntegrityError) -> str | None:
    cause = error.orig.__cause__ if error.orig is not None else None
    name = getattr(cause, "constraint_name", None)  # asyncpg
    if isinstance(name, str):
        return name
    message = str(error.orig)  # SQLite: "UNIQUE constraint failed: items.reference"
    marker = "constraint failed: "
    return message.split(marker, 1)[1] if marker in message else None


def alembic_config() -> Config:
    """Alembic's configuration, built in code: the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The revision this version of the connector needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise ConfigurationError("no database migrations are installed")
    return head


async def upgrade(url: str, *, revision: str = "head", schema: str | None = None) -> None:
    """Migrate the database at ``url`` to ``revision`` (``ead-connector db upgrade``)."""
    await _migrate(url, schema, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, *, revision: str = "base", schema: str | None = None) -> None:
    """Migrate the database at ``url`` back to ``revision`` (``base``: no tables)."""
    await _migrate(url, schema, lambda config: command.downgrade(config, revision))


async def _migrate(url: str, schema: str | None, step: Callable[[Config], None]) -> None:
    engine = create_engine(url, schema=schema)
    try:
        with wrap_errors("migrating the database schema"):
            async with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                await connection.run_sync(_run_alembic, step)
    finally:
        await engine.dispose()


def _run_alembic(connection: Connection, step: Callable[[Config], None]) -> None:
    config = alembic_config()
    # env.py migrates on this connection, inside the caller's transaction.
    config.attributes["connection"] = connection
    step(config)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with wrap_errors("reading the database schema revision"):
        async with read_only(engine).connect() as connection:
            heads = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    return heads[0] if len(heads) == 1 else None


async def ensure_at_head(engine: AsyncEngine) -> None:
    """Refuse a database whose schema is not the one this version needs."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        found = f"at revision {current}" if current else "not initialised"
        raise ConfigurationError(
            f"the database schema is {found}, this version needs {head}; "
            f"run `{UPGRADE_COMMAND}` first",
            current_revision=current,
            required_revision=head,
        )
