"""Fakts on the server: discovery, device-code approval, claim, redeem, retrieve."""

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI

from arkitekt_server._db import Database
from arkitekt_server._operator import (
    OperatorSessions,
    operator_secret,
    operator_secret_file,
)
from arkitekt_server._periodic import background, every
from arkitekt_server._service import SMALL_BODY_BYTES, ServerService
from arkitekt_server.fakts._admin import create_static_token, decide, list_clients, prune, revoke
from arkitekt_server.fakts._logic import FaktsError, TooManyPendingError
from arkitekt_server.fakts._routes import router

PRUNE_EVERY_SECONDS = 600.0

log = logging.getLogger("arkitekt_server.fakts")


async def _prune(database: Database) -> None:
    async with database.sessions() as session:
        removed = await prune(session)
    if removed:
        log.info("pruned %d expired device codes and access tokens", removed)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    database: Database = app.state.database
    secret = await anyio.to_thread.run_sync(operator_secret, app.state.settings)
    app.state.operator_sessions = OperatorSessions(secret)

    async def pruner() -> None:
        await every(
            PRUNE_EVERY_SECONDS,
            functools.partial(_prune, database),
            what="pruning expired device codes and tokens",
            log=log,
            at_once=True,
        )

    async with background(pruner):
        yield


_PUBLIC = (
    "/.well-known/fakts",
    "/f/start/",
    "/f/challenge/",
    "/f/claim/",
    "/f/redeem/",
    "/f/retrieve/",
    "/f/configure/",
    "/f/signin/",
)

service = ServerService(
    name="fakts",
    router=router,
    lifespan=_lifespan,
    public_paths=_PUBLIC,
    body_limits=dict.fromkeys(_PUBLIC, SMALL_BODY_BYTES),
)

__all__ = [
    "FaktsError",
    "TooManyPendingError",
    "create_static_token",
    "decide",
    "list_clients",
    "operator_secret",
    "operator_secret_file",
    "revoke",
    "service",
]
