"""Both databases for the rekuest suites: the session server on SQLite, and one on PostgreSQL.

The conftests of the rekuest server and client tests override ``server`` with
:func:`server`, so each of their tests runs once per backend; a test that starts its own
servers asks :func:`database_url` (``None``: SQLite in its data dir).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import asyncpg
import pytest

from arkitekt_server import EmbeddedServer, ServerSettings

__all__ = ["BACKENDS", "create_database", "database_url", "postgres_server", "server"]

BACKENDS = ["sqlite", "postgresql"]


def create_database(admin_url: str) -> tuple[str, str]:
    """A new database on the cluster of ``admin_url``: its asyncpg URL and its name."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    anyio.run(_run, admin_url, f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


def drop_database(admin_url: str, name: str) -> None:
    """Drop the database ``name`` (closing its connections)."""
    anyio.run(_run, admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _run(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_server(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedServer]:
    """An auto-approving server on a PostgreSQL database of its own, for the session."""
    url, name = create_database(postgres_admin_url)
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("pg-server"),
        database_url=url,
        auto_approve=True,
        log_level="warning",
    )
    try:
        with EmbeddedServer(settings) as running:
            yield running
    finally:
        drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, server: EmbeddedServer) -> EmbeddedServer:
    """The session server on each backend (the root one for SQLite)."""
    if request.param == "sqlite":
        return server
    running: EmbeddedServer = request.getfixturevalue("postgres_server")
    return running


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For a test's own servers: ``None`` (SQLite in their data dir), then a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        yield None
        return
    yield request.getfixturevalue("postgres_url")
