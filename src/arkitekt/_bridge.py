"""The sync-to-async bridge: run a coroutine on an app's event loop from any thread.

``with app:`` starts an event loop in a background thread; ``async with app:`` uses the
caller's loop. Either way the app's resources (HTTP clients, websockets) live on that one loop,
and :class:`Bridge` carries calls to it: :meth:`Bridge.call` from a plain thread (blocking),
:meth:`Bridge.acall` from a coroutine running on some other loop (a Jupyter kernel's, say).
Calls run in a copy of the caller's :mod:`contextvars` context, so the active app scope travels
with them.

A leaf: it knows no scope and no service. Which app's bridge a call uses is decided in
:mod:`arkitekt._owner`; the twins built on it (``syncify``, ``loopsafe``) live in
:mod:`arkitekt._twins`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any, ParamSpec, TypeVar

from arkitekt.errors import BridgeError

__all__ = ["Bridge"]

P = ParamSpec("P")
R = TypeVar("R")

# How often a blocked sync caller checks that the loop it waits on is still alive.
_LIVENESS_POLL_SECONDS = 0.5


class _Call:
    """One sync call waiting on the loop: a lock released when the task is done."""

    __slots__ = ("done", "error", "result", "task")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None

    def start(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], ctx: Context
    ) -> None:
        try:
            self.task = loop.create_task(coro, context=ctx)
        except BaseException as error:  # the loop is closing: fail the caller, do not hang it
            coro.close()
            self.error = error
            self.done.release()
            raise
        self.task.add_done_callback(self.finish)

    def cancel(self) -> None:
        # Scheduled after start() (callbacks run in order), so the task exists unless start
        # failed; cancelling a task that has not run yet means its body never runs.
        if self.task is not None:
            self.task.cancel()

    def finish(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.error = BridgeError("the call was cancelled on the app's event loop")
        else:
            self.error = task.exception()
            if self.error is None:
                self.result = task.result()
        self.done.release()


class Bridge:
    """Runs coroutines on one event loop, from any thread or any other loop.

    Args:
        loop: the loop the app's resources live on.
        thread_id: the ident of the thread running ``loop``.

    """

    __slots__ = ("loop", "thread_id")

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        self.loop = loop
        self.thread_id = thread_id

    @classmethod
    def here(cls) -> Bridge:
        """Return a bridge to the loop running in this thread (for ``async with app:``)."""
        return cls(asyncio.get_running_loop(), threading.get_ident())

    def is_current(self) -> bool:
        """Whether the caller runs on this bridge's loop."""
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def call(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run ``fn(*args, **kwargs)`` on the loop and block until it returns.

        Raises:
            BridgeError: called from the loop's own thread (that would deadlock: await the
                async twin instead), or the loop stopped before the call finished.

        """
        if threading.get_ident() == self.thread_id:
            name = getattr(fn, "__name__", "this function")
            raise BridgeError(
                f"a blocking call that runs {name}() was made on the app's own event loop, where "
                f"it would deadlock; in async code, use the async twin: `await {name}(...)`"
            )
        pending = _Call()
        coro = fn(*args, **kwargs)
        try:
            self.loop.call_soon_threadsafe(pending.start, self.loop, coro, copy_context())
        except RuntimeError as error:  # loop closed
            coro.close()
            raise BridgeError("the app's event loop has stopped; is the app still open?") from error
        try:
            while not pending.done.acquire(timeout=_LIVENESS_POLL_SECONDS):
                if self.loop.is_closed() or not self.loop.is_running():
                    raise BridgeError("the app's event loop stopped before the call finished")
        except BaseException:
            # KeyboardInterrupt (Ctrl+C) or a dead loop: stop the coroutine (also when it has
            # not started yet), then re-raise.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs anyway
                self.loop.call_soon_threadsafe(pending.cancel)
            raise
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[no-any-return]

    async def acall(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` on the bridge's loop, from any running loop.

        On the bridge's own loop this is a plain ``await``. Cancelling the caller cancels the
        call on the bridge's loop.

        Raises:
            BridgeError: the bridge's loop has stopped, or stopped before the call finished.

        """
        if self.is_current():
            return await fn(*args, **kwargs)
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        ctx = copy_context()
        holder: list[asyncio.Task[R]] = []

        def start() -> None:
            task = self.loop.create_task(fn(*args, **kwargs), context=ctx)
            holder.append(task)
            task.add_done_callback(functools.partial(_copy_outcome, future))

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError as error:  # loop closed
            raise BridgeError("the app's event loop has stopped; is the app still open?") from error
        waiter = asyncio.wrap_future(future)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=_LIVENESS_POLL_SECONDS)
                if done:
                    return waiter.result()
                if self.loop.is_closed() or not self.loop.is_running():
                    raise BridgeError("the app's event loop stopped before the call finished")
        except BaseException:
            waiter.cancel()

            def cancel() -> None:  # runs after start(): the task exists by then
                if holder:
                    holder[0].cancel()

            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs anyway
                self.loop.call_soon_threadsafe(cancel)
            raise


def _copy_outcome(future: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    if future.cancelled():
        if not task.cancelled():
            task.exception()  # nobody waits for it any more: mark its error as seen
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())
