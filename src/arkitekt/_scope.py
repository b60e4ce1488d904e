"""Scopes: which app is active here, and the resources it opened.

A :class:`Scope` is one lifetime: APP (``with app:``) or TASK (one rekuest assignment, one web
request), nested in an APP scope. It caches the resources opened in it and closes them in
reverse order when it ends. The active scope lives in a :class:`~contextvars.ContextVar`, so
threads and asyncio tasks each see their own, and entering restores the previous binding on
exit (nested apps work).

This module knows nothing of any service: services reach their scope through the
:class:`AppSlot` their container hands them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from arkitekt.errors import AppClosedError, NoActiveAppError, ScopeError, TeardownError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from arkitekt._bridge import Bridge

__all__ = [
    "AppSlot",
    "Scope",
    "ScopeKind",
    "activate",
    "current_scope",
    "deactivate",
    "get_scope",
]

T = TypeVar("T")


class ScopeKind(enum.IntEnum):
    """How long a scope lives. A smaller value lives longer and contains the larger ones."""

    APP = 1
    TASK = 2


_active: ContextVar[Scope | None] = ContextVar("arkitekt_active_scope", default=None)


def get_scope() -> Scope | None:
    """Return the scope active in this thread or task, or ``None``."""
    return _active.get()


def current_scope(what: str = "this call") -> Scope:
    """Return the active scope.

    Raises:
        NoActiveAppError: no app scope is active here; ``what`` names the caller in the message.

    """
    scope = _active.get()
    if scope is None:
        raise NoActiveAppError(what)
    return scope


def activate(scope: Scope | None) -> Token[Scope | None]:
    """Make ``scope`` the active one; pass the returned token to :func:`deactivate`."""
    return _active.set(scope)


def deactivate(token: Token[Scope | None]) -> None:
    """Restore the binding that was active before the matching :func:`activate`."""
    _active.reset(token)


class Scope:
    """One lifetime of an app: the resources opened in it and how to close them.

    Resources open lazily through :meth:`resource` and close in reverse order in
    :meth:`aclose`, each one seeing the exception that ended the scope. One failing close does
    not stop the others; the failures are raised together as a
    :class:`~arkitekt.errors.TeardownError`.
    """

    __slots__ = (
        "_closers",
        "_pending",
        "_resources",
        "app_slot",
        "bridge",
        "closed",
        "container",
        "kind",
        "name",
        "parent",
        "task_group",
    )

    def __init__(
        self,
        kind: ScopeKind,
        *,
        app_slot: AppSlot,
        bridge: Bridge,
        task_group: TaskGroup,
        parent: Scope | None = None,
    ) -> None:
        self.kind: ScopeKind = kind
        if parent is not None and parent.kind >= kind:
            raise ScopeError(f"a {kind.name} scope cannot be nested in a {parent.kind.name} scope")
        self.parent = parent
        self.app_slot = app_slot
        self.container: Any = app_slot.container
        self.name = app_slot.name
        self.bridge = bridge
        self.task_group = task_group
        self.closed = False
        self._resources: dict[object, Any] = {}
        self._pending: dict[object, anyio.Event] = {}
        self._closers: list[tuple[str, AbstractAsyncContextManager[Any]]] = []

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Scope {self.kind.name} of {self.name!r} ({state})>"

    def find(self, kind: ScopeKind) -> Scope:
        """Return this scope or the enclosing one of ``kind``.

        Raises:
            ScopeError: no scope of that kind encloses this one.

        """
        scope: Scope | None = self
        while scope is not None:
            if scope.kind == kind:
                return scope
            scope = scope.parent
        raise ScopeError(
            f"a {kind.name}-scoped resource was requested outside any {kind.name} scope "
            f"(active: {self.kind.name} scope of {self.name!r})"
        )

    async def resource(
        self,
        key: object,
        label: str,
        opener: Callable[[], Awaitable[AbstractAsyncContextManager[T]]],
    ) -> T:
        """Return the resource cached under ``key``, opening it on first use.

        Concurrent first uses open it once; the others wait for it. If opening fails, nothing is
        cached and the next use tries again.

        Args:
            key: the cache key (the provider that declares the resource).
            label: a name for error messages.
            opener: builds the async context manager whose ``__aenter__`` yields the resource.

        """
        while True:
            if key in self._resources:
                return self._resources[key]  # type: ignore[no-any-return]
            self._check_open(label)
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()
        done = self._pending[key] = anyio.Event()
        try:
            manager = await opener()
            value = await manager.__aenter__()
            self._check_open(label)
            self._closers.append((label, manager))
            self._resources[key] = value
            return value
        finally:
            del self._pending[key]
            done.set()

    def _check_open(self, label: str) -> None:
        if self.closed:
            raise AppClosedError(
                f"cannot open {label!r}: the {self.kind.name} scope of app {self.name!r} "
                "has already closed"
            )

    async def aclose(self, exc: BaseException | None = None) -> None:
        """Close every resource of this scope in reverse order of opening.

        Args:
            exc: the exception that ended the scope, passed to each resource's ``__aexit__``.

        Raises:
            TeardownError: one or more resources failed to close (all were still tried).

        """
        self.closed = True
        errors: list[Exception] = []
        exc_type = type(exc) if exc is not None else None
        tb = exc.__traceback__ if exc is not None else None
        while self._closers:
            label, manager = self._closers.pop()
            try:
                with anyio.CancelScope(shield=True):
                    await manager.__aexit__(exc_type, exc, tb)
            except Exception as error:
                error.add_note(f"while closing {label!r} of app {self.name!r}")
                errors.append(error)
        self._resources.clear()
        if errors:
            failure = TeardownError(
                f"{len(errors)} resource(s) of app {self.name!r} failed to close", errors
            )
            failure.__context__ = exc
            raise failure

    @asynccontextmanager
    async def task(self) -> AsyncIterator[Scope]:
        """Open a TASK scope nested in this APP scope and make it active while inside.

        Example:
            >>> import anyio
            >>> from arkitekt.extension import current_scope
            >>> async def handle() -> str:
            ...     async with app:
            ...         async with current_scope().task() as task_scope:
            ...             return task_scope.kind.name  # TASK-scoped resources close on exit
            >>> anyio.run(handle)
            'TASK'

        """
        async with anyio.create_task_group() as task_group:
            child = Scope(
                ScopeKind.TASK,
                app_slot=self.app_slot,
                bridge=self.bridge,
                task_group=task_group,
                parent=self,
            )
            token = activate(child)
            error: BaseException | None = None
            try:
                yield child
            except BaseException as caught:
                error = caught
                raise
            finally:
                deactivate(token)
                await child.aclose(error)


class AppSlot:
    """The per-app handle on its open APP scope.

    Services get it through their constructor, so a service handed to another thread still
    finds its app's scope (and event loop) without the ContextVar.
    """

    __slots__ = ("_scope", "container", "name")

    def __init__(self, name: str, container: Any = None) -> None:
        self.name = name
        self.container = container
        self._scope: Scope | None = None

    @property
    def is_open(self) -> bool:
        """Whether the app's APP scope is open right now."""
        return self._scope is not None

    @property
    def scope(self) -> Scope:
        """The open APP scope.

        Raises:
            AppClosedError: the app is not inside ``with app:`` right now.

        """
        scope = self._scope
        if scope is None:
            raise AppClosedError(
                f"app {self.name!r} is not open: use its services inside `with app:` "
                "(or `async with app:`); once that block has ended they can no longer be used"
            )
        return scope

    def attach(self, scope: Scope) -> None:
        """Record ``scope`` as the app's open scope (done by the app on entry)."""
        if self._scope is not None:
            raise ScopeError(
                f"app {self.name!r} is already open; an app can be entered once at a time "
                "(create a second app with easy(...) to run two side by side)"
            )
        self._scope = scope

    def detach(self) -> None:
        """Forget the open scope (done by the app on exit)."""
        self._scope = None
