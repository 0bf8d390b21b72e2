"""The database adapter: SQLModel tables, the SQL item store and Alembic migrations.

:mod:`~connector.adapters.db.tables` is the only module that imports sqlmodel;
:mod:`~connector.adapters.db.engine` builds the async engine (SQLite or PostgreSQL) and runs
migrations; :mod:`~connector.adapters.db.store` is the only SQL-aware code the flow reaches,
through the :class:`~connector.ports.ItemStore` port.
"""
