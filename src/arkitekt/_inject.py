"""``@inject``: fill marked parameters from the owning app's container at call time.

Example:
    >>> from arkitekt import inject, Provide
    >>> @inject
    ... async def count_images(*, mikro: Any = Provide("mikro")) -> int:
    ...     ...

An explicit argument always wins. A missing one is resolved from the app that owns the call,
by the rule of :func:`~arkitekt.extension.owner_scope`: the app of a service passed among the
arguments, else the scope active in the calling thread or task (so it follows nested apps,
threads and tasks).

"""

from __future__ import annotations

import functools
import inspect
import keyword
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from arkitekt._owner import NOT_OWNERS, owner_scope
from arkitekt._scope import Scope, get_scope
from arkitekt.errors import InjectionError, UnknownProviderError

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


# Types seen to be not awaitable. ``inspect.isawaitable`` costs ~0.3 us on a plain object (an
# ABC check), as much as the rest of an injection, so the answer is remembered per type.
# Generators are never remembered: a generator-based coroutine is awaitable per instance.
_not_awaitable: set[type] = set()


def _isawaitable(value: object) -> bool:
    if inspect.isawaitable(value):
        return True
    if type(value) is not types.GeneratorType:
        _not_awaitable.add(type(value))
    return False


def _unknown(scope: Scope, name: str, what: str) -> UnknownProviderError:
    return UnknownProviderError(
        name, scope.container.providers, f"{what}: the container of app {scope.name!r}"
    )


def inject(fn: Callable[P, R]) -> Callable[P, R]:
    """Fill the parameters whose default is :func:`Provide` from the app that owns the call.

    Works on plain and async functions. Sync functions that need an async resource resolve it
    through the app's bridge, so call them from a thread other than the app's event loop.

    The wrapper is generated with the same parameters as ``fn`` (no ``*args, **kwargs``
    repacking), so an injection adds only the owner lookup and the provider call.

    Provider names are checked when the function is called, not when an app is built: an
    injected function is not tied to one app, and may be written for another app's container
    (a subclass of :class:`~arkitekt.extension.ArkitektContainer` with more providers).

    Raises:
        InjectionError: at decoration time, if a marked parameter is positional-only (also a
            ``TypeError``).
        NoActiveAppError: at call time, if a value is missing and no app owns the call.
        UnknownProviderError: at call time, if the owning app's container has no such provider.

    """
    parameters = list(inspect.signature(fn).parameters.values())
    markers = {p.name: p.default for p in parameters if isinstance(p.default, _Marker)}
    if not markers:
        return fn
    for param in parameters:
        if param.name in markers and param.kind is param.POSITIONAL_ONLY:
            raise InjectionError(
                f"{fn.__qualname__}: injected parameter {param.name!r} cannot be positional-only"
            )
    is_async = inspect.iscoroutinefunction(fn)
    wrapper = _compile(fn, parameters, markers, is_async)
    functools.update_wrapper(wrapper, fn)
    return cast(Callable[P, R], wrapper)


def _compile(
    fn: Callable[..., Any],
    parameters: list[inspect.Parameter],
    markers: dict[str, _Marker],
    is_async: bool,
) -> Callable[..., Any]:
    """Generate ``def wrapper(<fn's parameters>)`` that fills the marked ones and calls ``fn``."""
    names = {param.name for param in parameters}
    prefix = "_ark_"
    while any(name.startswith(prefix) for name in names):
        prefix += "_"
    namespace: dict[str, Any] = {
        f"{prefix}fn": fn,
        f"{prefix}owner": owner_scope,
        f"{prefix}get": get_scope,
        f"{prefix}plain_args": NOT_OWNERS,
        f"{prefix}unknown": _unknown,
        f"{prefix}AttributeError": AttributeError,
        f"{prefix}what": f"{fn.__qualname__}()",
        f"{prefix}plain": _not_awaitable,
        f"{prefix}isawaitable": _isawaitable,
        f"{prefix}awaited": _awaited,
        f"{prefix}type": type,
        f"{prefix}getattr": getattr,
    }
    signature: list[str] = []
    call: list[str] = []
    everything: list[str] = []  # every argument, for finding a passed service
    star_seen = False
    for index, param in enumerate(parameters):
        name = param.name
        if param.kind is param.VAR_POSITIONAL:
            signature.append(f"*{name}")
            call.append(f"*{name}")
            everything.append(f"*{name}")
            star_seen = True
            continue
        if param.kind is param.VAR_KEYWORD:
            signature.append(f"**{name}")
            call.append(f"**{name}")
            everything.append(f"*{name}.values()")
            continue
        if param.kind is param.KEYWORD_ONLY and not star_seen:
            signature.append("*")
            star_seen = True
        entry = name
        if param.default is not param.empty:
            namespace[f"{prefix}d{index}"] = param.default
            entry = f"{name}={prefix}d{index}"
        signature.append(entry)
        if param.kind is param.POSITIONAL_ONLY and (
            index + 1 == len(parameters) or parameters[index + 1].kind is not param.POSITIONAL_ONLY
        ):
            signature.append("/")
        call.append(f"{name}={name}" if param.kind is param.KEYWORD_ONLY else name)
        everything.append(name)

    found = f"({', '.join(everything)},)"
    # Without *args/**kwargs, when no argument's type can name an app the active scope owns the
    # call (owner_scope's rule, without its scan); otherwise owner_scope decides.
    starred = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)
    if starred:
        find_owner = [f"        {prefix}s = {prefix}owner({found}, {prefix}what)"]
    else:
        plain = " and ".join(f"{prefix}type({n}) in {prefix}plain_args" for n in everything)
        find_owner = [
            f"        if {plain}:",
            f"            {prefix}s = {prefix}get()",
            f"        if {prefix}s is None:",
            f"            {prefix}s = {prefix}owner({found}, {prefix}what)",
        ]
    body = [f"{prefix}s = None"]
    for index, param in enumerate(parameters):
        if param.name not in markers:
            continue
        name, provider = param.name, markers[param.name].name
        namespace[f"{prefix}p{index}"] = provider
        lookup = (
            f"{prefix}s.container.{provider}"
            if provider.isidentifier() and not keyword.iskeyword(provider)
            else f"{prefix}getattr({prefix}s.container, {prefix}p{index})"
        )
        resolve = f"await {name}" if is_async else f"{prefix}s.bridge.call({prefix}awaited, {name})"
        body += [
            f"if {name} is {prefix}d{index}:",
            f"    if {prefix}s is None:",
            *find_owner,
            "    try:",
            f"        {name} = {lookup}",
            f"    except {prefix}AttributeError:",
            f"        raise {prefix}unknown({prefix}s, {prefix}p{index}, {prefix}what) from None",
            f"    {name} = {name}()",
            f"    if {prefix}type({name}) not in {prefix}plain and {prefix}isawaitable({name}):",
            f"        {name} = {resolve}",
        ]
    body.append(f"return {'await ' if is_async else ''}{prefix}fn({', '.join(call)})")
    source = "\n".join(
        [
            f"{'async ' if is_async else ''}def injected({', '.join(signature)}):",
            *(f"    {line}" for line in body),
        ]
    )
    code = compile(source, f"<arkitekt._inject of {fn.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 -- the source is built above from parameter names only
    return namespace["injected"]  # type: ignore[no-any-return]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
