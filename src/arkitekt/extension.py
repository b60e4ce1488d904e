"""The toolkit for service authors: everything needed to add a service to an arkitekt app.

App authors do not need this module (they use :mod:`arkitekt`). Write a service here when an
app should reach a new backend the way it reaches ``mikro`` and ``rekuest``:

- :class:`Service`: the base class; holds the app's :class:`AppSlot`, refuses configuration
  while its app is open.
- :class:`ArkitektContainer`: the container to subclass, adding a provider for the service;
  :func:`check_scopes` is what the app runs on it when it is built.
- :class:`ScopedResource`, :class:`ScopeKind`: a value opened lazily once per scope (APP:
  ``with app:``; TASK: one rekuest assignment or web request) and closed with it.
- :class:`Transport`: the app's authenticated HTTP session (``ArkitektContainer.transport``, an
  APP-scoped resource): the claimed configuration, bearer tokens, an ``httpx.AsyncClient``.
  Its request extensions (``MAX_BODY``, ``IDEMPOTENT``) are in :mod:`arkitekt.transport`.
- :func:`syncify`, :func:`loopsafe`: the blocking and the loop-safe twin of an async API
  function, so each function is written once, as a coroutine.
- :func:`owner_scope`: the one rule for which app owns a call (an explicit service among the
  arguments, else the active scope); :func:`current_scope`, :func:`get_scope`: the active
  scope; :class:`Scope`, :class:`Bridge`: a scope and the bridge onto its app's event loop.
- :func:`aresolve`: call a provider and await it if it is async; :func:`activate` and
  :func:`deactivate`: make a scope active in this context (for framework integrations, see
  :mod:`arkitekt.integrations.fastapi`).

Example:
    A tiny service, its provider, and an API function with its blocking twin:

    >>> from arkitekt import App, Manifest, Provide, inject
    >>> from arkitekt.extension import ArkitektContainer, Service, loopsafe, syncify
    >>> from dependency_injector import providers
    >>> class Echo(Service):
    ...     async def asay(self, text: str) -> str:
    ...         return f"{self.app_slot.name} says {text}"
    >>> class EchoContainer(ArkitektContainer):
    ...     echo = providers.Singleton(Echo, app_slot=ArkitektContainer.app_slot)
    >>> @loopsafe
    ... @inject
    ... async def asay(text: str, *, echo: Echo = Provide("echo")) -> str:
    ...     return await echo.asay(text)
    >>> say = syncify(asay)
    >>> app = App(Manifest(identifier="echo-app", version="1"), container=EchoContainer)
    >>> with app:
    ...     say("hello")
    'echo-app says hello'

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from arkitekt._bridge import Bridge
from arkitekt._inject import aresolve
from arkitekt._owner import owner_scope
from arkitekt._scope import (
    AppSlot,
    Scope,
    ScopeKind,
    activate,
    current_scope,
    deactivate,
    get_scope,
)
from arkitekt._service import Service
from arkitekt._twins import loopsafe, syncify

if TYPE_CHECKING:
    from arkitekt._container import ArkitektContainer, check_scopes
    from arkitekt._resources import ScopedResource
    from arkitekt.transport import Transport

__all__ = [
    "AppSlot",
    "ArkitektContainer",
    "Bridge",
    "Scope",
    "ScopeKind",
    "ScopedResource",
    "Service",
    "Transport",
    "activate",
    "aresolve",
    "check_scopes",
    "current_scope",
    "deactivate",
    "get_scope",
    "loopsafe",
    "owner_scope",
    "syncify",
]

# name -> the module that holds it: these import dependency-injector or httpx (and the
# container, the services), so they are imported on first use (PEP 562).
_LAZY = {
    "ArkitektContainer": "arkitekt._container",
    "ScopedResource": "arkitekt._resources",
    "Transport": "arkitekt.transport",
    "check_scopes": "arkitekt._container",
}


def _lazy(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'arkitekt.extension' has no attribute {name!r}", name=name)
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


if not TYPE_CHECKING:  # a typed __getattr__ would make every misspelt name pass mypy
    __getattr__ = _lazy


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
