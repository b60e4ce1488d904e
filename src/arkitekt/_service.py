"""The base of every service object (``app.fakts``, ``app.mikro``, ...).

A service is configured before its app is entered (``app.fakts.grant = ...``) and frozen while
the app is open, so configuration cannot change under running code. It carries its app's
:class:`~arkitekt.extension.AppSlot`, which is how an explicitly passed service finds its app's
event loop from any thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from arkitekt._scope import AppSlot
from arkitekt.errors import ScopeLockedError

__all__ = ["Service"]


class Service:
    """Base class of services: holds the app's app_slot, refuses assignment while open.

    Args:
        app_slot: the app_slot of the app this service belongs to.

    """

    app_slot: AppSlot
    _built: bool = False

    def __init__(self, app_slot: AppSlot) -> None:
        object.__setattr__(self, "app_slot", app_slot)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _mark_built(init)  # type: ignore[method-assign]

    def __setattr__(self, name: str, value: Any) -> None:
        # Services may be built lazily inside the scope: only lock them once built.
        app_slot: AppSlot | None = getattr(self, "app_slot", None)
        if self._built and app_slot is not None and app_slot.is_open and not name.startswith("_"):
            raise ScopeLockedError(
                f"cannot set {type(self).__name__}.{name} while app {app_slot.name!r} is open; "
                "configure services before `with app:`"
            )
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of app {self.app_slot.name!r}>"


def _mark_built(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: Service, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self).__init__ is wrapper:  # the outermost __init__ has finished
            object.__setattr__(self, "_built", True)

    return wrapper
