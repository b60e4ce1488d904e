"""Worker threads for sync functions: daemon threads, so an agent can stop without them.

A sync function cannot be interrupted. When its assignment is cancelled the agent waits for it
to stop (it sees the cancel at its next ``progress()``/``log()``); when the whole agent stops,
the thread is abandoned, and being a daemon thread it does not keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from contextvars import copy_context
from typing import Any

import anyio

__all__ = ["DaemonThreads"]

_IDLE_SECONDS = 10.0


class DaemonThreads:
    """A small pool of daemon threads, at most ``limiter.total_tokens`` busy at once.

    Args:
        limiter: bounds how many functions run at once.
        name: the threads' name prefix.

    """

    def __init__(self, limiter: anyio.CapacityLimiter, name: str) -> None:
        self._limiter = limiter
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        self._count = 0

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
            self._count += 1
            number = self._count
        self._jobs.put(job)
        if start:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True)
            thread.start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job()
            with self._lock:
                self._idle += 1

    async def run(self, fn: Callable[[], Any], stopping: anyio.Event) -> Any:
        """Run ``fn`` (in a copy of this context) in a worker thread and return its result.

        On cancellation, wait until ``fn`` returned, unless ``stopping`` is (or gets) set.
        """
        loop = asyncio.get_running_loop()
        finished = anyio.Event()
        outcome: list[Any] = []
        context = copy_context()

        def settle() -> None:
            finished.set()

        def job() -> None:
            try:
                outcome.append((True, context.run(fn)))
            except BaseException as error:  # handed to the awaiting task
                outcome.append((False, error))
            with contextlib.suppress(RuntimeError):  # the loop may be gone
                loop.call_soon_threadsafe(settle)

        async with self._limiter:
            self._submit(job)
            try:
                await finished.wait()
            except anyio.get_cancelled_exc_class():
                if not stopping.is_set():
                    with anyio.CancelScope(shield=True):
                        await _first(finished, stopping)
                raise
        ok, value = outcome[0]
        if not ok:
            raise value
        return value


async def _first(*events: anyio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with anyio.create_task_group() as tasks:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tasks.cancel_scope.cancel()

        for event in events:
            tasks.start_soon(wait, event)
