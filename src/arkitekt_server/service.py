"""What a server module plugs into the app: a router, a config group, a lifespan.

The server is the sum of the modules listed in :data:`arkitekt_server.app.SERVICES`; each holds
a module-level ``service = ServerService(...)``. A module's tables live on
:class:`arkitekt_server.db.Base` and are created when the module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

__all__ = ["ConfigGroup", "ServerService"]

ConfigGroup = Callable[[str], dict[str, Any]]
"""Builds a service's group of the claimed config from the server's base URL (ends in ``/``)."""


@dataclass(frozen=True)
class ServerService:
    """One module of the server.

    Attributes:
        name: the module's name; also the key of its group in the claimed config.
        router: its routes, mounted under ``prefix``.
        prefix: where the routes live, e.g. ``"/mikro"`` (``""`` for the root).
        config: its group of the claimed fakts config, or ``None`` for no group.
        lifespan: resources the module holds while the server runs (background cleanup, ...).
        public_paths: route paths (as declared, with the prefix) that answer without a bearer
            token. Everything else must depend on :func:`arkitekt_server.auth.require_principal`;
            a test checks every route of the server against this list.
    """

    name: str
    router: APIRouter
    prefix: str = ""
    config: ConfigGroup | None = None
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    public_paths: tuple[str, ...] = ()
