"""Background upkeep: tasks that live as long as a service, and rounds run every so often.

A service's lifespan runs its background tasks inside :func:`background`; each periodic task
is :func:`every`. Both stop cleanly when the server stops *or fails to start*: a later
service's lifespan may raise while an earlier service's round is holding a database
connection, and that round must neither be cut off mid-query nor outlive the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager

import anyio

from arkitekt_server._dbfaults import is_unavailable
from arkitekt_server._logs import Outage

__all__ = ["background", "every"]


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    *,
    what: str,
    log: logging.Logger,
    at_once: bool = False,
) -> None:
    """Await ``work()`` every ``seconds``, forever (until cancelled).

    A failed round is logged and does not stop the next: a cleanup must never stop the server.
    While the database is unavailable, the rounds' failures are one warning line (repeated at
    most every minute; the tracebacks at DEBUG) and one line when a round works again: an
    outage must not fill the log with a traceback per round.
    A round that has begun is finished before a cancellation takes effect (it lands in the
    pause between rounds). Cancelling a round mid-query makes SQLAlchemy invalidate the
    connection through a detached, shielded close of the aiosqlite connection; with aiosqlite
    0.22 that close can wait forever for a worker thread that has already stopped, and
    ``asyncio.run`` then hangs at exit cancelling it (seen as a server that refused to start
    and never exited).

    Args:
        seconds: the pause between rounds.
        work: one round.
        what: what a round does, for the log ("pruning expired tokens").
        log: where failures go.
        at_once: run the first round now instead of after one pause.
    """
    outage = Outage(log, what)
    if not at_once:
        await anyio.sleep(seconds)
    while True:
        with anyio.CancelScope(shield=True):
            try:
                await work()
            except Exception as error:
                if is_unavailable(error):
                    outage.failed(error)
                else:
                    log.exception("%s failed", what)
            else:
                outage.over()
        await anyio.sleep(seconds)


@asynccontextmanager
async def background(*jobs: Callable[[], Coroutine[object, object, object]]) -> AsyncIterator[None]:
    """Run ``jobs`` for the length of the block; at its end they are cancelled and awaited.

        An error of the block (a later service refusing to start, say) propagates as itself, once
        every job has stopped, never wrapped in an exception group.

        Example:
            >>> import anyio

    from arkitekt_server._dbfaults import is_unavailable
    from arkitekt_server._logs import Outage
            >>> async def main() -> str:
            ...     async with background(anyio.sleep_forever):
            ...         return "jobs stop with the block"
            >>> anyio.run(main)
            'jobs stop with the block'

    """
    failure: Exception | None = None
    async with anyio.create_task_group() as tasks:
        for job in jobs:
            tasks.start_soon(job)
        try:
            yield
        except Exception as error:  # raised again below, after the jobs have stopped
            failure = error
        finally:
            tasks.cancel_scope.cancel()
    if failure is not None:
        raise failure
