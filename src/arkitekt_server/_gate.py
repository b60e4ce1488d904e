"""Authenticate before anything of a request's body is read, and bound the body's size.

FastAPI reads and parses a route's body before it resolves the route's dependencies, so a
route's ``require_principal`` dependency alone would let anyone make the server read and parse
a large body. :class:`RequestGate` runs before routing:

1. A request to a path that is not declared public (:attr:`ServerService.public_paths`) needs a
   valid bearer token; without one it is answered 401 and its body is never read. The route's
   dependency then finds the principal in the request's state. Deny by default: a path that
   names no route needs a token too (and then gets its 404).
2. Every request body is bounded: by the route's declared limit
   (:attr:`ServerService.body_limits`) or the server's ``max_body_bytes``. A ``Content-Length``
   over the limit is answered 413 at once; a body without one is counted while it streams and
   cut off with 413 at the limit.
3. A body the app parses as JSON (a route whose body is a model, not a form) is bounded in
   what it expands to as well: a few bytes of JSON (``{}``, ``[]``) become objects of tens of
   bytes each once parsed, so 16 MiB of ``[{},{},...]`` took 400 MiB to parse. Before the app
   parses it, the body's objects and arrays are counted (a scan outside strings, no parsing);
   more than the route's declared count (:attr:`ServerService.json_containers`) or
   :data:`MAX_JSON_CONTAINERS` is answered 413.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arkitekt.protocol.text import too_many_containers
from arkitekt_server._auth import PRINCIPAL_STATE, authenticate
from arkitekt_server._errors import ArkitektServerError

__all__ = [
    "MAX_JSON_CONTAINERS",
    "BodyTooLargeError",
    "RequestGate",
    "document_gate",
    "http_routes",
]

MAX_JSON_CONTAINERS = 100_000
"""The most objects and arrays one JSON body may hold (parsed, each costs 60 to 250 bytes;
1 MiB of metadata as ``[x, y]`` points holds about 90,000)."""


def http_routes(app_routes: Sequence[BaseRoute]) -> list[RouteContext]:
    """Every HTTP route of an app, with its full path, also those of included routers."""
    return [
        context
        for context in iter_route_contexts(app_routes)
        if isinstance(context.original_route, APIRoute)
    ]


class BodyTooLargeError(ArkitektServerError, HTTPException):
    """A request body is larger than its route accepts (answered 413)."""

    def __init__(self, method: str, path: str, limit: int, *, containers: bool = False) -> None:
        if containers:
            detail = (
                f"the request body holds more than the {limit} JSON objects and arrays that "
                f"{method} {path} accepts (each takes tens of bytes once parsed); send fewer"
            )
        else:
            detail = (
                f"the request body is larger than the {limit} bytes that {method} {path} "
                "accepts; send a smaller one"
            )
        super().__init__(413, detail)


def _parses_json(context: RouteContext) -> bool:
    """Whether the app parses this route's body as JSON (a body model, not a form)."""
    field = getattr(context, "body_field", None)
    return field is not None and not isinstance(field.field_info, params.Form)


def _patterns(paths: Iterable[str], known: set[str], what: str) -> list[re.Pattern[str]]:
    unknown = set(paths) - known
    if unknown:
        raise ValueError(f"{what} without a route: {', '.join(sorted(unknown))}")
    return [compile_path(path)[0] for path in paths]


def _limits(
    limits: Mapping[str, int], known: set[str], what: str
) -> list[tuple[re.Pattern[str], int]]:
    paths = sorted(limits)
    return list(zip(_patterns(paths, known, what), [limits[p] for p in paths], strict=True))


def _limit(limits: list[tuple[re.Pattern[str], int]], path: str, default: int) -> int:
    return next((limit for pattern, limit in limits if pattern.fullmatch(path)), default)


class RequestGate:
    """ASGI middleware: bearer token before the body, and a bounded body, for every request.

    Args:
        app: the application to protect.
        public: the declared paths (``/f/start/``, ``/mikro/images/{image_id}/thumbnail.png``)
            that answer without a bearer token.
        routes: every route of the app; each declared path must name one of them.
        max_body_bytes: the largest body of a route that declares no limit of its own.
        body_limits: declared path -> largest body (bytes) of that route.
        json_containers: declared path -> most JSON objects and arrays in a body of that route
            (else :data:`MAX_JSON_CONTAINERS`).

    Raises:
        ValueError: a declared path names no route (a typo would leave a route unprotected,
            a public one unreachable or a limit unapplied).

    """

    def __init__(
        self,
        app: ASGIApp,
        public: Iterable[str],
        routes: Sequence[BaseRoute],
        max_body_bytes: int,
        body_limits: Mapping[str, int],
        json_containers: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        known = {str(context.path) for context in http_routes(routes)}
        self.public = _patterns(sorted(set(public)), known, "public paths")
        self.limits = _limits(body_limits, known, "body limits")
        self.container_limits = _limits(json_containers or {}, known, "JSON container limits")
        self.max_body_bytes = max_body_bytes
        self.json_routes = [
            (compile_path(str(context.path))[0], frozenset(context.methods or ()))
            for context in http_routes(routes)
            if _parses_json(context)
        ]

    def is_public(self, path: str) -> bool:
        """Whether ``path`` (a request path) is one of the public routes."""
        return any(pattern.fullmatch(path) for pattern in self.public)

    def parses_json(self, method: str, path: str) -> bool:
        """Whether the app parses the body of ``method path`` as JSON."""
        return any(
            method in methods and pattern.fullmatch(path) for pattern, methods in self.json_routes
        )

    def body_limit(self, path: str) -> int:
        """The largest body a request to ``path`` may send."""
        return _limit(self.limits, path, self.max_body_bytes)

    def container_limit(self, path: str) -> int:
        """The most JSON objects and arrays a body sent to ``path`` may hold."""
        return _limit(self.container_limits, path, MAX_JSON_CONTAINERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websockets authenticate in their handler (close 4401)
            await self.app(scope, receive, send)
            return
        path, headers = scope["path"], Headers(scope=scope)
        if not self.is_public(path):
            try:
                principal = await authenticate(scope["app"].state, headers.get("authorization"))
            except HTTPException as refused:
                await _answer(refused, scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        limit = self.body_limit(path)
        too_large = BodyTooLargeError(scope["method"], path, limit)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer(too_large, scope, receive, send)
            return
        received = 0
        started = False
        parts: list[bytes] | None = [] if self.parses_json(scope["method"], path) else None

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                part = message.get("body", b"")
                received += len(part)
                if received > limit:
                    raise too_large
                if parts is not None:  # the app buffers the whole body anyway, then parses
                    parts.append(part)
                    if not message.get("more_body", False):
                        body = b"".join(parts)
                        parts.clear()
                        containers = self.container_limit(path)
                        if too_many_containers(body, containers):
                            raise BodyTooLargeError(
                                scope["method"], path, containers, containers=True
                            )
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except BodyTooLargeError as error:  # raised where no handler turned it into a response
            if started:
                raise
            await _answer(error, scope, receive, send)


async def _answer(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)
    await response(scope, receive, send)


def document_gate(schema: dict[str, Any], public: Iterable[str]) -> dict[str, Any]:
    """Add what the gate answers to an app's OpenAPI ``schema``: 401 on every operation of a
    path that is not public, 413 on every operation that takes a body (declared, or read raw by
    a POST, PUT or PATCH). Returns ``schema``."""
    patterns = [compile_path(path)[0] for path in public]
    for path, item in schema.get("paths", {}).items():
        # the schema writes "{key}" where the route declared "{key:path}"; a placeholder that
        # matches either form decides whether the path is public
        probe = re.sub(r"\{[^}]+\}", "x", path)
        protected = not any(pattern.fullmatch(probe) for pattern in patterns)
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if protected:
                responses.setdefault("401", _described(_UNAUTHORIZED))
            if "requestBody" in operation or method in ("post", "put", "patch"):
                responses.setdefault("413", _described(_TOO_LARGE))
    return schema


_UNAUTHORIZED = "No valid bearer token (missing, unknown, expired or revoked); nothing was read."
_TOO_LARGE = "The request body is larger than this route accepts."


def _described(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                }
            }
        },
    }
