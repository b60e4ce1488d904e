"""The database: one declarative ``Base`` for every service, an async engine and sessions.

Each service keeps its tables in its own module on :class:`Base` (fakts/auth in
``arkitekt_server.fakts._models``). The schema is made and changed by the Alembic migrations of
``arkitekt_server._migrations``, applied when the server starts (or by
``arkitekt server migrate``).

The database is SQLite in the data directory by default, or PostgreSQL (asyncpg) when
``database_url`` names one. A database that cannot be reached raises
:class:`DatabaseUnavailableError` (one line naming the endpoint and what to check, never the
password), at start and mid-run alike; every wait for it is bounded (connecting, a free pooled
connection, each statement), and pooled connections are checked before use, so a replica
recovers by itself once the database is back.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Request
from pydantic import SecretStr
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from arkitekt_server._dbfaults import (
    DatabaseUnavailableError,
    ValueRefusedError,
    describe,
    refused_value,
)
from arkitekt_server._dburl import POSTGRES_DRIVER, endpoint, normalize_url, shown_url, sqlite_url
from arkitekt_server._errors import ArkitektServerError

__all__ = [
    "Base",
    "Database",
    "DatabaseUnavailableError",
    "UTCDateTime",
    "ValueRefusedError",
    "database_file",
    "get_session",
    "private_dir",
    "sqlite_url",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """The current time, timezone aware in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A datetime stored as naive UTC and read back timezone aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; use utcnow()")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """The declarative base every service's tables derive from."""

    type_annotation_map = {dt.datetime: UTCDateTime}


def database_file(data_dir: Path) -> Path:
    """The SQLite database file inside a data directory."""
    return data_dir / "arkitekt.sqlite3"


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the CLI (another process) write while the server reads; busy_timeout makes a
    # writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def private_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (0700) and its SQLite database files (0600) private to the server's user.

    Also fixes an existing directory or database made with wider modes.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    database = database_file(data_dir)
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists():
            path.chmod(0o600)


def _private_database(data_dir: Path) -> Path:
    """The SQLite file of ``data_dir``, private (see :func:`private_dir`), created if missing.

    Created here, empty, so that SQLite's journal files (``-wal``, ``-shm``), which SQLite
    creates with the database file's mode, are private from their start.
    """
    private_dir(data_dir)
    database = database_file(data_dir)
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    return database


CONNECT_SECONDS = 5.0
"""Longest wait for a new PostgreSQL connection."""
POOL_SECONDS = 10.0
"""Longest wait for a free pooled connection (all busy)."""
STATEMENT_SECONDS = 30.0
"""Longest wait for one PostgreSQL statement's answer (a lost server is noticed within it)."""


class Database:
    """An async engine and its session factory.

    Args:
        url: a SQLAlchemy async URL (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).
        statement_seconds: the longest wait for one statement on PostgreSQL (``None``: no
            limit, for migrations, which may wait for another replica's).
    """

    def __init__(self, url: str, *, statement_seconds: float | None = STATEMENT_SECONDS) -> None:
        self.url = url
        self.endpoint = endpoint(url)
        options: dict[str, Any] = {}
        if url.startswith(POSTGRES_DRIVER):
            options = {
                "pool_pre_ping": True,  # a connection lost with the server is replaced, unused
                "pool_timeout": POOL_SECONDS,
                "connect_args": {
                    "async_creator_fn": self._connect,
                    "timeout": CONNECT_SECONDS,
                    "command_timeout": statement_seconds,
                    "server_settings": {"application_name": "arkitekt-server"},
                },
            }
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(self.engine.sync_engine, "handle_error", self._on_error)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def in_dir(cls, data_dir: Path) -> Database:
        """The SQLite database ``arkitekt.sqlite3`` in ``data_dir``; see :func:`private_dir`."""
        return cls(sqlite_url(_private_database(data_dir)))

    @classmethod
    def of(cls, url: SecretStr | str | None, data_dir: Path, **options: Any) -> Database:
        """The database ``url`` names (a server's ``database_url``), else SQLite in ``data_dir``."""
        if url is None:
            return cls(sqlite_url(_private_database(data_dir)), **options)
        text = url.get_secret_value() if isinstance(url, SecretStr) else url
        return cls(normalize_url(text), **options)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    async def _connect(self, *args: Any, **kwargs: Any) -> Any:
        import asyncpg  # only PostgreSQL databases need it

        try:
            return await asyncpg.connect(*args, **kwargs)
        except Exception as error:
            line = describe(error, self.url) or (
                f"database {self.endpoint}: cannot connect ({type(error).__name__}); check "
                "database_url and that PostgreSQL accepts this user's connections"
            )
            raise DatabaseUnavailableError(line) from error

    def _on_error(self, context: ExceptionContext) -> BaseException | None:
        if context.is_pre_ping:  # the pool replaces the connection itself
            return None
        error = context.original_exception
        if isinstance(error, ArkitektServerError):
            return None
        line = describe(error, self.url)
        if line is None and context.is_disconnect:
            line = f"database {self.endpoint}: the connection was lost; check that it runs"
        if line is not None:
            return DatabaseUnavailableError(line)
        refused = refused_value(error)
        return None if refused is None else ValueRefusedError(refused)

    async def create_tables(self) -> None:
        """Create every table registered on :class:`Base` that does not exist yet.

        For tests of one service's tables on a throwaway database; a server applies the
        migrations (``arkitekt_server._migrations``) instead.
        """
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Database {shown_url(self.url)}>"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session on the app's database, closed after the request."""
    database: Database = request.app.state.database
    async with database.sessions() as session:
        yield session
