"""The rekuest store's writes survive a database that is locked (SQLite) or away (PostgreSQL)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from arkitekt import easy
from arkitekt_server._db import Database, database_file
from arkitekt_server._migrations import upgrade
from arkitekt_server.rekuest._store import Store
from tests.helpers import Wire, until
from tests.services import postgres_execute

BUSY_TIMEOUT_SECONDS = 5.0  # the server's SQLite busy_timeout (arkitekt_server._db)


@pytest.mark.sqlite_only("locks the SQLite file, as another process would")
def test_results_recorded_while_the_database_is_locked_are_stored_at_shutdown(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = server_factory(auto_approve=True)
    wire = Wire(server)
    token = wire.token(easy("st-app", url=server.url, headless=True, cache_dir=tmp_path / "c"))
    path = database_file(server.settings.data_dir)
    with wire.sockets:
        agent = wire.open(token, "agent")
        wire.register(agent, {"name": "st_f", "returns": [{"key": "return", "kind": "int"}]})
        caller = wire.open(token, "caller")
        id = wire.call(caller, "st_f")
        assert wire.assignment(agent)["id"] == id
        other = sqlite3.connect(path, check_same_thread=False)  # another process, say the CLI
        other.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout,
        # twice: shutdown first waits for the agent's socket, whose offline mark waits once
        release = threading.Timer(2 * BUSY_TIMEOUT_SECONDS + 1.5, other.rollback)
        release.start()
        try:
            agent.send(json.dumps([{"t": "done", "id": id, "v": 7}]))
            assert wire.answer(caller, id)["v"] == 7  # told at once; stored write-behind
            server.stop(timeout=30)  # shutdown while the result waits for the lock
        finally:
            release.join()
            other.close()
    with sqlite3.connect(path) as database:
        stored = database.execute(
            "SELECT status, result FROM rekuest_assignment WHERE id = ?", (id,)
        ).fetchall()
    assert stored == [("done", 7)]


@pytest.mark.anyio
async def test_a_database_away_is_one_warning_and_the_batch_is_written_once_it_is_back(
    postgres_url: str, postgres_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade(postgres_url)
    database = Database(postgres_url)
    store = Store(database)
    name = make_url(postgres_url).database
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"

    async def execute(*statements: str) -> None:
        await anyio.to_thread.run_sync(partial(postgres_execute, postgres_admin_url, *statements))

    async def stored() -> list[str]:
        async with database.engine.connect() as connection:
            return list(await connection.scalars(text("SELECT message FROM rekuest_log")))

    try:
        await execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', terminate)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(store.run)
            with caplog.at_level(logging.DEBUG, logger="arkitekt_server"):
                store.log("a" * 32, "info", "kept while the database is away")
                # first try, then 0.5 s, 1 s and 2 s later: four failed tries
                await anyio.sleep(4.0)
                await execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                await until(lambda: len(caplog.records) > 0 and "works again" in caplog.text, 30)
            tasks.cancel_scope.cancel()
        assert await stored() == ["kept while the database is away"]
    finally:
        await execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await store.close()
        await database.dispose()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in loud] == [logging.WARNING, logging.WARNING], caplog.text
    assert "storing rekuest assignments fails" in loud[0].getMessage()
    assert "works again" in loud[1].getMessage()
    assert not any(r.exc_info for r in loud)  # tracebacks only at debug
    retries = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(retries) >= 3  # it did retry, quietly
