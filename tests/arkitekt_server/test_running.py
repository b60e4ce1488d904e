"""Operator commands find the running server: no guessing ``--data-dir``, no empty databases.

Each test has its own state folder (``ARKITEKT_SERVER_STATE_DIR``) and its own per-user data
folder (``XDG_DATA_HOME``), so neither the user's home nor another test's servers are seen.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from arkitekt._cli import build
from arkitekt_server._running import running
from tests.helpers import ServerProcess

runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("ARKITEKT_SERVER_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home-data"))
    for name in ("DATA_DIR", "DATABASE_URL", "CONFIG"):
        monkeypatch.delenv(f"ARKITEKT_SERVER_{name}", raising=False)
    return state


@pytest.fixture
def servers(state_dir: Path, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def _start(servers: list[ServerProcess], data_dir: Path, state_dir: Path) -> ServerProcess:
    server = ServerProcess(
        data_dir, env={"ARKITEKT_SERVER_STATE_DIR": str(state_dir)}, auto_approve=False
    )
    servers.append(server)
    server.start()
    return server


def _pending_code(server: ServerProcess, identifier: str) -> str:
    manifest = {"manifest": {"identifier": identifier, "version": "1"}}
    answer = httpx.post(server.url + "/f/start/", json=manifest, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["code"])


def _status(server: ServerProcess, code: str) -> str:
    answer = httpx.post(server.url + "/f/challenge/", json={"code": code}, timeout=10)
    return str(answer.json()["status"])


def test_approve_finds_the_running_server_and_says_so(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    server = _start(servers, tmp_path / "elsewhere", state_dir)
    code = _pending_code(server, "far-app")
    result = runner.invoke(build(), ["approve", code])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "approved far-app@1"
    database = tmp_path / "elsewhere" / "arkitekt.sqlite3"
    assert result.stderr.strip() == (
        f"acting on the server at {server.url} (pid {server.pid}; database {database})"
    )
    assert _status(server, code) == "granted"
    listed = runner.invoke(build(), ["clients"])
    assert listed.exit_code == 0, listed.output
    assert " far-app@1 " in listed.stdout
    assert not (tmp_path / "home-data").exists()  # nothing was created at the default place


def test_the_state_file_is_private_and_gone_after_a_clean_stop(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    server = _start(servers, tmp_path / "data", state_dir)
    files = list((state_dir / "servers").glob("*.json"))
    assert [path.name for path in files] == [f"{server.pid}.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    noted = json.loads(files[0].read_text())
    assert noted["url"] == server.url
    assert noted["data_dir"] == str((tmp_path / "data").resolve())
    server.stop()
    assert not files[0].exists()
    assert running(state_dir) == []


def test_a_killed_servers_note_is_ignored_and_removed(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    server = _start(servers, tmp_path / "data", state_dir)
    note = state_dir / "servers" / f"{server.pid}.json"
    server.kill()
    assert note.exists()  # kill -9: no chance to clean up
    assert running(state_dir) == []
    assert not note.exists()


def test_with_no_server_running_approve_creates_no_database(
    state_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(build(), ["approve", "ABCD-EFGH"])
    assert result.exit_code == 1
    default = tmp_path / "home-data" / "arkitekt-server"
    assert "(no arkitekt server runs on this machine)" in result.stderr
    assert f"no arkitekt database in {default} (arkitekt.sqlite3 is missing)" in result.stderr
    assert not (default / "arkitekt.sqlite3").exists()
    listed = runner.invoke(build(), ["clients", "--data-dir", str(tmp_path / "empty")])
    assert listed.exit_code == 1
    assert not (tmp_path / "empty" / "arkitekt.sqlite3").exists()


def test_two_running_servers_must_be_chosen_between(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    first = _start(servers, tmp_path / "one", state_dir)
    second = _start(servers, tmp_path / "two", state_dir)
    result = runner.invoke(build(), ["clients"])
    assert result.exit_code == 2
    assert result.stderr.startswith("2 arkitekt servers run on this machine; choose one:")
    for server, folder in ((first, "one"), (second, "two")):
        assert f"the server at {server.url}" in result.stderr
        assert f"--data-dir {(tmp_path / folder).resolve()}" in result.stderr
    chosen = runner.invoke(build(), ["clients", "--data-dir", str(tmp_path / "two")])
    assert chosen.exit_code == 0, chosen.output
    assert chosen.stderr.startswith("acting on the database ")


def test_a_server_given_its_database_in_its_environment_is_named_not_guessed(
    servers: list[ServerProcess],
    state_dir: Path,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    with_password = postgres_url.replace("://postgres@", "://postgres:note-no-secret@")
    assert with_password != postgres_url  # the test cluster trusts loopback: any password works
    server = ServerProcess(
        tmp_path / "data",
        database_url=with_password,
        env={"ARKITEKT_SERVER_STATE_DIR": str(state_dir)},
    )
    servers.append(server)
    server.start()
    result = runner.invoke(build(), ["clients"])
    assert result.exit_code == 2
    assert "was given its database URL in its environment" in result.stderr
    assert "ARKITEKT_SERVER_DATABASE_URL=" in result.stderr
    note = (state_dir / "servers" / f"{server.pid}.json").read_text()
    assert "note-no-secret" not in note
    assert "postgres:***@127.0.0.1" in note
