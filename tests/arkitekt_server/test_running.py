"""Operator commands find the running server: no guessing ``--data-dir``, no empty databases.

Each test has its own state folder (``ARKITEKT_SERVER_STATE_DIR``) and its own per-user data
folder (``XDG_DATA_HOME``), so neither the user's home nor another test's servers are seen.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from arkitekt._cli import build
from arkitekt_server._running import running
from tests.helpers import ServerProcess, wait_until

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
        f"acting on the server at {server.url} (pid {server.pid}): the database {database}"
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
    assert f"no arkitekt database at {default / 'arkitekt.sqlite3'}" in result.stderr
    assert not (default / "arkitekt.sqlite3").exists()
    for command in (["clients"], ["token", "create", "--identifier", "ci"]):
        listed = runner.invoke(build(), [*command, "--data-dir", str(tmp_path / "empty")])
        assert listed.exit_code == 1, command
        assert not (tmp_path / "empty" / "arkitekt.sqlite3").exists()
    typo = tmp_path / "typo.sqlite3"
    listed = runner.invoke(build(), ["clients", "--database-url", f"sqlite:///{typo}"])
    assert listed.exit_code == 1
    assert f"no arkitekt database at {typo}" in listed.stderr
    assert not typo.exists()


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


def test_a_server_stopped_with_sigterm_removes_its_note(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    server = _start(servers, tmp_path / "data", state_dir)
    note = state_dir / "servers" / f"{server.pid}.json"
    assert note.exists()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    server.finish()
    assert not note.exists()


def _plant(state_dir: Path, pid: int, **fields: object) -> Path:
    """A state file as a hostile local user (or a stale process) could leave it."""
    folder = state_dir / "servers"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = {
        "pid": pid, "started": None, "url": "http://127.0.0.1:1", "data_dir": "/tmp/evil",
        "config": None, "database": "/tmp/evil/arkitekt.sqlite3", "database_given": None,
        **fields,
    }  # fmt: skip
    path = folder / f"{pid}.json"
    path.write_text(json.dumps(entry))
    path.chmod(0o600)
    return path


def test_only_notes_of_a_live_process_that_started_when_noted_count(
    state_dir: Path, tmp_path: Path
) -> None:
    # pid 1 runs, but it did not start when this note says: a reused id is no server
    _plant(state_dir, 1, started=1)
    assert running(state_dir) == []
    stale = _plant(state_dir, os.getpid(), started=0)  # this process, another start time
    assert running(state_dir) == []
    assert not stale.exists()  # a dead server's note is removed


@pytest.mark.parametrize(
    "damage",
    ["world-writable", "symlink", "fifo", "huge", "bad-types", "control-characters", "long-pid"],
)
def test_a_planted_or_broken_note_is_ignored(state_dir: Path, tmp_path: Path, damage: str) -> None:
    pid = os.getpid()  # alive, so only the damage can make it ignored
    note = _plant(state_dir, pid)
    if damage == "world-writable":
        note.chmod(0o666)
    elif damage == "symlink":
        target = tmp_path / "elsewhere.json"
        note.rename(target)
        note.symlink_to(target)
    elif damage == "fifo":
        note.unlink()
        os.mkfifo(note, 0o600)
    elif damage == "huge":
        note.write_text(note.read_text() + " " * (64 << 10))
    elif damage == "bad-types":
        note.write_text(json.dumps({**json.loads(note.read_text()), "data_dir": 5}))
    elif damage == "control-characters":
        hostile = {"url": "http://127.0.0.1:1/\x1b]0;pwned\x07"}
        note.write_text(json.dumps({**json.loads(note.read_text()), **hostile}))
    elif damage == "long-pid":
        note.write_text(json.dumps({**json.loads(note.read_text()), "pid": 10**20}))
    assert running(state_dir) == []  # and it returns: a FIFO is not waited on


def test_a_state_folder_others_may_write_is_not_trusted(state_dir: Path, tmp_path: Path) -> None:
    _plant(state_dir, os.getpid())
    (state_dir / "servers").chmod(0o777)
    result = runner.invoke(build(), ["clients"])
    assert result.exit_code == 2
    assert "is not private to this user" in result.stderr
    assert "/tmp/evil" not in result.stderr


def test_a_note_whose_settings_name_another_database_is_refused(
    state_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "planted.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'other.sqlite3'}\n")
    _plant(state_dir, os.getpid(), config=str(config), database="/srv/real.sqlite3")
    result = runner.invoke(build(), ["approve", "ABCD-EFGH"])
    assert result.exit_code == 1
    assert "runs on the database /srv/real.sqlite3, but its settings now name" in result.stderr
    assert not (tmp_path / "other.sqlite3").exists()


def test_adopt_stores_never_follows_a_running_server(
    servers: list[ServerProcess], state_dir: Path, tmp_path: Path
) -> None:
    _start(servers, tmp_path / "running", state_dir)
    result = runner.invoke(build(), ["adopt-stores"])
    assert "running" not in result.stderr.split("acting on", 1)[-1].split("\n", 1)[0]
    assert "(no arkitekt server runs" not in result.stderr
    assert result.exit_code == 1  # the default data dir has no database: nothing is created
    assert not (tmp_path / "home-data" / "arkitekt-server" / "arkitekt.sqlite3").exists()


def test_an_operator_command_never_migrates(tmp_path: Path, postgres_url: str) -> None:
    result = runner.invoke(build(), ["clients", "--database-url", postgres_url])
    assert result.exit_code == 1
    assert "has no arkitekt schema: start the server on it first" in result.stderr
    migrated = runner.invoke(build(), ["server", "migrate", "--database-url", postgres_url])
    assert migrated.exit_code == 0, migrated.output
    listed = runner.invoke(build(), ["clients", "--database-url", postgres_url])
    assert listed.exit_code == 0, listed.output


def test_port_0_is_announced_and_noted_as_the_port_the_server_listens_on(
    state_dir: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "arkitekt._cli", "server", "--port", "0",
        "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    env = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: process.poll() is not None or running(state_dir), 30, interval=0.1)
        assert process.poll() is None, "the server exited"
        (noted,) = running(state_dir)
        port = int(noted.url.rsplit(":", 1)[1])
        assert port != 0
        assert noted.url == f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return httpx.get(noted.url + "/health/", timeout=1).status_code == 200
            except httpx.TransportError:  # noted before uvicorn listens on the bound port
                return False

        wait_until(answers, 30, interval=0.1)
        listed = runner.invoke(build(), ["clients"])
        assert f"acting on the server at http://127.0.0.1:{port} (pid" in listed.stderr
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert (
        out.splitlines()[0]
        == f"arkitekt server on http://127.0.0.1:{port} (data in {tmp_path / 'data'})"
    )
