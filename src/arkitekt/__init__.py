"""arkitekt: connect bioimage apps to a lab backend without knowing where it is.

The names here are for app authors: declare an app with :func:`easy`, open it with ``with
app:``, call the services' API functions (:mod:`arkitekt.mikro`, :mod:`arkitekt.rekuest`), write
injected functions with :func:`inject` and :func:`Provide`, and catch the errors of
:mod:`arkitekt.errors` (all re-exported here). Service authors use :mod:`arkitekt.extension`;
every ``_``-prefixed module is private.

Importing this package is cheap: the names that need the HTTP stack, the settings machinery
or the container are imported when first used.

Example:
    >>> from arkitekt import easy
    >>> app = easy("my-app")
    >>> app.is_open
    False

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from arkitekt._app import App
from arkitekt._declare import Arkitekt, easy
from arkitekt.errors import (
    AgentLostError,
    AgentRefusedError,
    AppClosedError,
    ArkitektError,
    AssignmentCancelledError,
    BadArgumentsError,
    BadResponseError,
    BridgeError,
    CallTimeoutError,
    ConfigError,
    ConnectionLostError,
    DefinitionError,
    DiscoveryError,
    GrantError,
    ImageNotFoundError,
    InjectionError,
    InsecureTransportError,
    InvalidImageError,
    LocalPathError,
    MessageRefusedError,
    MikroError,
    NoActiveAppError,
    NoAgentError,
    PermissionDeniedError,
    RekuestError,
    RemoteError,
    ResponseTooLargeError,
    ScopeError,
    ScopeLockedError,
    ServerUnreachableError,
    TeardownError,
    UnknownProviderError,
    UploadError,
)

if TYPE_CHECKING:
    __version__: str
    from arkitekt._inject import Provide, inject
    from arkitekt._settings import Settings, load_settings
    from arkitekt.protocol.fakts import Manifest
    from arkitekt.transport import awhoami, whoami

__all__ = [
    "AgentLostError",
    "AgentRefusedError",
    "App",
    "AppClosedError",
    "Arkitekt",
    "ArkitektError",
    "AssignmentCancelledError",
    "BadArgumentsError",
    "BadResponseError",
    "BridgeError",
    "CallTimeoutError",
    "ConfigError",
    "ConnectionLostError",
    "DefinitionError",
    "DiscoveryError",
    "GrantError",
    "ImageNotFoundError",
    "InjectionError",
    "InsecureTransportError",
    "InvalidImageError",
    "LocalPathError",
    "Manifest",
    "MessageRefusedError",
    "MikroError",
    "NoActiveAppError",
    "NoAgentError",
    "PermissionDeniedError",
    "Provide",
    "RekuestError",
    "RemoteError",
    "ResponseTooLargeError",
    "ScopeError",
    "ScopeLockedError",
    "ServerUnreachableError",
    "Settings",
    "TeardownError",
    "UnknownProviderError",
    "UploadError",
    "awhoami",
    "easy",
    "inject",
    "load_settings",
    "whoami",
]

# name -> the module that holds it, imported on first access (PEP 562)
_LAZY = {
    "Manifest": "arkitekt.protocol.fakts",
    "Provide": "arkitekt._inject",
    "Settings": "arkitekt._settings",
    "awhoami": "arkitekt.transport",
    "inject": "arkitekt._inject",
    "load_settings": "arkitekt._settings",
    "whoami": "arkitekt.transport",
}

# Names that were here before the public surface was split by audience, and where they went.
_MOVED = {
    "ArkitektContainer": "arkitekt.extension",
    "ScopeKind": "arkitekt.extension",
    "current_scope": "arkitekt.extension",
    "loopsafe": "arkitekt.extension",
    "syncify": "arkitekt.extension",
}


def _lazy(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        from arkitekt.protocol.distribution import DISTRIBUTION

        value: Any = version(DISTRIBUTION)
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _MOVED:
        raise AttributeError(
            f"module 'arkitekt' has no attribute {name!r}: it moved to {_MOVED[name]} "
            f"(from {_MOVED[name]} import {name})",
            name=name,
        )
    else:
        raise AttributeError(f"module 'arkitekt' has no attribute {name!r}", name=name)
    globals()[name] = value  # once: later lookups do not come here
    return value


if not TYPE_CHECKING:  # a typed __getattr__ would make every misspelt name pass mypy
    __getattr__ = _lazy


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__")), "__version__"})
