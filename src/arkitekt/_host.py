"""Where an app's event loop runs: the scope owner, and the loop thread of a sync ``with app:``.

:class:`AppScopeOwner` opens an APP scope with a task group on the running loop and closes it;
``async with app:`` uses it directly on the caller's loop. :class:`SyncHost` runs a loop in a
thread of its own for ``with app:``, with a host task holding an :class:`AppScopeOwner` for the
whole block (a task group must be entered and left by one task). Calls reach that loop only
through the scope's :class:`~arkitekt._bridge.Bridge`: there is no second bridge.
"""

from __future__ import annotations

import concurrent.futures
import threading
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from arkitekt._bridge import Bridge
from arkitekt._scope import AppSlot, Scope, ScopeKind, activate
from arkitekt.errors import BridgeError

__all__ = ["AppScopeOwner", "SyncHost"]


class AppScopeOwner:
    """Opens an APP scope with a task group on the running loop, and closes it.

    Closing stops background tasks first, then the resources in reverse order, each seeing
    ``error`` (the exception that ended the body).

    Args:
        app_slot: the app's slot; opening fails with ``ScopeError`` if the app is open already.
        bridge: the bridge to the running loop.

    """

    def __init__(self, app_slot: AppSlot, bridge: Bridge) -> None:
        self._app_slot = app_slot
        self._bridge = bridge
        self._task_group: TaskGroup | None = None
        self.scope: Scope
        self.error: BaseException | None = None

    async def __aenter__(self) -> AppScopeOwner:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        scope = Scope(
            ScopeKind.APP, app_slot=self._app_slot, bridge=self._bridge, task_group=task_group
        )
        try:
            self._app_slot.attach(scope)  # the one "already open" check
        except BaseException:
            await task_group.__aexit__(None, None, None)
            raise
        self._task_group = task_group
        self.scope = scope
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task_group is not None
        error = self.error if exc is None else exc
        try:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._app_slot.detach()
            await self.scope.aclose(error)


class SyncHost:
    """The event loop thread of a sync ``with app:`` and the task that owns the scope.

    Args:
        app_slot: the app's slot; the thread is named ``arkitekt:<app name>``.

    """

    def __init__(self, app_slot: AppSlot) -> None:
        self._app_slot = app_slot
        self._thread: threading.Thread | None = None
        self._bridge: Bridge | None = None
        self._stop: anyio.Event | None = None
        self._error: BaseException | None = None  # the exception that ended the `with` body
        self._failure: BaseException | None = None  # what closing the scope raised

    def start(self) -> Scope:
        """Start the loop thread, open the APP scope on it, and return the scope.

        Raises:
            ScopeError: the app is open already (nothing keeps running then).

        """
        opened: concurrent.futures.Future[Scope] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name=f"arkitekt:{self._app_slot.name}", daemon=True
        )
        self._thread.start()
        try:
            return opened.result()
        except BaseException:
            if opened.exception() is None:  # interrupted (Ctrl+C) while opening: close again
                self.stop(None)
            else:  # opening failed: the thread ends by itself
                self._thread.join()
            raise

    def _run(self, opened: concurrent.futures.Future[Scope]) -> None:
        try:
            anyio.run(self._host, opened, backend="asyncio")
        except BaseException as error:  # handed to start() or stop() in the app's thread
            if not opened.done():
                opened.set_exception(error)
            else:
                self._failure = error

    async def _host(self, opened: concurrent.futures.Future[Scope]) -> None:
        self._bridge = Bridge.here()
        self._stop = anyio.Event()
        async with AppScopeOwner(self._app_slot, self._bridge) as owner:
            activate(owner.scope)  # tasks this host spawns see the app
            opened.set_result(owner.scope)
            await self._stop.wait()
            owner.error = self._error

    def stop(self, error: BaseException | None) -> None:
        """Close the scope (its resources see ``error``), stop the loop and join its thread.

        Raises:
            TeardownError: resources failed to close (they were all tried).
            BridgeError: the loop had stopped already.

        """
        assert self._thread is not None
        assert self._bridge is not None
        assert self._stop is not None
        self._error = error
        try:
            self._bridge.loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError as closed:
            raise BridgeError("the app's event loop stopped before the app was closed") from closed
        self._thread.join()
        if self._failure is not None:
            raise self._failure
