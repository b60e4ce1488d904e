"""The schema's Alembic migrations, applied at start and by ``arkitekt server migrate``.

``versions/`` holds one revision per schema change; ``env.py`` runs them on the connection
:func:`upgrade` opened (there is no ``alembic.ini``). A model change needs a new revision: a test
compares the models with the migrated schema on SQLite and PostgreSQL.

On PostgreSQL the whole upgrade runs in one transaction that first takes an advisory lock
(:data:`LOCK_KEY`), so replicas starting at once migrate one after the other: the first applies
the revisions, the others find the schema current. A database made before migrations existed
(tables, but no ``alembic_version``) is adopted: the initial revision creates only the tables and
indexes it lacks, so nothing stored is lost.

New revision (from the repository root; it migrates a scratch SQLite file first, then writes
``versions/NNNN_what_changed.py`` from the difference; review it and ``ruff format`` it)::

    python -c "from arkitekt_server._migrations import revision; revision('what changed')"
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text

from arkitekt_server._db import Database, DatabaseUnavailableError
from arkitekt_server._migrations._schema import metadata

__all__ = ["INITIAL", "LOCK_KEY", "Migrated", "head", "revision", "revision_of", "upgrade"]

HERE = Path(__file__).parent
INITIAL = "0001"
"""The revision that creates the schema of the server from before migrations."""
LOCK_KEY = 0x61726B69_74656B74
"""The ``pg_advisory_xact_lock`` key migrations hold on PostgreSQL ("arkitekt", as a bigint)."""


@dataclass(frozen=True)
class Migrated:
    """What :func:`upgrade` did.

    Attributes:
        before: the revision the database was at (``None``: an empty or pre-migration database).
        after: the revision it is at now.
        adopted: the database was made before migrations; its tables were kept.
    """

    before: str | None
    after: str | None
    adopted: bool = False

    def __str__(self) -> str:
        was = "tables made before migrations" if self.adopted else (self.before or "empty")
        if self.before == self.after:
            return f"database schema at revision {self.after} (up to date)"
        return f"database schema migrated from {was} to revision {self.after}"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    current = ScriptDirectory.from_config(_config()).get_current_head()
    assert current is not None
    return current


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _migrate(connection: Connection, target: str) -> Migrated:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    before = _revision(connection)
    tables = set(inspect(connection).get_table_names())
    adopted = before is None and bool(tables & set(metadata().tables))
    command.upgrade(_config(connection), target)
    return Migrated(before, _revision(connection), adopted)


_IN_PROCESS = threading.Lock()
"""Alembic keeps the running migration in module globals: one upgrade at a time per process
(servers embedded in threads may start at once); replicas take turns by the advisory lock."""


async def _run(database: Database, work: Callable[[Connection], Migrated]) -> Migrated:
    await anyio.to_thread.run_sync(_IN_PROCESS.acquire)
    try:
        async with database.engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        _IN_PROCESS.release()


async def revision_of(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None``: no arkitekt schema); changes nothing.

    Raises:
        DatabaseUnavailableError: the database cannot be reached or used.
    """
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(_revision)
    finally:
        await database.dispose()


async def upgrade(url: str, target: str = "head") -> Migrated:
    """Migrate the database at ``url`` to ``target`` (default: the newest revision).

    Raises:
        DatabaseUnavailableError: the database cannot be reached or used (the message names
            its endpoint and what to check).
    """
    database = Database(url, statement_seconds=None)  # may wait for another replica's upgrade
    try:
        return await _run(database, lambda connection: _migrate(connection, target))
    except CommandError as error:  # e.g. a revision of a newer server
        raise DatabaseUnavailableError(
            f"database {database.endpoint}: its schema cannot be migrated ({error}); a newer "
            "arkitekt server may have migrated it: run that version, or restore a backup"
        ) from None
    finally:
        await database.dispose()


def revision(message: str, url: str = "sqlite:///arkitekt-migrations.sqlite3") -> None:
    """Write a new revision in ``versions/`` from the difference between the models and the
    database at ``url`` (a development tool; the database must be at the newest revision)."""
    import asyncio

    from arkitekt_server._dburl import normalize_url

    async def run() -> None:
        database = Database(normalize_url(url))
        try:
            async with database.engine.begin() as connection:
                await connection.run_sync(lambda c: command.upgrade(_config(c), "head"))
                await connection.run_sync(
                    lambda c: command.revision(
                        _config(c), message, autogenerate=True, rev_id=f"{int(head()) + 1:04d}"
                    )
                )
        finally:
            await database.dispose()

    asyncio.run(run())
