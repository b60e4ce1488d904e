"""``@inject``: fill marked parameters from the active app's container at call time.

Example:
    >>> from arkitekt import inject, Provide
    >>> @inject
    ... async def count_images(*, mikro: Any = Provide("mikro")) -> int:
    ...     ...

An explicit argument always wins; a missing one is resolved from the scope active in the
calling thread or task (so it follows nested apps, threads and tasks), or, when no scope is
active but another argument is a service, from that service's app.

"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from arkitekt.scope import Scope, current_scope, get_scope
from arkitekt.service import Service

__all__ = ["Provide", "aresolve", "inject"]

P = ParamSpec("P")
R = TypeVar("R")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Provide({self.name!r})"


def Provide(name: str) -> Any:
    """Mark a parameter default as "inject the container's provider ``name``".

    Args:
        name: a provider of the app container, e.g. ``"mikro"`` or ``"settings"``.

    """
    return _Marker(name)


async def aresolve(provider: Callable[[], Any]) -> Any:
    """Call a provider and await the result if it is awaitable (async resources)."""
    value = provider()
    if inspect.isawaitable(value):
        return await value
    return value


def _scope_for(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> Scope:
    scope = get_scope()
    if scope is not None:
        return scope
    for value in (*args, *kwargs.values()):
        if isinstance(value, Service):
            return value.runtime.scope
    return current_scope(what)


def inject(fn: Callable[P, R]) -> Callable[P, R]:
    """Fill the parameters whose default is :func:`Provide` from the active app.

    Works on plain and async functions. Sync functions that need an async resource resolve it
    through the app's bridge, so call them from a thread other than the app's event loop.

    Raises:
        TypeError: at decoration time, if a marked parameter is positional-only.
        NoActiveAppError: at call time, if a value is missing and no app is active.

    """
    marked: list[tuple[str, int, str]] = []
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if isinstance(param.default, _Marker):
            if param.kind is param.POSITIONAL_ONLY:
                raise TypeError(
                    f"{fn.__qualname__}: injected parameter {param.name!r} "
                    "cannot be positional-only"
                )
            position = index if param.kind is param.POSITIONAL_OR_KEYWORD else 1 << 30
            marked.append((param.name, position, param.default.name))
    if not marked:
        return fn
    what = f"{fn.__qualname__}()"

    if inspect.iscoroutinefunction(fn):
        afn = cast(Callable[..., Coroutine[Any, Any, Any]], fn)

        @functools.wraps(fn)
        async def ainjected(*args: Any, **kwargs: Any) -> Any:
            scope: Scope | None = None
            for name, position, provider in marked:
                if position < len(args) or name in kwargs:
                    continue
                if scope is None:
                    scope = _scope_for(args, kwargs, what)
                value = getattr(scope.container, provider)()
                kwargs[name] = await value if inspect.isawaitable(value) else value
            return await afn(*args, **kwargs)

        return cast(Callable[P, R], ainjected)

    @functools.wraps(fn)
    def injected(*args: Any, **kwargs: Any) -> Any:
        scope: Scope | None = None
        for name, position, provider in marked:
            if position < len(args) or name in kwargs:
                continue
            if scope is None:
                scope = _scope_for(args, kwargs, what)
            value = getattr(scope.container, provider)()
            if inspect.isawaitable(value):
                value = scope.bridge.call(_awaited, value)
            kwargs[name] = value
        return fn(*args, **kwargs)

    return cast(Callable[P, R], injected)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
