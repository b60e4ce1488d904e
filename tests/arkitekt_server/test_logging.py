"""Secrets are never logged, by the server or the client, even at debug level, by any logger."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from arkitekt import App, easy
from arkitekt.protocol.redact import REDACTED, install_redaction, redact
from arkitekt.rekuest import Registry, acall
from arkitekt_server import EmbeddedServer
from tests.arkitekt.mikro.buckets import s3_settings
from tests.helpers import ServerProcess, abearer_token, bearer_token, free_port, wait_until

# Loggers that do not propagate to the root (uvicorn's) get the handler themselves.
LOGGERS = ["", "arkitekt", "arkitekt_server", "uvicorn", "uvicorn.access", "uvicorn.error",
           "websockets", "httpx", "httpcore", "sqlalchemy", "fastapi"]  # fmt: skip
MUST_HEAR = ("websockets", "httpx", "httpcore", "uvicorn")

registry = Registry()


@registry.register
def logged_echo(text: str) -> str:
    """Answer ``text``."""
    return text


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.saved: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(record.getMessage() + "\n" + (self.format(record) or ""))

    def listen(self) -> None:
        """(Re)attach to every logger; uvicorn replaces its loggers' handlers when it starts."""
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if name not in self.saved:
                self.saved[name] = logger.level
            if self not in logger.handlers:
                logger.addHandler(self)
            logger.setLevel(logging.DEBUG)

    def heard(self, prefix: str) -> int:
        return sum(1 for r in self.records if r.name == prefix or r.name.startswith(prefix + "."))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    handler.listen()
    yield handler
    for name, level in handler.saved.items():
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(level)


@pytest.mark.anyio
async def test_no_secret_reaches_any_log_in_real_flows_at_debug(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path, captured: Capture
) -> None:
    server = server_factory(auto_approve=True, log_level="debug")
    captured.listen()
    caller = easy("logged-caller", url=server.url, headless=True, cache_dir=tmp_path / "c")
    agent = easy("logged-agent", url=server.url, headless=True, cache_dir=tmp_path / "a")
    agent.rekuest.registry = registry
    async with agent:
        await agent.rekuest.astart()  # the agent's websocket (handshake with its bearer)
        async with caller:
            assert await acall("logged_echo", text="hi") == "hi"
            bearer = await abearer_token(caller)  # the one its calls sent
            agent_bearer = await abearer_token(agent)
            config = await (await caller.container.transport()).aconfig()
            async with httpx.AsyncClient(base_url=server.url) as http:
                # A token sent where it does not belong (a query string) is logged by httpx
                # and by uvicorn's access log.
                await http.get("/health/", params={"token": bearer})
    claim_token = caller.fakts.cache.load()
    assert claim_token is not None
    secrets = {
        "claim token": claim_token.token,
        "client secret": config["lok"]["client_secret"],
        "bearer token": bearer,
        "agent's bearer token": agent_bearer,
    }
    for name in MUST_HEAR:  # the guard saw the loggers that leaked before
        assert captured.heard(name) > 0, f"nothing was captured from {name!r}"
    for name, secret in secrets.items():
        assert secret
        leaks = [line for line in captured.lines if secret in line]
        assert not leaks, f"the {name} was logged ({len(leaks)} records): {leaks[0]}"
    assert any(REDACTED in line for line in captured.lines)  # and they were there to redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("> Authorization: Bearer abc.def-123_456", "abc.def-123_456"),
        ("[(b'authorization', b'Basic Y2xpZW50OnNlY3JldA==')]", "Y2xpZW50OnNlY3JldA=="),
        ("GET /x?a=1&access_token=tok123&b=2 HTTP/1.1", "tok123"),
        ("grant_type=client_credentials&client_secret=s3cr3t", "s3cr3t"),
        ('{"status": "granted", "token": "claimtok"}', "claimtok"),
        ("{'client_secret': 'abc'}", "abc"),
        ("/f/configure/?device_code=ABCDEFGH", "ABCDEFGH"),
        ("Cookie: arkitekt_operator=sess1on", "sess1on"),
        ("Authorization: rawtoken", "rawtoken"),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert REDACTED in redact(text)


def test_prose_and_numbers_stay_readable() -> None:
    for text in ("the bearer token is invalid", "token_url=http://x/lok/token/", "tokens=5"):
        assert redact(text) == text


def test_secrets_joined_from_message_and_arguments_are_redacted(captured: Capture) -> None:
    install_redaction()
    install_redaction()  # idempotent
    log = logging.getLogger("a.library.created.later")
    log.debug("> %s: %s", "Authorization", "raw-secret-value")
    log.debug("headers %r", {"authorization": "Bearer abcdefgh12345"})
    log.debug("%(who)s asked with token=%(token)s", {"who": "x", "token": "mapped-secret"})
    log.debug("%d calls", 3)
    lines = [r.getMessage() for r in captured.records if r.name == "a.library.created.later"]
    assert len(lines) == 4
    assert not [line for line in lines if "secret" in line or "abcdefgh12345" in line]
    assert lines[-1] == "3 calls"


def test_tracebacks_are_scrubbed_too(captured: Capture) -> None:
    install_redaction()
    log = logging.getLogger("a.library.failing")
    try:
        raise ValueError("GET /x?access_token=in-a-traceback failed")
    except ValueError:
        log.exception("request failed")
    (record,) = [r for r in captured.records if r.name == "a.library.failing"]
    text = logging.Formatter().format(record)
    assert "Traceback" in text
    assert "in-a-traceback" not in text


def test_messages_that_are_not_strings_are_scrubbed_too(captured: Capture) -> None:
    install_redaction()
    log = logging.getLogger("a.library.logging.objects")
    log.warning({"authorization": "Bearer abcdefghijklmnop"})
    log.warning(ValueError("token=supersecretvalue"))
    log.warning("%s and %s", "only one argument")  # does not fit: still logged, and scrubbed
    log.warning("plain %s", "text")
    records = [r for r in captured.records if r.name == "a.library.logging.objects"]
    lines = [r.getMessage() for r in records]
    assert len(lines) == 4
    assert not [line for line in lines if "abcdefghijklmnop" in line or "supersecret" in line]
    assert REDACTED in lines[0]
    assert REDACTED in lines[1]
    assert "only one argument" in lines[2]
    assert (records[3].msg, records[3].args) == ("plain %s", ("text",))  # clean ones untouched


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("<SecretAccessKey>wJalr/K7+MDENG</SecretAccessKey>", "wJalr/K7+MDENG"),
        ("<SessionToken>FQoGZXIvYXdzE//Abc=</SessionToken>", "FQoGZXIvYXdzE//Abc="),
        ('{"SecretAccessKey": "wJalrXUtnFEMI", "SessionToken": "FQoG"}', "wJalrXUtnFEMI"),
        ("S3Store(secret_access_key='wJalrXUtnFEMI')", "wJalrXUtnFEMI"),
        ("aws_session_token=FQoGZXIvYXdzE", "FQoGZXIvYXdzE"),
    ],
)
def test_redact_removes_cloud_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert REDACTED in redact(text)


def test_a_server_at_debug_logs_no_grant_credentials(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    """botocore's debug output holds a grant's AssumeRole answer: it stays at WARNING."""
    settings = s3_settings(s3_endpoint, s3_bucket)
    env = {
        **os.environ,
        "ARKITEKT_SERVER_LOG_LEVEL": "debug",
        **{f"ARKITEKT_SERVER_S3__{name.upper()}": str(value) for name, value in settings.items()},
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "server.log"
    command = [
        sys.executable, "-m", "arkitekt._cli", "server", "--port", str(port),
        "--data-dir", str(tmp_path / "data"), "--auto-approve",
    ]  # fmt: skip
    with log_file.open("w") as log:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(url, process), 30, interval=0.1)
        app = easy("logged-uploader", url=url, headless=True, cache_dir=tmp_path / "c")
        with app, httpx.Client(base_url=url + "/mikro", headers=_bearer(app)) as http:
            answer = http.post("/uploads/", json=UPLOAD)
        assert answer.status_code == 201, answer.text
        grant = answer.json()["s3"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    text = log_file.read_text()
    assert '"POST /mikro/uploads/ HTTP/1.1" 201' in text  # the log is the grant's server's
    for name in ("secret_access_key", "session_token"):
        assert grant[name]
        assert grant[name] not in text, f"the grant's {name} was logged"
    assert settings["secret_access_key"] not in text
    assert "DEBUG botocore" not in text
    assert "DEBUG aiosqlite" not in text


def test_an_embedded_server_holds_third_party_loggers_at_warning(
    server_factory: Callable[..., EmbeddedServer], captured: Capture
) -> None:
    """Whatever the host's root level, botocore and the drivers do not log at debug."""
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("botocore", "asyncpg", "")}
    root.setLevel(logging.DEBUG)
    for name in ("botocore", "asyncpg"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        server_factory(log_level="debug")
        assert logging.getLogger("arkitekt_server").getEffectiveLevel() == logging.DEBUG
        for name in ("botocore.endpoint", "asyncpg", "aiosqlite"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


UPLOAD = {"name": "x", "shape": [1, 1, 1, 4, 4], "chunks": [1, 1, 1, 4, 4], "dtype": "uint8"}


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the server exited"
    try:
        httpx.get(url + "/.well-known/fakts", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _bearer(app: App) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer_token(app)}"}


def test_approval_polls_stay_out_of_the_info_log(tmp_path: Path) -> None:
    """An app waiting for its approval polls once a second; the access log at INFO shows the
    start of the grant, not every poll (a failed poll is still shown)."""
    server = ServerProcess(tmp_path, env={"ARKITEKT_SERVER_LOG_LEVEL": "info"})
    server.start()
    try:
        manifest = {"manifest": {"identifier": "poller", "version": "1"}}
        code = httpx.post(server.url + "/f/start/", json=manifest, timeout=10).json()["code"]
        for _ in range(3):
            polled = httpx.post(server.url + "/f/challenge/", json={"code": code}, timeout=10)
            assert polled.status_code == 200
        bad = httpx.post(server.url + "/f/challenge/", json={"code": ""}, timeout=10)
        assert bad.status_code == 422
    finally:
        output = server.stop()
    assert '"POST /f/start/ HTTP/1.1" 200' in output, output
    challenges = [line for line in output.splitlines() if "/f/challenge/" in line]
    assert len(challenges) == 1, output
    assert '"POST /f/challenge/ HTTP/1.1" 422' in challenges[0]


ACCESS = '%s - "%s %s HTTP/%s" %d'  # uvicorn's access log call: (client, method, path, v, status)


def test_an_access_line_of_a_url_with_a_secret_keeps_uvicorns_arguments(
    captured: Capture,
) -> None:
    """uvicorn's access formatter unpacks the record's five arguments: scrubbing keeps them."""
    install_redaction()
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    log = logging.getLogger("uvicorn.access")
    for path, secret in (
        ("/f/configure/?device_code=NOPE-DEVICE-CODE", "NOPE-DEVICE-CODE"),
        ("/health/?token=abc-token-secret&x=1", "abc-token-secret"),
    ):
        log.info(ACCESS, "127.0.0.1:5000", "GET", path, "1.1", 404)
        record = captured.records[-1]
        assert isinstance(record.args, tuple)
        assert len(record.args) == 5
        assert record.args[4] == 404  # still a number
        line = formatter.format(record)
        assert secret not in line
        shown = path.replace(secret, REDACTED)
        assert line == f'127.0.0.1:5000 - "GET {shown} HTTP/1.1" 404 Not Found'


def test_a_secret_joined_from_arguments_leaves_no_piece_in_them(captured: Capture) -> None:
    install_redaction()
    log = logging.getLogger("a.library.joining")
    log.warning("token=%s for %s (%d%%, %d)", "joined-secret-value", "someone", 50, 3)
    (record,) = [r for r in captured.records if r.name == "a.library.joining"]
    assert record.getMessage() == "token=[redacted] for someone (50%, 3)"
    assert isinstance(record.args, tuple)
    assert len(record.args) == 4  # the shape formatters that read the arguments expect
    assert "joined-secret-value" not in repr(record.args)
    assert record.args[1:] == ("someone", 50, 3)


def test_the_servers_access_log_hides_secrets_in_urls_without_logging_errors(
    tmp_path: Path,
) -> None:
    """`arkitekt server` at INFO: uvicorn's access log shows each request, its secrets hidden."""
    server = ServerProcess(
        tmp_path / "data",
        env={"ARKITEKT_SERVER_LOG_LEVEL": "info", "ARKITEKT_SERVER_STATE_DIR": str(tmp_path)},
    )
    server.start()
    try:
        configure = httpx.get(server.url + "/f/configure/?device_code=DEVICE-SECRET-1", timeout=10)
        health = httpx.get(server.url + "/health/?token=TOKEN-SECRET-2", timeout=10)
        assert health.status_code == 200
    finally:
        output = server.stop()
    assert "Logging error" not in output, output
    assert "Traceback" not in output, output
    assert "DEVICE-SECRET-1" not in output
    assert "TOKEN-SECRET-2" not in output
    shown = f'"GET /f/configure/?device_code={REDACTED} HTTP/1.1" {configure.status_code}'
    assert shown in output, output
    assert f'"GET /health/?token={REDACTED} HTTP/1.1" 200' in output, output
