"""The schema comes from Alembic migrations: they match the models, run once under concurrency,
adopt databases made before them, and operators can run them as a step of their own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, inspect, select, text
from typer.testing import CliRunner

from arkitekt._cli import build
from arkitekt_server._db import Database, database_file
from arkitekt_server._dburl import sqlite_url
from arkitekt_server._migrations import LOCK_KEY, head, upgrade
from arkitekt_server._migrations._schema import metadata
from arkitekt_server.fakts import create_static_token
from arkitekt_server.fakts._models import StaticToken
from tests.helpers import until

runner = CliRunner()


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the test's backend."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return sqlite_url(tmp_path / "empty.sqlite3")


def _differences(connection: Connection, models: MetaData | None = None) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, models or metadata()))


@pytest.mark.anyio
async def test_the_migrated_schema_is_the_schema_of_the_models(url: str) -> None:
    # A model changed without a new revision in _migrations/versions fails here.
    migrated = await upgrade(url)
    assert (migrated.before, migrated.after, migrated.adopted) == (None, head(), False)
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await database.dispose()
    assert tables == {*metadata().tables, "alembic_version"}
    again = await upgrade(url)
    assert (again.before, again.after) == (head(), head())
    assert "up to date" in str(again)


@pytest.mark.anyio
async def test_a_model_change_without_a_revision_is_seen(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "changed.sqlite3")
    await upgrade(url)
    changed = MetaData()
    for table in metadata().tables.values():
        table.to_metadata(changed)
    Table("mikro_new_things", changed, Column("id", Integer, primary_key=True))
    changed.tables["mikro_images"].append_column(Column("colour", String(20)))
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            found = await connection.run_sync(lambda c: _differences(c, changed))
    finally:
        await database.dispose()
    named = sorted((diff[0], diff[-1].name) for diff in found)
    assert named == [("add_column", "colour"), ("add_table", "mikro_new_things")]


@pytest.mark.anyio
async def test_an_upgrade_on_postgresql_waits_for_the_advisory_lock(postgres_url: str) -> None:
    other = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        await other.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)  # another replica's turn
        running = asyncio.create_task(upgrade(postgres_url))
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        await until(lambda: other.fetchval(waiting))
        assert not running.done()
        assert await other.fetchval("SELECT to_regclass('alembic_version')") is None
        await other.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        migrated = await running
    finally:
        await other.close()
    assert (migrated.before, migrated.after) == (None, head())


def test_two_replicas_migrating_one_empty_database_at_once_take_turns(
    postgres_url: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "arkitekt._cli", "server", "migrate"]
    env = {**os.environ, "ARKITEKT_SERVER_DATABASE_URL": postgres_url}
    replicas = [
        subprocess.Popen(
            [*command, "--data-dir", str(tmp_path / str(n))],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n in range(2)
    ]
    outputs = sorted(replica.communicate(timeout=60)[0] for replica in replicas)
    assert [replica.returncode for replica in replicas] == [0, 0], outputs
    # one applied every revision, the other found the schema current once its turn came
    assert f"at revision {head()} (up to date)" in outputs[0]
    assert f"migrated from empty to revision {head()}" in outputs[1]


def _old_server_database(data_dir: Path) -> str:
    """A data dir whose database an old server made: the tables of that time (revision 0001's
    schema, which old servers made with create_all), no ``alembic_version``."""

    async def make() -> str:
        database = Database.in_dir(data_dir)
        try:
            await upgrade(database.url, "0001")
            async with database.engine.begin() as connection:
                await connection.execute(text("DROP TABLE alembic_version"))
                await connection.execute(
                    text(
                        "INSERT INTO rekuest_assignment (id, function, caller_pk, args, result, "
                        "stream, status, attempts, created_at) VALUES ('kept-call-0001', 'f', 1, "
                        "'[]', '2', 0, 'done', 1, '2026-01-01 00:00:00')"
                    )
                )
            async with database.sessions() as session:
                await create_static_token(session, "kept-app")
        finally:
            await database.dispose()
        return database.url

    return anyio.run(make)


def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    url = _old_server_database(tmp_path / "data")

    async def adopt() -> tuple[Any, list[str]]:
        migrated = await upgrade(url)
        database = Database(url)
        try:
            async with database.sessions() as session:
                kept = list(await session.scalars(select(StaticToken.identifier)))
        finally:
            await database.dispose()
        return migrated, kept

    migrated, kept = anyio.run(adopt)
    assert (migrated.before, migrated.after, migrated.adopted) == (None, head(), True)
    assert "from tables made before migrations" in str(migrated)
    assert kept == ["kept-app"]

    async def calls() -> list[Any]:
        database = Database(url)
        try:
            async with database.engine.connect() as connection:
                rows = await connection.execute(text("SELECT id, events FROM rekuest_assignment"))
                return [tuple(row) for row in rows]
        finally:
            await database.dispose()

    assert anyio.run(calls) == [("kept-call-0001", False)]  # later columns have defaults


def test_the_migrate_command_says_from_and_to_which_revision(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = runner.invoke(build(), ["server", "migrate", "--data-dir", str(data_dir)])
    assert first.exit_code == 0, first.output
    assert f"migrated from empty to revision {head()}" in first.output
    assert str(database_file(data_dir)) in first.output
    again = runner.invoke(build(), ["server", "migrate", "--data-dir", str(data_dir)])
    assert again.exit_code == 0, again.output
    assert f"at revision {head()} (up to date)" in again.output


def test_the_migrate_command_migrates_postgresql(postgres_url: str, tmp_path: Path) -> None:
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    result = runner.invoke(
        build(), ["server", "migrate", "--data-dir", str(tmp_path), "--database-url", plain]
    )
    assert result.exit_code == 0, result.output
    name = postgres_url.rsplit("/", 1)[1]
    assert f"127.0.0.1:{postgres_url.split(':')[-1].split('/')[0]}/{name}" in result.output
    assert f"migrated from empty to revision {head()}" in result.output
