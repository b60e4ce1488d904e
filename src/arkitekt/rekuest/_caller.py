"""The caller side: one websocket per app carries every call, stream and cancel.

Calls are multiplexed by assignment id (chosen here, a uuid), and messages queued while a frame
is being written leave together in the next one. If the connection breaks (the server, or its
replica, restarted or died), the channel reconnects (any replica will do) and *resumes* the
waiting calls by id: their results (and remaining stream items) arrive as if nothing happened.
A call the server does not know (the replica died before storing it) is sent again, once;
only if no connection succeeds within ``resume_seconds`` does a call fail with
:class:`~arkitekt.errors.ConnectionLostError`. Nothing
one message holds stops the reader or the writer: a call that cannot be encoded fails alone,
an unreadable answer fails its own call, and an unreadable frame ends the connection (its calls
fail with ``ConnectionLostError``; the app keeps working).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from arkitekt._scope import Scope, activate, deactivate
from arkitekt.errors import (
    AgentLostError,
    AssignmentCancelledError,
    BadArgumentsError,
    CallTimeoutError,
    ConnectionLostError,
    MessageRefusedError,
    NoAgentError,
    RekuestError,
    RemoteError,
)
from arkitekt.protocol.outbox import Outbox
from arkitekt.protocol.rekuest import (
    MAX_RESUME_IDS,
    ArgumentsInvalid,
    MessageError,
    Port,
    check_value,
    explain,
    has_structure,
    loads,
    problem,
)
from arkitekt.rekuest._structures import structure_for_identifier
from arkitekt.rekuest._ws import endpoint, open_authorised, open_socket

if TYPE_CHECKING:
    from arkitekt._scope import Scope
    from arkitekt.transport import Transport

__all__ = ["CallEvent", "CallerChannel", "Pending", "expand"]

log = logging.getLogger("arkitekt.rekuest.caller")

_ERRORS: dict[str, type[RekuestError]] = {
    "invalid": BadArgumentsError,
    "no_agent": NoAgentError,
    "lost": AgentLostError,
    "cancelled": AssignmentCancelledError,
    "timeout": CallTimeoutError,
    "refused": MessageRefusedError,
    "unknown": ConnectionLostError,  # a resumed call the server does not know
}
RESUME_SECONDS = 30.0
"""How long a caller tries to reconnect to resume its waiting calls before they fail."""


@dataclass(frozen=True)
class CallEvent:
    """Progress or a log line of a running assignment, for ``on_event`` callbacks.

    Attributes:
        assignment_id: which assignment.
        kind: ``"progress"`` or ``"log"``.
        progress: 0..100 for progress events (or ``None``).
        message: the status text or log line.
        level: the log level (log events).

    """

    assignment_id: str
    kind: str
    progress: int | None
    message: str | None
    level: str | None = None


def error_of(message: dict[str, Any]) -> RekuestError:
    """The exception a caller raises for an ``error`` message."""
    id, text = message.get("id"), str(message.get("m") or "the call failed")
    kind = message.get("kind")
    if kind == "remote":
        return RemoteError(text, str(message.get("tb") or ""), id)
    return _ERRORS.get(str(kind), RekuestError)(text, id)


async def expand(value: Any, hint: dict[str, Any] | None, scope: Scope) -> Any:
    """A result checked against its port (``hint``), with its structures fetched back.

    The server sends the return port with every result of a function that has one; a value
    that does not fit it (a hostile or broken server) raises :class:`RekuestError`, never
    reaches the caller. Structures are fetched by the calling app (``scope``), also when the
    call was made with an explicit service from a thread where another app, or none, is active.
    """
    if hint is None:  # the function returns nothing (the server checked the value is null)
        return value
    try:
        port = Port.model_validate(hint)
    except ValidationError as error:
        raise RekuestError(f"the server sent an invalid result port: {explain(error)}") from None
    try:
        value = check_value(port, value, "the result")
    except ArgumentsInvalid as error:
        raise RekuestError(
            f"the server sent a result that does not fit the function's return port: {error}"
        ) from None
    if value is None or not has_structure(port):
        return value
    token = activate(scope)
    try:
        return await _expand(port, value)
    finally:
        deactivate(token)


async def _expand(port: Port, value: Any) -> Any:
    if value is None:
        return None
    if port.kind == "structure" and port.identifier is not None:
        structure = structure_for_identifier(port.identifier)
        return value if structure is None else await structure.aexpand(value)
    if port.kind == "list" and isinstance(value, list):
        return [await _expand(port.children[0], item) for item in value]
    if port.kind == "dict" and isinstance(value, dict):
        return {key: await _expand(port.children[0], item) for key, item in value.items()}
    return value


class Pending:
    """A call waiting for its outcome (a future) or a stream's items (a queue)."""

    __slots__ = ("call", "future", "id", "items", "on_event", "queue")

    def __init__(
        self, id: str, *, stream: bool, on_event: Callable[[CallEvent], Any] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        self.id = id
        self.on_event = on_event
        self.future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.queue: asyncio.Queue[dict[str, Any]] | None = asyncio.Queue() if stream else None
        self.items = 0  # stream items received: one sent again (after a resume) is dropped
        self.call: dict[str, Any] | str | None = None
        """Its ``call`` message, kept to send it again (once) if the server lost it."""

    def feed(self, message: dict[str, Any]) -> bool:
        """Take one message; return whether it was the last one."""
        kind = message.get("t")
        if kind in ("progress", "log"):
            if self.on_event is not None:
                event = CallEvent(
                    self.id, str(kind), message.get("p"), message.get("m"), message.get("level")
                )
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("an on_event callback failed")
            return False
        if kind == "yield":
            n = message.get("n")
            if isinstance(n, int) and not isinstance(n, bool):
                if n < self.items:
                    return False  # it arrived before the connection broke
                self.items = n
            self.items += 1
        if self.queue is not None:
            self.queue.put_nowait(message)
        elif not self.future.done():
            self.future.set_result(message)
        return kind in ("done", "error")

    def fail(self, error: RekuestError) -> None:
        """End the call with ``error`` (the connection broke)."""
        message = {"t": "error", "id": self.id, "kind": "lost", "m": str(error)}
        if self.queue is not None:
            self.queue.put_nowait({**message, "_exception": error})
        elif not self.future.done():
            self.future.set_exception(error)


class CallerChannel:
    """The app's caller websocket.

    Args:
        scope: the app's APP scope (its task group hosts the reader and writer).
        transport: the app's transport.
        resume_seconds: how long to try reconnecting to resume waiting calls after the
            connection broke, before they fail with ``ConnectionLostError``.

    """

    def __init__(
        self, scope: Scope, transport: Transport, resume_seconds: float = RESUME_SECONDS
    ) -> None:
        self.scope = scope
        self.transport = transport
        self.resume_seconds = resume_seconds
        self._socket: ClientConnection | None = None
        self._pending: dict[str, Pending] = {}
        self._outbox = Outbox(self._unsendable)  # a fresh one for each connection
        self._lock = anyio.Lock()
        self._closed = False
        self._resuming: anyio.Event | None = None  # set once a reconnect succeeded or gave up

    async def submit(self, message: dict[str, Any] | str, pending: Pending) -> None:
        """Send a ``call`` (or an encoded one) and route its answers to ``pending``."""
        if self._socket is None and self._resuming is not None:  # it is reconnecting
            await self._resuming.wait()
        if self._socket is None:
            await self._connect()
        if self._socket is None:  # it broke at once
            raise ConnectionLostError("the connection to the server closed", pending.id)
        self._pending[pending.id] = pending
        pending.call = message
        self.send(message)

    def send(self, message: dict[str, Any] | str) -> None:
        """Queue a message for the next frame."""
        self._outbox.put(message)

    def cancel(self, id: str) -> None:
        """Ask the server to cancel an assignment and stop listening for its answers."""
        self._pending.pop(id, None)
        self.request_cancel(id)

    def request_cancel(self, id: str) -> None:
        """Ask the server to cancel an assignment; its waiter gets the ``cancelled`` answer."""
        if self._socket is not None:
            self.send({"t": "cancel", "id": id})

    async def _connect(self) -> None:
        async with self._lock:
            if self._socket is not None:
                return
            if self._closed:
                raise ConnectionLostError("the app is closing; no more calls")
            url = await endpoint(self.transport, "caller")
            try:
                socket = await open_authorised(self.transport, functools.partial(self._open, url))
            except ConnectionClosed as closed:
                raise ConnectionLostError(f"rekuest at {url} closed: {closed}") from None
            self._socket = socket
            outbox = self._outbox = Outbox(self._unsendable)
            self.scope.task_group.start_soon(self._read, socket)
            self.scope.task_group.start_soon(self._pump, socket, outbox)

    async def _open(self, url: str, token: str) -> ClientConnection:
        """Connect and wait for the server's ``ready`` (a refused token closes with 4401)."""
        try:
            socket = await open_socket(self.transport, url, token)
        except (OSError, TimeoutError, InvalidHandshake) as error:  # e.g. the server died mid-way
            raise ConnectionLostError(f"cannot reach rekuest at {url}: {error}") from error
        try:
            first = loads(await socket.recv())
        except MessageError as error:
            await socket.close()
            raise ConnectionLostError(
                f"rekuest at {url} sent an unreadable frame: {error}"
            ) from None
        except BaseException:
            await socket.close()
            raise
        if not first or first[0].get("t") != "ready":
            await socket.close()
            answer = repr(first)[:200]
            raise ConnectionLostError(f"rekuest at {url} did not answer as expected: {answer}")
        return socket

    async def _read(self, socket: ClientConnection) -> None:
        reason = "the connection to the server closed"
        resumable = True  # not after a frame or a bug of ours: the same would happen again
        try:
            async for frame in socket:
                for message in loads(frame):
                    self._route(message)
        except ConnectionClosed as error:
            reason = f"the connection to the server broke ({error})"
        except MessageError as error:
            resumable = False
            log.warning("rekuest: the server sent an unreadable frame: %s", error)
            reason = f"the server sent a frame that cannot be read ({error})"
            with anyio.CancelScope(shield=True):
                await socket.close(1007, "unreadable frame")
        except Exception as error:  # never let one frame take the app down
            resumable = False
            log.exception("rekuest: reading from the server failed")
            reason = f"reading from the server failed ({type(error).__name__}: {error})"
            with anyio.CancelScope(shield=True):
                await socket.close(1011, "client error")
        finally:
            self._socket = None
            self._outbox.stop()  # this connection's: the next one starts only after this
            if resumable and self._pending and not self._closed:
                self._resuming = anyio.Event()  # now: a call made meanwhile waits for it
                self.scope.task_group.start_soon(self._resume, reason, self._resuming)
            else:
                self._fail_all(reason)

    async def _resume(self, reason: str, resuming: anyio.Event) -> None:
        """Reconnect and resume the calls waiting now (or fail them, see the class)."""
        ids = list(self._pending)
        try:
            await self._reconnect(ids, reason)
        finally:
            resuming.set()
            if self._resuming is resuming:
                self._resuming = None

    async def _reconnect(self, ids: list[str], reason: str) -> None:
        deadline = anyio.current_time() + self.resume_seconds
        delay = 0.05
        while not self._closed:
            try:
                await self._connect()
            except (ConnectionLostError, OSError) as error:
                if anyio.current_time() + delay > deadline:
                    reason = f"{reason}; reconnecting failed for {self.resume_seconds:g} s: {error}"
                    break
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            waiting = [id for id in ids if id in self._pending]
            for start in range(0, len(waiting), MAX_RESUME_IDS):
                self.send({"t": "resume", "ids": waiting[start : start + MAX_RESUME_IDS]})
            log.info("rekuest: reconnected; resumed %d waiting call(s)", len(waiting))
            return
        self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        pending_calls, self._pending = self._pending, {}
        for pending in pending_calls.values():
            pending.fail(ConnectionLostError(reason, pending.id))

    def _route(self, message: dict[str, Any]) -> None:
        """Hand one message of the server to the call it belongs to."""
        id = message.get("id")
        pending = self._pending.get(id) if isinstance(id, str) else None
        if pending is None:
            return
        if message.get("kind") == "unknown" and pending.call is not None:
            call, pending.call = pending.call, None  # sent again once, as it never arrived
            log.info("rekuest: the server lost call %s (its replica died); sending it again", id)
            self.send(call)
            return
        why = problem(message)
        if why is not None:
            log.warning("rekuest: the server sent an unreadable answer: %s", why)
            message = {"t": "error", "id": id, "kind": "refused", "m": f"unreadable answer: {why}"}
        if pending.feed(message):
            del self._pending[pending.id]

    def _unsendable(self, message: Any, error: MessageError) -> None:
        """Fail the call whose message cannot be encoded (the others go on)."""
        pending = self._pending.pop(str(message.get("id")), None)
        if pending is not None and message.get("t") == "call":
            reason = f"the call cannot be sent: {error}"
            pending.feed({"t": "error", "id": pending.id, "kind": "invalid", "m": reason})
        else:
            log.warning("rekuest: dropped a %r message: %s", message.get("t"), error)

    @staticmethod
    async def _pump(socket: ClientConnection, outbox: Outbox) -> None:
        with contextlib.suppress(ConnectionClosed):
            await outbox.pump(socket.send)

    async def aclose(self) -> None:
        """Close the socket (the app's scope is ending)."""
        self._closed = True
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()
