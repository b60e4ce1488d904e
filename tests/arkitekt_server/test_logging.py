"""Secrets are never logged, by the server or the client, even at debug level."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from arkitekt import easy, whoami
from arkitekt_server import EmbeddedServer

LOGGERS = ["", "arkitekt", "arkitekt_server", "uvicorn", "uvicorn.access", "uvicorn.error",
           "httpx", "httpcore", "sqlalchemy", "fastapi"]  # fmt: skip


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_no_secret_reaches_any_log(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path, captured: Capture
) -> None:
    server = server_factory(auto_approve=True, log_level="debug")
    app = easy("logged-app", url=server.url, headless=True, cache_dir=tmp_path)
    with app:
        whoami()
        transport = app.runtime.scope.bridge.call(_transport, app)
        config = app.runtime.scope.bridge.call(transport.aconfig)
        bearer = transport._token
    claim_token = app.fakts.cache.load()
    assert claim_token is not None
    secrets = {
        "claim token": claim_token.token,
        "client secret": config["lok"]["client_secret"],
        "bearer token": bearer,
    }
    assert len(captured.lines) > 10  # the loggers were listening
    for name, secret in secrets.items():
        assert secret
        leaks = [line for line in captured.lines if secret in line]
        assert not leaks, f"the {name} was logged: {leaks[0]}"


async def _transport(app: object) -> object:
    from arkitekt import App

    assert isinstance(app, App)
    return await app.container.transport()
