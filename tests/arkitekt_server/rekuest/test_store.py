"""The rekuest store's last write at shutdown survives a database that is locked meanwhile."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arkitekt import easy
from arkitekt_server._db import database_file
from tests.helpers import Wire

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
