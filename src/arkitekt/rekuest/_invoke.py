"""Running one assignment's function: the call itself, in the app's scope, encoded as it ends.

Arguments are expanded by their codecs; async functions run on the app's loop, sync functions
(and each step of sync generators) in the agent's worker threads, which see the TASK scope.
Each stream item is handed to the agent to keep as it is produced; the outcome (``done``,
``error`` or ``cancelled``) is returned encoded, for the agent to keep until it is acknowledged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import anyio

from arkitekt._scope import Scope
from arkitekt.errors import AssignmentCancelledError
from arkitekt.protocol.rekuest import encode
from arkitekt.rekuest._context import AssignmentContext
from arkitekt.rekuest._outgoing import cancelled_message, error_message, sendable
from arkitekt.rekuest._registry import Registered
from arkitekt.rekuest._threads import DaemonThreads

__all__ = ["Invoker"]

_END = object()


class Invoker:
    """Calls registered functions for an agent.

    Args:
        scope: the app's APP scope (each call opens a TASK scope in it).
        max_workers: sync functions running at once.
        stopping: set when the agent stops: worker threads that do not stop are abandoned.
        hold: keeps an encoded stream item of an assignment (by id) until it is acknowledged.

    """

    def __init__(
        self,
        scope: Scope,
        max_workers: int,
        stopping: anyio.Event,
        hold: Callable[[str, str], None],
    ) -> None:
        self._scope = scope
        self._threads = DaemonThreads(anyio.CapacityLimiter(max_workers), "rekuest-worker")
        self._stopping = stopping
        self._hold = hold

    async def invoke(
        self, entry: Registered, context: AssignmentContext, args: dict[str, Any]
    ) -> str:
        """Call ``entry`` with the assignment's ``args``; return its outcome, encoded.

        Never raises for what the function does: an exception becomes the ``error`` message,
        a cancel the ``cancelled`` one, a result that cannot travel an error naming why.
        """
        id = context.id
        async with self._scope.task():
            try:
                kwargs = {
                    key: await entry.codecs[key].expand(value)
                    for key, value in args.items()
                    if key in entry.codecs
                }
                if entry.definition.stream:
                    await self._stream(entry, context, kwargs)
                    return encode({"t": "done", "id": id})
                if entry.is_async:
                    value = await entry.fn(**kwargs)
                else:
                    call = functools.partial(entry.fn, **kwargs)
                    value = await self._in_thread(call)
                if entry.result is None:
                    return encode({"t": "done", "id": id, "v": None})
                done = {"t": "done", "id": id, "v": entry.result.shrink(value, "return value")}
                return sendable(done, "the return value")
            except AssignmentCancelledError:
                return cancelled_message(id)
            except Exception as error:
                return error_message(id, error)

    async def _stream(
        self, entry: Registered, context: AssignmentContext, kwargs: dict[str, Any]
    ) -> None:
        codec = entry.result
        n = 0

        def emit(item: Any) -> None:
            nonlocal n
            value = codec.shrink(item, f"item {n}") if codec is not None else None
            message = {"t": "yield", "id": context.id, "n": n, "v": value}
            self._hold(context.id, sendable(message, f"item {n}"))
            n += 1

        if entry.is_async:
            generator = entry.fn(**kwargs)
            try:
                async for item in generator:
                    emit(item)
            finally:
                await generator.aclose()
            return
        iterator = entry.fn(**kwargs)
        try:
            while True:
                item = await self._in_thread(functools.partial(next, iterator, _END))
                if item is _END:
                    return
                emit(item)
        finally:
            if not self._stopping.is_set():
                with anyio.CancelScope(shield=True), contextlib.suppress(ValueError):
                    await self._in_thread(iterator.close)  # runs the generator's `finally`

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await self._threads.run(fn, self._stopping)
