"""Functions on the server (rekuest): definitions, agents, assignments."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from arkitekt.protocol.rekuest import MAX_MESSAGE_BYTES, MAX_MESSAGE_CONTAINERS
from arkitekt_server._periodic import background, every
from arkitekt_server._service import SMALL_BODY_BYTES, ServerService
from arkitekt_server._settings import ServerSettings
from arkitekt_server._urls import ws_url
from arkitekt_server.rekuest import _models  # noqa: F401 -- registers the tables
from arkitekt_server.rekuest import _upkeep as upkeep
from arkitekt_server.rekuest._hub import EXPIRE_EVERY_SECONDS, Hub
from arkitekt_server.rekuest._relay import Relay
from arkitekt_server.rekuest._routes import router
from arkitekt_server.rekuest._store import Store

__all__ = ["service"]

log = logging.getLogger("arkitekt_server.rekuest")


def _config(base: str, settings: ServerSettings) -> dict[str, object]:
    ws = ws_url(base)
    return {
        "endpoint_url": base + "rekuest/",
        "agent": {"endpoint_url": ws + "rekuest/agent/ws"},
        "caller": {"endpoint_url": ws + "rekuest/caller/ws"},
    }


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    store = Store(app.state.database)
    hub = Hub(
        store,
        max_pending_calls=settings.rekuest_max_pending_calls,
        max_pending_bytes=settings.rekuest_max_pending_argument_bytes,
        cancel_grace=settings.rekuest_cancel_grace_seconds,
        agent_grace=settings.rekuest_agent_grace_seconds,
        max_attempts=settings.rekuest_max_attempts,
        resume_grace=settings.rekuest_resume_seconds,
    )
    tasks: list[Callable[[], Coroutine[object, object, object]]] = [store.run]
    if app.state.database.engine.dialect.name == "postgresql":  # replicas may share it
        store.interval = 0.0  # other replicas wait for each batch: no collecting pause
        relay = Relay(
            hub,
            app.state.database,
            lease=settings.rekuest_lease_seconds,
            rescan=settings.rekuest_rescan_seconds,
        )
        await relay.start()
        tasks.append(relay.run)
    else:
        await hub.load()
    app.state.rekuest_hub = hub
    retention = settings.rekuest_retention_seconds
    prune = functools.partial(
        every,
        upkeep.PRUNE_EVERY_SECONDS,
        functools.partial(upkeep.prune, store, retention),
        what="rekuest: pruning finished assignments",
        log=log,
    )

    async def expire() -> None:
        hub.expire(hub.clock())

    expiring = functools.partial(
        every, EXPIRE_EVERY_SECONDS, expire, what="rekuest: enforcing time limits", log=log
    )
    try:
        async with background(*tasks, expiring, prune):
            yield
    finally:  # once store.run has stopped: what it had not written yet
        with anyio.CancelScope(shield=True):
            await store.close()


service = ServerService(
    name="rekuest",
    router=router,
    prefix="/rekuest",
    config=_config,
    lifespan=_lifespan,
    # a call's body: at most one message (the hub checks the encoded call exactly), with room
    # for the JSON of the request around it
    body_limits={"/rekuest/assignments/": MAX_MESSAGE_BYTES + SMALL_BODY_BYTES},
    # and as many objects and arrays as one message (the hub counts the call's exactly)
    json_containers={"/rekuest/assignments/": MAX_MESSAGE_CONTAINERS + 16},
)
