"""The sync and async twins of an API function, built from its coroutine.

API functions are written once, as coroutines, and exposed twice: :func:`loopsafe` makes the
coroutine run on its app's loop whichever loop awaits it, :func:`syncify` builds the blocking
twin. Both find the app with :func:`~arkitekt.extension.owner_scope` (an explicit service argument,
positional or keyword, first) and cross over with its :class:`~arkitekt.extension.Bridge`. When
that app's scope is not the active one (``with b: with a: f(mikro=b.mikro)``), the call runs
with it active, so what the call resolves inside it comes from the same app.

Example:
    >>> from arkitekt.extension import loopsafe, syncify
    >>> @loopsafe
    ... async def aping(*, mikro: object = None) -> str:
    ...     return "pong"
    >>> ping = syncify(aping)
    >>> ping.__name__
    'ping'

"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from arkitekt._owner import owner_scope
from arkitekt._scope import Scope, activate, deactivate, get_scope

__all__ = ["loopsafe", "syncify"]

P = ParamSpec("P")
R = TypeVar("R")


def syncify(afn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Build the blocking twin of an async API function.

    The twin runs ``afn`` on the app's event loop through the app's bridge and blocks the
    calling thread until it returns. It works from the thread that opened ``with app:``, from
    threads the app started, and with an explicit service argument from any thread.

    Args:
        afn: the async API function; its name should start with ``a`` (``afrom_xarray``), which
            the twin drops (``from_xarray``).

    Raises:
        NoActiveAppError: at call time, with no explicit service and no active app.
        BridgeError: at call time, on the app's own event loop (await ``afn`` there).

    """
    name = afn.__name__.removeprefix("a")

    what = f"{name}()"

    @functools.wraps(afn)
    def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        scope = owner_scope((*args, *kwargs.values()), what)
        try:
            if scope is get_scope():
                return scope.bridge.call(afn, *args, **kwargs)
            return scope.bridge.call(_in_scope, scope, afn, *args, **kwargs)
        except TypeError as error:
            _raise_for_arguments(afn, what, args, kwargs, error)
            raise

    twin.__name__ = name
    twin.__qualname__ = (
        afn.__qualname__.rsplit(".", 1)[0] + "." + name if "." in afn.__qualname__ else name
    )
    twin.__doc__ = f"Blocking twin of :func:`{afn.__name__}`; see there.\n\n{afn.__doc__ or ''}"
    return twin


def loopsafe(afn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make an async API function run on its app's loop, whichever loop awaits it.

    With ``with app:`` the app's loop runs in a background thread; awaiting an API coroutine
    from another loop (a notebook's) would touch resources bound to the app's loop. The wrapper
    awaits directly when already on the right loop and hops over the bridge otherwise.

    Raises:
        NoActiveAppError: at call time, with no explicit service and no active app.

    """
    what = f"{afn.__name__}()"

    @functools.wraps(afn)
    async def hop(*args: P.args, **kwargs: P.kwargs) -> R:
        scope = owner_scope((*args, *kwargs.values()), what)
        if scope is not get_scope():
            return await scope.bridge.acall(_in_scope, scope, afn, *args, **kwargs)
        bridge = scope.bridge
        if bridge.is_current():
            return await afn(*args, **kwargs)
        return await bridge.acall(afn, *args, **kwargs)

    return hop


def _raise_for_arguments(
    afn: Callable[..., Any],
    what: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: TypeError,
) -> None:
    """Raise the ``TypeError`` of a call that did not fit ``afn``'s parameters, named ``what``.

    Python names the coroutine function (``afrom_xarray() missing 1 required positional
    argument``); the user called the twin. Checked only after a ``TypeError``, so a call that
    fits pays nothing; a ``TypeError`` raised inside the call passes unchanged.
    """
    try:
        inspect.signature(afn).bind(*args, **kwargs)
    except TypeError as mismatch:
        raise TypeError(f"{what} {mismatch}") from error


async def _in_scope(
    scope: Scope, afn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Await ``afn`` with ``scope`` active (the scope of an explicit service's app)."""
    token = activate(scope)
    try:
        return await afn(*args, **kwargs)
    finally:
        deactivate(token)
