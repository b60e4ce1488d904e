"""The database: one declarative ``Base`` for every service, an async engine and sessions.

Each service keeps its tables in its own module on :class:`Base` (fakts/auth in
``arkitekt_server.fakts._models``); a module's tables exist once it is imported before
:meth:`Database.create_tables` runs. There are no migrations yet: tables are created on startup.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import DateTime, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Database",
    "UTCDateTime",
    "database_file",
    "database_url",
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


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file, for the aiosqlite driver."""
    return f"sqlite+aiosqlite:///{path}"


def database_url(url: str) -> str:
    """``url`` for SQLAlchemy's async engine: plain ``postgresql://`` maps to asyncpg."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets the CLI (another process) write while the server reads; busy_timeout makes a
    # writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def private_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (0700) and its database files (0600) private to the server's user.

    Also fixes an existing directory or database made with wider modes. The database file is
    created here, empty, so that SQLite's journal files (``-wal``, ``-shm``), which SQLite creates
    with the database file's mode, are private from their start.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    database = database_file(data_dir)
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists():
            path.chmod(0o600)


class Database:
    """An async engine and its session factory.

    Args:
        url: a SQLAlchemy async URL, e.g. from :func:`sqlite_url`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def in_dir(cls, data_dir: Path) -> Database:
        """The SQLite database ``arkitekt.sqlite3`` in ``data_dir``; see :func:`private_dir`."""
        private_dir(data_dir)
        return cls(sqlite_url(database_file(data_dir)))

    async def create_tables(self) -> None:
        """Create every table registered on :class:`Base` that does not exist yet."""
        async with self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session on the app's database, closed after the request."""
    database: Database = request.app.state.database
    async with database.sessions() as session:
        yield session
