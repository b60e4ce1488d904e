"""The data directory and the database files are private to the server's user."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from arkitekt_server import EmbeddedServer
from arkitekt_server._db import database_file

pytestmark = pytest.mark.sqlite_only("about the SQLite files in the data dir")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_open_data_dir_and_database_are_made_private_at_start(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir)
    assert (
        httpx.post(
            first.url + "/f/start/", json={"manifest": {"identifier": "a", "version": "1"}}
        ).status_code
        == 200
    )
    first.stop()
    # As an older server (or a copy, or a restore) may have left them:
    data_dir.chmod(0o755)
    files = sorted(data_dir.glob(database_file(data_dir).name + "*"))
    assert database_file(data_dir) in files
    for path in files:
        path.chmod(0o644)

    server = server_factory(data_dir=data_dir)
    answer = httpx.post(
        server.url + "/f/start/", json={"manifest": {"identifier": "b", "version": "1"}}
    )
    assert answer.status_code == 200  # the database was written through while running
    assert _mode(data_dir) == 0o700
    files = sorted(data_dir.glob(database_file(data_dir).name + "*"))
    assert {p.name[len("arkitekt.sqlite3") :] for p in files} >= {"", "-wal", "-shm"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_a_new_data_dir_and_database_are_private(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "new" / "data"
    server = server_factory(data_dir=data_dir)
    httpx.post(server.url + "/f/start/", json={"manifest": {"identifier": "c", "version": "1"}})
    assert _mode(data_dir) == 0o700
    files = sorted(data_dir.glob(database_file(data_dir).name + "*"))
    assert len(files) == 3
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}
