"""`arkitekt server` and the server's operator commands, as a user runs them."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from arkitekt import App, whoami
from arkitekt._cli import build
from arkitekt_server import EmbeddedServer
from arkitekt_server._settings import ServerConfigError, load_server_settings
from tests.helpers import database_args, free_port, wait_until

runner = CliRunner()


def _server(tmp_path: Path, stdout: int) -> tuple[subprocess.Popen[bytes], int]:
    """``arkitekt server`` in a process, answering (its stdout to ``stdout``)."""
    port = free_port()
    command = [
        sys.executable, "-m", "arkitekt._cli", "server",
        "--port", str(port), "--data-dir", str(tmp_path / "data"), "--auto-approve",
    ]  # fmt: skip
    env = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "warning"}
    process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE)

    def answers() -> bool:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(f"http://127.0.0.1:{port}/health/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(answers, 20, interval=0.1)
    except AssertionError:
        process.kill()
        _, err = process.communicate(timeout=20)
        raise AssertionError(f"the server did not start: {err!r}") from None
    return process, port


def test_server_command_serves_until_interrupted(tmp_path: Path) -> None:
    process, port = _server(tmp_path, subprocess.PIPE)
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/.well-known/fakts", timeout=5)
        assert answer.json()["base_url"] == f"http://127.0.0.1:{port}/f/"
        assert (tmp_path / "data" / "arkitekt.sqlite3").exists()
        assert (tmp_path / "data").stat().st_mode & 0o077 == 0
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert b"AUTO-APPROVE IS ON" in err
    # stdout is a pipe here (as under a service manager, into a journal or a log file): the
    # operator secret is not printed, only where it is
    path = tmp_path / "data" / "operator-secret"
    secret = path.read_text().strip()
    assert secret.encode() not in out + err
    assert f"operator secret for the approval page: in {path} (mode 0600" in out.decode()
    assert f"cat {path}" in out.decode()
    assert path.stat().st_mode & 0o077 == 0


def test_the_operator_secret_is_printed_to_a_terminal_only(tmp_path: Path) -> None:
    terminal, side = pty.openpty()
    try:
        try:
            process, _ = _server(tmp_path, side)
        finally:
            os.close(side)  # the server holds its own copy
        shown = b""
        deadline = time.monotonic() + 20
        while b"readable only by you" not in shown and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.5)[0]:
                shown += os.read(terminal, 4096)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        os.close(terminal)
    secret = (tmp_path / "data" / "operator-secret").read_text().strip()
    assert f"operator secret for the approval page: {secret}".encode() in shown
    assert secret.encode() not in err  # never into the log


def test_bad_settings_name_the_key_and_source(tmp_path: Path) -> None:
    env = {"ARKITEKT_SERVER_PORT": "eighty"}
    result = runner.invoke(build(), ["server", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert "port (from environment variable ARKITEKT_SERVER_PORT)" in result.output


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("port: 8000\nhost: [unclosed\n")
    result = runner.invoke(build(), ["server", "--config", str(config)])
    assert result.exit_code == 2
    assert str(config) in result.output
    assert "line 3" in result.output


def test_approving_an_unknown_code_fails_clearly(tmp_path: Path) -> None:
    assert runner.invoke(build(), ["server", "migrate", "--data-dir", str(tmp_path)]).exit_code == 0
    result = runner.invoke(build(), ["approve", "NOPE", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown device code 'NOPE'" in result.output


def test_revoke_needs_exactly_one_target(tmp_path: Path) -> None:
    assert runner.invoke(build(), ["server", "migrate", "--data-dir", str(tmp_path)]).exit_code == 0
    result = runner.invoke(build(), ["revoke", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "exactly one" in result.output


def test_token_create_prints_a_token_and_stores_only_its_hash(tmp_path: Path) -> None:
    assert runner.invoke(build(), ["server", "migrate", "--data-dir", str(tmp_path)]).exit_code == 0
    result = runner.invoke(
        build(), ["token", "create", "--identifier", "ci", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert len(token) >= 40
    stored = [path.read_bytes() for path in tmp_path.iterdir() if path.is_file()]
    assert stored
    assert not any(token.encode() in content for content in stored)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rekuest_retention_seconds", "inf"),
        ("rekuest_retention_seconds", "1e300"),
        ("device_code_ttl_seconds", "nan"),
        ("device_code_ttl_seconds", "inf"),
        ("auth_cache_seconds", "inf"),
        ("auth_cache_seconds", "nan"),
        ("access_token_ttl_seconds", str(10**30)),
        ("claim_token_ttl_seconds", str(10**30)),
    ],
)
def test_durations_must_be_finite_and_bounded(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(f"ARKITEKT_SERVER_{key.upper()}", value)
    with pytest.raises(ServerConfigError) as raised:
        load_server_settings()
    assert f"{key} (from environment variable ARKITEKT_SERVER_{key.upper()})" in str(raised.value)


def test_the_server_command_offers_a_database_url_and_migrate() -> None:
    shown = runner.invoke(build(), ["server", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "--database-url" in shown.output
    assert "migrate" in shown.output
    for command in (["server", "migrate"], ["approve"], ["revoke"], ["clients"], ["adopt-stores"]):
        help_text = runner.invoke(build(), [*command, "--help"], env={"COLUMNS": "200"}).output
        assert "--database-url" in help_text, command


def test_a_password_on_the_command_line_is_warned_about_and_never_shown(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the command ends with the database's fault
    secret = "hunter2-in-argv"
    for url in (
        f"postgresql://ark:{secret}@127.0.0.1:{port}/ark",
        f"postgresql://ark@127.0.0.1:{port}/ark?password={secret}",
    ):
        args = ["server", "migrate", "--data-dir", str(tmp_path), "--database-url", url]
        result = runner.invoke(build(), args)
        assert result.exit_code == 3, result.output
        assert "warning: --database-url holds a password" in result.output
        assert "ARKITEKT_SERVER_DATABASE_URL" in result.output
        assert secret not in result.output
    quiet = runner.invoke(
        build(),
        ["server", "migrate", "--data-dir", str(tmp_path), "--database-url",
         f"postgresql://ark@127.0.0.1:{port}/ark"],
    )  # fmt: skip
    assert quiet.exit_code == 3, quiet.output
    assert "warning" not in quiet.output  # no password, nothing to warn about
    shown = runner.invoke(build(), ["server", "--help"], env={"COLUMNS": "200"}).output
    assert "visible to every user" in shown


def _isolated(tmp_path: Path) -> dict[str, str]:
    """The environment of a server command that sees no other test's (or the user's) servers."""
    return {
        **os.environ,
        "ARKITEKT_SERVER_STATE_DIR": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "home-data"),
    }


def test_a_port_in_use_is_said_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [
            sys.executable, "-m", "arkitekt._cli", "server", "--port", str(port),
            "--data-dir", str(tmp_path / "data"),
        ]  # fmt: skip
        done = subprocess.run(
            command, env=_isolated(tmp_path), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # not announced as running
    assert done.stderr.strip() == (
        f"port {port} is in use on 127.0.0.1 (another process listens there): choose another "
        "with --port (0: any free port)"
    )
    assert not (tmp_path / "data").exists()  # no database made, nothing migrated
    assert not list((tmp_path / "state").glob("servers/*.json"))  # not noted as running


@pytest.mark.parametrize("under", ["", "sub/deeper"])
def test_a_data_dir_that_cannot_be_one_is_said_in_one_line(tmp_path: Path, under: str) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    data_dir = a_file / under if under else a_file
    why = "it is a file" if not under else f"{a_file} is a file, not a folder"
    for command in (["server", "--port", "0"], ["server", "migrate"]):
        result = runner.invoke(
            build(), [*command, "--data-dir", str(data_dir)], env=_isolated(tmp_path)
        )
        assert result.exit_code == 1, (command, result.output)
        assert result.output.strip() == (
            f"the data directory {data_dir} cannot be used: {why}; choose another with --data-dir"
        ), command
    assert a_file.read_text() == ""


def test_usage_lines_name_arguments_in_capitals() -> None:
    for command, usage in (
        ("approve", "approve [OPTIONS] CODE"),
        ("deny", "deny [OPTIONS] CODE"),
        ("revoke", "revoke [OPTIONS] [CLIENT_ID]"),
    ):
        result = runner.invoke(build(), [command, "--help"])
        assert result.exit_code == 0, result.output
        first = result.output.splitlines()[0]
        assert first.endswith(usage), first
    missing = runner.invoke(build(), ["approve"])
    assert missing.exit_code == 2
    assert "Missing argument 'CODE'" in missing.output


def test_revoking_what_is_not_there_fails_and_says_how_to_list(tmp_path: Path) -> None:
    assert runner.invoke(build(), ["server", "migrate", "--data-dir", str(tmp_path)]).exit_code == 0
    for target, named in (
        (["--identifier", "nosuch"], "of the app 'nosuch'"),
        (["0123456789abcdef"], "with client id '0123456789abcdef'"),
    ):
        result = runner.invoke(build(), ["revoke", *target, "--data-dir", str(tmp_path)])
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert f"no active approval {named}: `arkitekt clients` lists them" in result.stderr
    listed = runner.invoke(build(), ["clients", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0
    assert listed.stdout == ""  # nothing to parse
    assert "no approvals yet" in listed.stderr


@pytest.mark.sqlite_only("the output's format: no query differs by backend")
def test_clients_lists_approvals_under_a_header_row(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    identifier = f"listed-{uuid.uuid4().hex[:8]}"
    with connect(identifier):
        whoami()
    result = runner.invoke(build(), ["clients", *database_args(server)])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["CLIENT_ID", "APP", "GRANTED_VIA", "STATE"]
    rows = [line.split() for line in lines]
    assert rows
    assert all(len(row) == 4 for row in rows), rows
    mine = [row for row in rows if row[1].startswith(f"{identifier}@")]
    assert [row[2:] for row in mine] == [["device_code", "active"]]
    assert header.index("APP") == lines[0].index(rows[0][1])  # columns are aligned
