"""A database that cannot be used: the server refuses to start in one line naming the endpoint
(never the password), and a running server answers 503 until the database is back."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from arkitekt._cli import build
from arkitekt_server import EmbeddedServer, ServerSettings, ServerStartError
from arkitekt_server._db import Database, DatabaseUnavailableError
from arkitekt_server._dbfaults import UNAVAILABLE
from arkitekt_server._migrations import upgrade
from arkitekt_server._periodic import every
from tests.arkitekt_server.conftest import Fakts
from tests.helpers import free_port
from tests.services import postgres_execute

PASSWORD = "hunter2-not-for-logs"
runner = CliRunner()


def _with_password(url: str, user: str | None = None) -> str:
    parsed = make_url(url)
    return parsed.set(username=user or parsed.username, password=PASSWORD).render_as_string(
        hide_password=False
    )


def test_an_unreachable_database_stops_the_server_in_one_line_with_exit_code_3(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://arkitekt:{PASSWORD}@127.0.0.1:{port}/arkitekt"
    command = [
        sys.executable, "-m", "arkitekt._cli", "server", "--port", str(free_port()),
        "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    env = {**os.environ, "ARKITEKT_SERVER_DATABASE_URL": url, "ARKITEKT_SERVER_LOG_LEVEL": "info"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    refusal = [line for line in output.splitlines() if "refused to start" in line]
    assert refusal == [
        f"ERROR:    arkitekt server refused to start: database 127.0.0.1:{port}/arkitekt: "
        "nothing answers there; check that PostgreSQL runs on that host and port (database_url)"
    ], output
    assert "Traceback" not in output
    assert PASSWORD not in output
    assert f"database postgresql+asyncpg://arkitekt:***@127.0.0.1:{port}/arkitekt" in output


def test_an_operator_command_on_an_unreachable_database_fails_in_one_line(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgres://arkitekt:{PASSWORD}@127.0.0.1:{port}/arkitekt"
    for args in (["clients"], ["server", "migrate"], ["approve", "ABCD-EFGH"]):
        result = runner.invoke(build(), [*args, "--data-dir", str(tmp_path), "--database-url", url])
        assert result.exit_code == 3, (args, result.output)
        assert f"database 127.0.0.1:{port}/arkitekt: nothing answers there" in result.output
        assert PASSWORD not in result.output
        assert "Traceback" not in result.output


def _refusal(url: str) -> str:
    async def run() -> str:
        with pytest.raises(DatabaseUnavailableError) as refused:
            await upgrade(url)
        return str(refused.value)

    return anyio.run(run)


def test_each_database_fault_at_start_says_what_to_check(
    postgres_url: str, postgres_admin_url: str
) -> None:
    parsed = make_url(postgres_url)
    where = f"database 127.0.0.1:{parsed.port}"
    role = f"ark_{parsed.database}"
    postgres_execute(
        postgres_admin_url,
        f"CREATE ROLE {role} LOGIN",
        f'GRANT CONNECT ON DATABASE "{parsed.database}" TO {role}',
    )
    try:
        unknown_user = _refusal(_with_password(postgres_url, "nobody_here"))
        missing = _refusal(_with_password(postgres_url).replace(parsed.database or "", "absent"))
        # PostgreSQL 15: only the owner of the public schema may create tables in it
        no_permission = _refusal(_with_password(postgres_url, role))
    finally:
        postgres_execute(postgres_admin_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
    assert unknown_user.startswith(f"{where}/{parsed.database}: PostgreSQL refused user ")
    assert "check the user and password in database_url" in unknown_user
    assert missing.startswith(f"{where}/absent: no such database on that server; create it")
    assert no_permission.startswith(f"{where}/{parsed.database}: user '{role}' lacks a permission")
    assert "CREATE on its schema" in no_permission
    for line in (unknown_user, missing, no_permission):
        assert PASSWORD not in line
        assert "\n" not in line


def test_a_replica_that_loses_its_database_answers_503_and_recovers(
    server_factory: Callable[..., EmbeddedServer],
    fakts_for: Callable[[EmbeddedServer], Fakts],
    postgres_url: str,
    postgres_admin_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(database_url=postgres_url, auto_approve=True, auth_cache_seconds=0)
    bearer = {"Authorization": f"Bearer {fakts_for(server).auto_bearer()}"}
    http = httpx.Client(base_url=server.url, headers=bearer, timeout=60)
    assert http.get("/mikro/images/").status_code == 200
    name = make_url(postgres_url).database
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    postgres_execute(postgres_admin_url, terminate)  # as a restart of PostgreSQL would
    assert http.get("/mikro/images/").status_code == 200  # pooled connections checked, replaced
    postgres_execute(
        postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', terminate
    )
    try:
        with caplog.at_level(logging.WARNING, logger="arkitekt_server"):
            for _ in range(3):  # the pool's connections are gone and new ones are refused
                lost = http.get("/mikro/images/")
                assert lost.status_code == 503, lost.text
                assert lost.json() == {"detail": UNAVAILABLE}
                assert lost.headers["retry-after"] == "5"
            refused = http.post("/f/start/", json={"manifest": {"identifier": "x", "version": "1"}})
            assert refused.status_code == 503
            assert http.get("/health/").status_code == 200  # the process itself is fine
    finally:
        postgres_execute(postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    logged = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert logged, caplog.text
    assert f"database 127.0.0.1:{make_url(postgres_url).port}/{name}:" in logged[0]
    back = http.get("/mikro/images/")
    assert back.status_code == 200, back.text
    assert (
        http.post("/f/start/", json={"manifest": {"identifier": "y", "version": "1"}}).json()[
            "status"
        ]
        == "granted"
    )
    http.close()


def test_a_nul_in_a_search_is_refused_clearly(server: EmbeddedServer, bearer: str) -> None:
    answer = httpx.get(
        server.url + "/mikro/images/",
        params={"name": "a\x00b"},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=30,
    )
    assert answer.status_code == 422
    assert "NUL" in answer.text


def test_a_value_postgresql_cannot_store_is_refused_clearly(
    postgres_url: str, tmp_path: Path
) -> None:
    # The last line of defence (routes validate what they store): the database's refusal of a
    # NUL character becomes a clear message, not a traceback (over HTTP: 422, not 500).
    migrated = runner.invoke(build(), ["server", "migrate", "--database-url", postgres_url])
    assert migrated.exit_code == 0, migrated.output
    result = runner.invoke(
        build(),
        ["token", "create", "--identifier", "a\x00b", "--data-dir", str(tmp_path),
         "--database-url", postgres_url],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == "text must not contain NUL characters (\\x00)"


def test_an_unreachable_database_is_named_by_an_embedded_servers_refusal(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://arkitekt:{PASSWORD}@127.0.0.1:{port}/arkitekt"
    settings = ServerSettings(port=0, data_dir=tmp_path, database_url=url, log_level="critical")
    with pytest.raises(ServerStartError) as refused:
        EmbeddedServer(settings).start()
    assert str(refused.value) == (
        f"the embedded arkitekt server refused to start: database 127.0.0.1:{port}/arkitekt: "
        "nothing answers there; check that PostgreSQL runs on that host and port (database_url)"
    )


def test_a_statement_postgresql_does_not_answer_in_time_ends_instead_of_hanging(
    postgres_url: str,
) -> None:
    async def run() -> tuple[str, object]:
        database = Database(postgres_url, statement_seconds=0.5)
        try:
            async with database.sessions() as session:
                with pytest.raises(DatabaseUnavailableError) as slow:
                    await session.execute(text("SELECT pg_sleep(5)"))
            async with database.sessions() as session:  # the next statement works again
                return str(slow.value), await session.scalar(text("SELECT 1"))
        finally:
            await database.dispose()

    message, answer = anyio.run(run)
    assert "PostgreSQL did not answer in time" in message
    assert answer == 1


def test_a_websocket_handshake_while_the_database_is_away_is_answered_503(
    server_factory: Callable[..., EmbeddedServer],
    fakts_for: Callable[[EmbeddedServer], Fakts],
    postgres_url: str,
    postgres_admin_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = server_factory(database_url=postgres_url, auto_approve=True, auth_cache_seconds=0)
    headers = {"Authorization": f"Bearer {fakts_for(server).auto_bearer()}"}
    base = server.url.replace("http://", "ws://") + "/rekuest"
    with ws_connect(base + "/caller/ws", additional_headers=headers, open_timeout=20):
        pass  # the database is there: the handshake succeeds
    name = make_url(postgres_url).database
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    postgres_execute(
        postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', terminate
    )
    try:
        with caplog.at_level(logging.INFO):
            for path in ("/caller/ws", "/agent/ws", "/caller/ws"):
                with pytest.raises(InvalidStatus) as denied:
                    ws_connect(base + path, additional_headers=headers, open_timeout=20)
                answer = denied.value.response
                assert answer.status_code == 503, path
                assert answer.headers["retry-after"] == "5"
                assert json.loads(answer.body or b"{}") == {"detail": UNAVAILABLE}
    finally:
        postgres_execute(postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, caplog.text  # no "Exception in ASGI application" with its traceback
    warned = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert len(warned) == 1, warned  # one line for the three attempts (throttled)
    assert f"database 127.0.0.1:{make_url(postgres_url).port}/{name}:" in warned[0]
    with ws_connect(base + "/caller/ws", additional_headers=headers, open_timeout=20):
        pass  # and back


def test_a_periodic_job_says_once_that_the_database_is_away_and_once_that_it_is_back(
    postgres_url: str, postgres_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = make_url(postgres_url).database
    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    log = logging.getLogger("arkitekt_server.test_periodic")
    outcomes: list[bool] = []

    async def run() -> None:
        database = Database(postgres_url)
        failed, back = anyio.Event(), anyio.Event()

        async def round_() -> None:
            try:
                async with database.sessions() as session:
                    await session.execute(text("SELECT 1"))
            except Exception:
                outcomes.append(False)
                if outcomes.count(False) >= 4:
                    failed.set()
                raise
            outcomes.append(True)
            if failed.is_set():
                back.set()

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(partial(every, 0.01, round_, what="checking the test", log=log))
                await anyio.to_thread.run_sync(
                    postgres_execute,
                    postgres_admin_url,
                    f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                    terminate,
                )
                try:
                    await failed.wait()  # four rounds met the outage
                finally:
                    await anyio.to_thread.run_sync(
                        postgres_execute,
                        postgres_admin_url,
                        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',
                    )
                await back.wait()
                tasks.cancel_scope.cancel()
        finally:
            await database.dispose()

    with caplog.at_level(logging.DEBUG, logger="arkitekt_server.test_periodic"):
        anyio.run(run)
    ours = [r for r in caplog.records if r.name == "arkitekt_server.test_periodic"]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    failing, recovered = (r.getMessage() for r in warnings)
    assert failing.startswith("checking the test fails: database 127.0.0.1:"), failing
    assert "does not accept connections now" in failing
    assert "\n" not in failing
    assert recovered.startswith("checking the test works again (after ")
    assert not any(r.exc_info for r in warnings)  # the tracebacks are at debug only
    assert sum(1 for r in ours if r.levelno == logging.DEBUG and r.exc_info) >= 4
