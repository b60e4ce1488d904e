"""The server application: settings, database and every service module in one FastAPI app."""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import arkitekt
from arkitekt.protocol.redact import install_redaction
from arkitekt.protocol.text import ECHO_CHARS, echo
from arkitekt_server._auth import PrincipalCache
from arkitekt_server._db import Database, database_url
from arkitekt_server._errors import ArkitektServerError
from arkitekt_server._gate import RequestGate, document_gate
from arkitekt_server._hosts import TrustedHosts
from arkitekt_server._service import ServerService
from arkitekt_server._settings import ServerConfigError, ServerSettings

__all__ = ["HEALTH_PATH", "SERVICES", "create_app", "load_services"]

log = logging.getLogger("arkitekt_server")

SERVICES: tuple[str, ...] = (
    "arkitekt_server.fakts",
    "arkitekt_server.lok",
    "arkitekt_server.mikro",
    "arkitekt_server.rekuest",
)
"""The modules the server is made of; each holds ``service = ServerService(...)``."""

HEALTH_PATH = "/health/"
_COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The Host header names no host this server answers to."},
}
_health = APIRouter(tags=["health"])


@_health.get(HEALTH_PATH)
async def health() -> dict[str, str]:
    """Liveness: answers without a token."""
    return {"status": "ok", "version": arkitekt.__version__}


MAX_PROBLEMS = 20
"""The most problems a 422 answer lists (a list of 100,000 bad items has as many)."""


def _place(part: object) -> int | str:
    """One step of a problem's location; a dict key from the input is cut short."""
    if isinstance(part, int):
        return part
    text = str(part)
    return text if len(text) <= ECHO_CHARS else echo(text)


async def _refused(request: Request, error: Exception) -> JSONResponse:
    """A 422 that names each problem's place and reason, never the input.

    FastAPI's default answer repeats the offending input, which may hold what JSON cannot carry
    back (``NaN``, which ``json.loads`` accepts): the refusal itself would become a 500. At
    most :data:`MAX_PROBLEMS` are listed, then one entry counting the rest.
    """
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    problems: list[dict[str, Any]] = [
        {
            "loc": [_place(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in itertools.islice(errors, MAX_PROBLEMS)
    ]
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        problems.append({"loc": ["body"], "msg": f"and {more:,} more", "type": "more"})
    return JSONResponse(status_code=422, content={"detail": problems})


def load_services(names: Sequence[str] = SERVICES) -> list[ServerService]:
    """Import the service modules (which registers their tables) and return their services."""
    services = []
    for name in names:
        service = getattr(importlib.import_module(name), "service", None)
        if not isinstance(service, ServerService):
            raise ServerConfigError(f"module {name!r} has no `service = ServerService(...)`")
        services.append(service)
    return services


def create_app(settings: ServerSettings, services: Sequence[str] = SERVICES) -> FastAPI:
    """Build the server for ``settings``; the database opens when the app starts.

    Example:
        >>> from arkitekt_server import ServerSettings, create_app
        >>> app = create_app(ServerSettings(data_dir="/tmp/arkitekt-doc"))
        >>> app.title
        'arkitekt server'

    """
    install_redaction()  # no credential reaches any log of the server process
    loaded = load_services(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Services start in order and stop in reverse; a service that refuses to start stops
        # those before it (each cancels and awaits its background tasks), then the database
        # closes, then the refusal propagates.
        database = (
            Database.in_dir(settings.data_dir)
            if settings.database_url is None
            else Database(database_url(settings.database_url))
        )
        app.state.database = database
        try:
            await database.create_tables()
            if settings.auto_approve:
                log.warning(
                    "AUTO-APPROVE IS ON: every app asking from this machine (loopback) is "
                    "approved without asking. Use it only on a single-user machine."
                )
            async with AsyncExitStack() as stack:
                for service in loaded:
                    if service.lifespan is not None:
                        try:
                            await stack.enter_async_context(service.lifespan(app))
                        except ArkitektServerError as error:
                            app.state.refusal = f"{service.name}: {error}"
                            raise
                yield
        finally:
            await database.dispose()

    # No public OpenAPI pages: every route but the fakts flow and health needs a token.
    app = FastAPI(
        title="arkitekt server",
        version=arkitekt.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(RequestValidationError, _refused)
    app.state.settings = settings
    app.state.principal_cache = PrincipalCache(settings.auth_cache_seconds)
    app.state.services = loaded
    app.include_router(_health, responses=_COMMON_RESPONSES)
    for service in loaded:
        app.include_router(service.router, prefix=service.prefix, responses=_COMMON_RESPONSES)
    public = {HEALTH_PATH}.union(*(service.public_paths for service in loaded))

    def openapi() -> dict[str, Any]:
        # Not served (openapi_url=None); built for the tests, which fuzz the server against it.
        if app.openapi_schema is None:
            app.openapi_schema = document_gate(FastAPI.openapi(app), public)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Authentication before any body is read, and bounded bodies, for every route.
    app.add_middleware(
        RequestGate,
        public=public,
        routes=app.routes,
        max_body_bytes=settings.max_body_bytes,
        body_limits={k: v for service in loaded for k, v in service.body_limits.items()},
        json_containers={k: v for service in loaded for k, v in service.json_containers.items()},
    )
    # Requests must name this server in their Host header: a web page whose DNS name was
    # rebound to 127.0.0.1 must not reach the fakts flow (or anything else) through a browser.
    app.add_middleware(TrustedHosts, hosts=settings.trusted_hosts())
    app.add_middleware(_RefusalInOneLine)
    return app


class _RefusalInOneLine:
    """ASGI middleware: a service's deliberate refusal to start is reported in one line.

    Starlette reports a failed startup with the whole traceback (an exception group of every
    lifespan it passed through). A refusal (an :class:`ArkitektServerError`, such as unknown
    image stores) is no bug: the server says which service refused and why, and exits.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state

        async def report(message: Message) -> None:
            refusal = getattr(state, "refusal", None)
            if message["type"] == "lifespan.startup.failed" and refusal is not None:
                message = {**message, "message": f"arkitekt server refused to start: {refusal}"}
            await send(message)

        await self.app(scope, receive, report)
