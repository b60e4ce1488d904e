"""arkitekt_server: the backend an arkitekt app discovers (fakts), stores images in (mikro) and
calls functions through (rekuest). FastAPI on uvicorn, SQLAlchemy async (SQLite by default).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from arkitekt_server._errors import (
    ArkitektServerError,
    PortInUseError,
    ServerExtraMissingError,
    ServerStartError,
)

if TYPE_CHECKING:
    from arkitekt_server._app import create_app
    from arkitekt_server._embedded import EmbeddedServer
    from arkitekt_server._settings import ServerConfigError, ServerSettings, load_server_settings

__all__ = [
    "ArkitektServerError",
    "EmbeddedServer",
    "PortInUseError",
    "ServerConfigError",
    "ServerExtraMissingError",
    "ServerSettings",
    "ServerStartError",
    "create_app",
    "load_server_settings",
]

# Imported on first use (PEP 562): the CLI imports this package to add its commands, and
# must not pay for FastAPI, uvicorn and SQLAlchemy then.
_HOMES = {
    "create_app": "arkitekt_server._app",
    "EmbeddedServer": "arkitekt_server._embedded",
    "ServerConfigError": "arkitekt_server._settings",
    "ServerSettings": "arkitekt_server._settings",
    "load_server_settings": "arkitekt_server._settings",
}


def _lazy(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'arkitekt_server' has no attribute {name!r}", name=name)
    try:
        module = import_module(home)
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing in ("", "arkitekt", "arkitekt_server"):
            raise
        # a library-only install: the server's dependencies (the server extra) are missing
        from arkitekt.protocol.distribution import pip_hint

        raise ServerExtraMissingError(
            f"arkitekt_server.{name} needs the server extra ({missing} is not installed): "
            f"{pip_hint('server')}",
            name=error.name,
        ) from error
    value = getattr(module, name)
    globals()[name] = value
    return value


if not TYPE_CHECKING:  # a typed __getattr__ would make every misspelt name pass mypy
    __getattr__ = _lazy


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
