"""What a server module plugs into the app: a router, a config group, a lifespan.

The server is the sum of the modules listed in :data:`arkitekt_server._app.SERVICES`; each holds
a module-level ``service = ServerService(...)``. A module's tables live on
:class:`arkitekt_server._db.Base` and are created when the module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

if TYPE_CHECKING:
    from arkitekt_server._settings import ServerSettings

__all__ = ["SMALL_BODY_BYTES", "ConfigGroup", "ErrorBody", "ServerService", "documented"]

SMALL_BODY_BYTES = 64 << 10
"""The body limit of modules whose routes take only small JSON or forms (fakts, lok)."""


class ErrorBody(BaseModel):
    """What a refusal answers: a ``detail`` saying what was wrong."""

    detail: str | list[dict[str, Any]] | dict[str, Any]


def documented(reasons: Mapping[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may refuse with these status codes.

    Example:
        >>> documented({404: "No such thing."}, 404)[404]["description"]
        'No such thing.'

    """
    return {code: {"model": ErrorBody, "description": reasons[code]} for code in codes}


ConfigGroup = Callable[[str, "ServerSettings"], dict[str, Any]]
"""Builds a service's group of the claimed config from the server's base URL (ends in ``/``)
and settings."""


@dataclass(frozen=True)
class ServerService:
    """One module of the server.

    Attributes:
        name: the module's name; also the key of its group in the claimed config.
        router: its routes, mounted under ``prefix``.
        prefix: where the routes live, e.g. ``"/mikro"`` (``""`` for the root).
        config: its group of the claimed fakts config, or ``None`` for no group.
        lifespan: resources the module holds while the server runs. Its background tasks run
            in :func:`arkitekt_server._periodic.background` (periodic ones as
            :func:`~arkitekt_server._periodic.every`), so that when a later module refuses to
            start they stop, a round in progress finished, before the database closes.
        public_paths: route paths (as declared, with the prefix) that answer without a bearer
            token. Everything else must depend on :func:`arkitekt_server._auth.require_principal`;
            the server refuses requests to it without a valid token before reading their body,
            and a test checks every route of the server against this list.
        body_limits: route path (as declared, with the prefix) -> the largest request body
            (bytes) it accepts, for routes that need more or less than the server's
            ``max_body_bytes`` (chunk uploads more, the public fakts routes less). Larger bodies
            are answered 413 before they are read.
        json_containers: route path -> the most JSON objects and arrays its body may hold, for
            routes that need another count than the gate's ``MAX_JSON_CONTAINERS`` (answered
            413 before the body is parsed).
    """

    name: str
    router: APIRouter
    prefix: str = ""
    config: ConfigGroup | None = None
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    public_paths: tuple[str, ...] = ()
    body_limits: Mapping[str, int] = field(default_factory=dict)
    json_containers: Mapping[str, int] = field(default_factory=dict)
