"""``@register``: turn functions into definitions an agent can serve."""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from arkitekt.protocol.rekuest import Definition
from arkitekt.rekuest._definition import Codec, define

__all__ = ["Registered", "Registry", "default_registry", "register"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Registered:
    """A registered function and how its values travel.

    Attributes:
        fn: the function itself.
        definition: what the server and callers see.
        codecs: argument name -> codec.
        result: the codec of the return value (the item of a stream), or ``None``.
        is_async: a coroutine function or async generator (runs on the app's loop).

    """

    fn: Callable[..., Any]
    definition: Definition
    codecs: dict[str, Codec]
    result: Codec | None
    is_async: bool

    @property
    def name(self) -> str:
        """The name callers use."""
        return self.definition.name


class Registry:
    """A set of registered functions, by name. An agent serves one registry.

    Example:
        >>> registry = Registry()
        >>> @registry.register
        ... def add(a: int, b: int = 1) -> int:
        ...     return a + b
        >>> registry.get("add").definition.args[1].default
        1

    """

    def __init__(self) -> None:
        self._functions: dict[str, Registered] = {}
        self._lock = threading.Lock()

    @overload
    def register(self, fn: F, /) -> F: ...

    @overload
    def register(
        self, fn: None = None, /, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]: ...

    def register(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register ``fn`` (used bare, ``@register``, or with options, ``@register(name=...)``).

        The function is returned unchanged, so it can still be called locally. Registering a
        name again replaces the earlier function (re-running a notebook cell works).

        Raises:
            DefinitionError: an annotation is missing or unsupported.

        """

        def decorate(function: F) -> F:
            definition, codecs, result = define(function, name, description)
            is_async = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
            entry = Registered(function, definition, codecs, result, is_async)
            with self._lock:
                self._functions[definition.name] = entry
            # Callers may pass the function object instead of its name.
            with contextlib.suppress(AttributeError, TypeError):
                function.__rekuest_name__ = definition.name  # type: ignore[attr-defined]
            return function

        return decorate if fn is None else decorate(fn)

    def get(self, name: str) -> Registered | None:
        """The function registered as ``name``, or ``None``."""
        return self._functions.get(name)

    def name_of(self, fn: Callable[..., Any]) -> str | None:
        """The name ``fn`` is registered under (here or in any registry), or ``None``."""
        for entry in self._functions.values():
            if entry.fn is fn:
                return entry.name
        name = getattr(fn, "__rekuest_name__", None)
        return name if isinstance(name, str) else None

    def __iter__(self) -> Iterator[Registered]:
        return iter(list(self._functions.values()))

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions


default_registry = Registry()
"""The registry ``@register`` adds to and agents serve unless given another."""


@overload
def register(fn: F, /) -> F: ...


@overload
def register(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def register(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Register a function in the default registry, from its type hints and docstring.

    Example:
        >>> @register
        ... def threshold_value(level: float = 0.5) -> float:
        ...     '''Clamp a level.'''
        ...     return min(level, 1.0)
        >>> default_registry.get("threshold_value").definition.description
        'Clamp a level.'

    Args:
        fn: the function (when used bare as ``@register``).
        name: the name callers use (default: the function's ``__name__``).
        description: overrides the docstring's text.

    Raises:
        DefinitionError: an annotation is missing or unsupported.

    """
    if fn is None:
        return default_registry.register(name=name, description=description)
    return default_registry.register(fn)
