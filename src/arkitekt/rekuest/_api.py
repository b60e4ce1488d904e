"""Calling functions: ``call``/``acall``, ``iterate``/``aiterate``, ``cancel``/``acancel``.

Each works inside ``with app:`` and ``async with app:`` (or with an explicit
``rekuest=app.rekuest``), from any thread or loop: the work runs on the app's loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

from arkitekt._bridge import Bridge
from arkitekt._inject import Provide, inject
from arkitekt._twins import loopsafe, syncify
from arkitekt.errors import BridgeError, RekuestError
from arkitekt.rekuest._caller import CallEvent
from arkitekt.rekuest._handle import Assignment
from arkitekt.rekuest._service import Rekuest

__all__ = ["acall", "acancel", "aiterate", "asubmit", "call", "cancel", "iterate", "submit"]

_END = object()


@loopsafe
@inject
async def acall(
    function: str | Callable[..., Any],
    /,
    *args: Any,
    timeout: float | None = None,  # noqa: ASYNC109
    wait: float = 0.0,
    agent: str | None = None,
    on_event: Callable[[CallEvent], Any] | None = None,
    rekuest: Rekuest = Provide("rekuest"),
    **kwargs: Any,
) -> Any:
    """Call a registered function on whichever agent provides it, and return its result.

    Example:
        >>> from arkitekt.rekuest import call, register
        >>> @register
        ... def scale(value: float, factor: float = 2.0) -> float:
        ...     '''Multiply a value by a factor.'''
        ...     return value * factor
        >>> with app:
        ...     agent = app.rekuest.start()  # this app serves scale(); any app may call it
        ...     call("scale", value=1.5, factor=3)
        4.5

    Args:
        function: its name (or the registered function object).
        *args: positional arguments, in the definition's order.
        timeout: seconds until the call is cancelled and :class:`CallTimeoutError` raised.
        wait: seconds to wait for an agent that provides it to come online (default: fail at
            once with :class:`NoAgentError`).
        agent: only an agent of this app identifier (or this agent key).
        on_event: called on the app's loop with each progress and log :class:`CallEvent`.
        rekuest: the service to use (default: the active app's).
        **kwargs: keyword arguments. Structures (``Image``) travel as their id.

    Raises:
        RemoteError: the function raised; ``remote_traceback`` has the agent's traceback.
        BadArgumentsError: the arguments were refused (nothing ran): by the server, or before
            sending (a non-finite number, nesting deeper than ``MAX_DEPTH``, a call bigger
            than ``MAX_MESSAGE_BYTES``, a value JSON cannot carry; the message names the
            argument); or ``wait``/``timeout`` is not a finite number, is negative
            (``timeout``: not above 0), or more than a day.
        NoAgentError: no agent provides the function (within ``wait``).
        AgentLostError: its agent disconnected and none took the assignment over in time.
        CallTimeoutError: ``timeout`` passed (the assignment was cancelled).
        AssignmentCancelledError: someone cancelled the assignment.
        ConnectionLostError: the connection to the server broke.

    """
    return await rekuest.acall(
        function, args, kwargs, timeout=timeout, wait=wait, agent=agent, on_event=on_event
    )


call = syncify(acall)


@loopsafe
@inject
async def asubmit(
    function: str | Callable[..., Any],
    /,
    *args: Any,
    timeout: float | None = None,  # noqa: ASYNC109
    wait: float = 0.0,
    agent: str | None = None,
    on_event: Callable[[CallEvent], Any] | None = None,
    rekuest: Rekuest = Provide("rekuest"),
    **kwargs: Any,
) -> Assignment:
    """Send a call without waiting for it: returns an :class:`Assignment` handle.

    Example:
        >>> from arkitekt.rekuest import register, submit
        >>> @register
        ... def shout(text: str) -> str:
        ...     '''Upper-case a text.'''
        ...     return text.upper()
        >>> with app:
        ...     agent = app.rekuest.start()
        ...     job = submit("shout", text="hi")  # returns at once; job.cancel() would stop it
        ...     job.result()  # waits for the answer
        'HI'

    Arguments and errors are those of :func:`acall` (the errors are raised by
    :meth:`Assignment.aresult`, except those of sending).

    """
    return await rekuest.asubmit(
        function, args, kwargs, timeout=timeout, wait=wait, agent=agent, on_event=on_event
    )


submit = syncify(asubmit)


# iterate/aiterate are plain functions, not generators: @inject resolves the service when they
# are called, so a missing app fails at once, not at the first item.
@inject
def aiterate(
    function: str | Callable[..., Any],
    /,
    *args: Any,
    timeout: float | None = None,
    wait: float = 0.0,
    agent: str | None = None,
    on_event: Callable[[CallEvent], Any] | None = None,
    rekuest: Rekuest = Provide("rekuest"),
    **kwargs: Any,
) -> AsyncIterator[Any]:
    """Iterate over the items a registered generator yields on its agent.

    Leaving the loop early (``break``) cancels the assignment. Arguments and errors are those
    of :func:`acall`; ``timeout`` bounds the whole stream.

    Example:
        >>> import anyio
        >>> from collections.abc import AsyncIterator
        >>> from arkitekt.rekuest import aiterate, register
        >>> @register
        ... async def ticks(count: int) -> AsyncIterator[int]:
        ...     '''Yield 0, 1, ... count - 1.'''
        ...     for tick in range(count):
        ...         yield tick
        >>> async def main() -> list[int]:
        ...     async with app:
        ...         await app.rekuest.astart()
        ...         return [tick async for tick in aiterate("ticks", count=3)]
        >>> anyio.run(main)
        [0, 1, 2]

    """
    bridge = rekuest.app_slot.scope.bridge
    stream = rekuest.aiterate(
        function, args, kwargs, timeout=timeout, wait=wait, agent=agent, on_event=on_event
    )
    return _aiterate(bridge, stream)


async def _aiterate(bridge: Bridge, stream: AsyncGenerator[Any, None]) -> AsyncIterator[Any]:
    if bridge.is_current():
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()
        return
    try:
        while (item := await bridge.acall(_next, stream)) is not _END:
            yield item
    finally:
        await bridge.acall(stream.aclose)


@inject
def iterate(
    function: str | Callable[..., Any],
    /,
    *args: Any,
    timeout: float | None = None,
    wait: float = 0.0,
    agent: str | None = None,
    on_event: Callable[[CallEvent], Any] | None = None,
    rekuest: Rekuest = Provide("rekuest"),
    **kwargs: Any,
) -> Iterator[Any]:
    """Blocking twin of :func:`aiterate`: a plain iterator over a remote generator's items.

    Example:
        >>> from collections.abc import Iterator
        >>> from arkitekt.rekuest import iterate, register
        >>> @register
        ... def countdown(start: int) -> Iterator[int]:
        ...     '''Count down to zero.'''
        ...     yield from range(start, -1, -1)
        >>> with app:
        ...     agent = app.rekuest.start()
        ...     for value in iterate("countdown", start=2):
        ...         print(value)
        2
        1
        0

    """
    bridge = rekuest.app_slot.scope.bridge
    if bridge.is_current():
        raise BridgeError(
            "iterate() blocks, and this is the app's own event loop; in async code use "
            "`async for item in aiterate(...)`"
        )
    return _iterate(bridge, rekuest, function, args, kwargs, timeout, wait, agent, on_event)


def _iterate(
    bridge: Bridge,
    service: Rekuest,
    function: str | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    wait: float,
    agent: str | None,
    on_event: Callable[[CallEvent], Any] | None,
) -> Iterator[Any]:
    stream = bridge.call(
        _open_stream, service, function, args, kwargs, timeout, wait, agent, on_event
    )
    try:
        while (item := bridge.call(_next, stream)) is not _END:
            yield item
    finally:
        bridge.call(stream.aclose)


async def _open_stream(
    service: Rekuest,
    function: str | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,  # noqa: ASYNC109
    wait: float,
    agent: str | None,
    on_event: Callable[[CallEvent], Any] | None,
) -> AsyncGenerator[Any, None]:
    return service.aiterate(
        function, args, kwargs, timeout=timeout, wait=wait, agent=agent, on_event=on_event
    )


async def _next(stream: AsyncIterator[Any]) -> Any:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return _END


@loopsafe
@inject
async def acancel(assignment_id: str, *, rekuest: Rekuest = Provide("rekuest")) -> None:
    """Cancel an unfinished assignment this app started (its caller then raises).

    Args:
        assignment_id: the assignment (see :attr:`CallEvent.assignment_id`,
            :attr:`RekuestError.assignment_id`).
        rekuest: the service to use (default: the active app's).

    Raises:
        RekuestError: no such unfinished assignment of this app.

    """
    transport = await rekuest._transport()
    group = await transport.agroup("rekuest")
    url = str(group["endpoint_url"]) + f"assignments/{assignment_id}/cancel"
    response = await transport.client.post(url)
    if response.status_code == 404:
        raise RekuestError(f"no unfinished assignment {assignment_id!r} of this app", assignment_id)
    if response.is_error:
        raise RekuestError(
            f"cancelling {assignment_id!r} failed: HTTP {response.status_code} "
            f"{response.text[:200]}",
            assignment_id,
        )


cancel = syncify(acancel)
