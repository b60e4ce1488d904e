"""``ScopedResource``: a dependency-injector provider whose value lives as long as a scope.

The value is opened lazily, on first use inside a scope of its kind, cached there, and closed
with that scope (in reverse order of opening, seeing the exception that ended it). Overriding
the provider (``app.override(transport=fake)``) bypasses all of that, as with any provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from dependency_injector import providers

from arkitekt._inject import aresolve
from arkitekt._owner import owner_scope
from arkitekt._scope import AppSlot, ScopeKind
from arkitekt.errors import ConfigError

__all__ = ["ScopedResource"]

T = TypeVar("T")


class ScopedResource(providers.Provider[Awaitable[T]], Generic[T]):
    """Provide ``await opener(**deps)`` entered as an async context manager, once per scope.

    Calling the provider returns an awaitable of the value.

    Args:
        opener: called with the resolved ``deps``; returns an async context manager whose
            ``__aenter__`` yields the resource and whose ``__aexit__`` closes it.
        app_slot: the provider of the app's :class:`~arkitekt.extension.AppSlot`.
        kind: the scope the value lives in (APP: for the whole ``with app:``; TASK: per task).
        **deps: providers (or plain values) resolved, awaited if async, and passed to ``opener``.

    Raises:
        ConfigError: ``kind`` is not a :class:`~arkitekt.extension.ScopeKind`.

    """

    __slots__ = ("_app_slot", "_deps", "_kind", "_opener")

    def __init__(
        self,
        opener: Callable[..., AbstractAsyncContextManager[T]],
        *,
        app_slot: providers.Provider[AppSlot],
        kind: ScopeKind = ScopeKind.APP,
        **deps: Any,
    ) -> None:
        self._opener = opener
        self._app_slot = app_slot
        self._kind = _scope_kind(kind)
        self._deps: Mapping[str, providers.Provider[Any]] = {
            name: dep if isinstance(dep, providers.Provider) else providers.Object(dep)
            for name, dep in deps.items()
        }
        super().__init__()

    @property
    def kind(self) -> ScopeKind:
        """The kind of scope the value lives in."""
        return self._kind

    @property
    def related(self) -> Generator[providers.Provider[Any], None, None]:
        """The providers this one depends on (dependency-injector walks these)."""
        yield self._app_slot
        yield from self._deps.values()
        yield from super().related

    def __deepcopy__(self, memo: dict[Any, Any] | None) -> ScopedResource[T]:
        memo = {} if memo is None else memo
        copied = memo.get(id(self))
        if copied is not None:
            return copied  # type: ignore[no-any-return]
        app_slot = providers.deepcopy(self._app_slot, memo)
        deps = providers.deepcopy(dict(self._deps), memo)
        clone: ScopedResource[T] = type(self)(
            self._opener, app_slot=app_slot, kind=self._kind, **deps
        )
        memo[id(self)] = clone
        self._copy_overridings(clone, memo)
        return clone

    def _provide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._aprovide()

    async def _aprovide(self) -> T:
        # The provider belongs to one app: the active scope if it is that app's (it may be a
        # TASK scope), else that app's APP scope (its service was passed explicitly).
        app_slot: AppSlot = self._app_slot()
        scope = owner_scope((app_slot,), self._label).find(self._kind)
        return await scope.resource(self, self._label, self._open)

    async def _open(self) -> AbstractAsyncContextManager[T]:
        kwargs = {name: await aresolve(dep) for name, dep in self._deps.items()}
        return self._opener(**kwargs)

    @property
    def _label(self) -> str:
        return getattr(self._opener, "__qualname__", repr(self._opener))


def _scope_kind(kind: object) -> ScopeKind:
    # A string ("TASK") is refused rather than looked up by name: the enum is the one spelling.
    if isinstance(kind, ScopeKind):
        return kind
    valid = ", ".join(f"ScopeKind.{k.name}" for k in ScopeKind)
    raise ConfigError(f"ScopedResource(kind={kind!r}): the kind of scope must be one of {valid}")
