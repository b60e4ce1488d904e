"""The agent: serves registered functions over a websocket, reconnecting when it breaks.

Each assignment runs in its own task and TASK scope (:class:`~arkitekt.rekuest._invoke.Invoker`
calls the function: async functions on the app's loop, sync functions and each step of sync
generators in worker threads bounded by ``settings.rekuest.max_workers``; the threads see the
TASK scope, so the app's sync API works there through the bridge). Terminal results and
stream items are kept until the server acknowledges them, and sent again after a reconnect,
or when the server delivers their assignment again (it lost them). They are encoded (and
checked against the limits of :mod:`arkitekt.protocol.rekuest`) before they are kept: a
result that cannot travel (too big, a NaN) becomes that assignment's error, so a kept message
is always one the server accepts; and the server acknowledges even a message it refuses, so
none is resent forever.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from arkitekt._scope import Scope
from arkitekt.errors import AgentRefusedError, ConfigError, RekuestError
from arkitekt.protocol.outbox import Outbox
from arkitekt.protocol.rekuest import MessageError, encode, frames, loads, problem
from arkitekt.rekuest._context import AssignmentContext, _current
from arkitekt.rekuest._invoke import Invoker
from arkitekt.rekuest._outgoing import cancelled_message, error_message, unsendable
from arkitekt.rekuest._registry import Registry
from arkitekt.rekuest._ws import endpoint, open_authorised, open_socket

if TYPE_CHECKING:
    from arkitekt.transport import Transport

__all__ = ["Agent", "AgentRefusedError", "backoff"]

log = logging.getLogger("arkitekt.rekuest.agent")

_BACKOFF_START = 0.1
MAX_RESENDS = 3
"""How many connections in a row may close before the server read a kept message sent again
on them, before the agent gives up on it (a connection that read them all clears the count):
then an error for its assignment is sent instead, and if that does not arrive either, nothing
(the server fails or re-delivers the assignment). A message the server keeps closing the
connection over (a proxy with a smaller frame limit) must not keep the agent offline."""


class Agent:
    """Serves one registry for one app over the server's agent websocket.

    Args:
        registry: the functions to serve.
        scope: the app's APP scope (assignments open TASK scopes in it).
        transport: the app's transport (config and tokens).
        instance: the agent's instance name; an app reconnecting under the same name is the
            same agent (it gets its unfinished assignments back).
        max_workers: sync functions running at once.
        reconnect_max: cap of the reconnect backoff, seconds.

    """

    def __init__(
        self,
        registry: Registry,
        scope: Scope,
        transport: Transport,
        *,
        instance: str = "default",
        max_workers: int = 8,
        reconnect_max: float = 30.0,
    ) -> None:
        self.registry = registry
        self.scope = scope
        self.transport = transport
        self.instance = instance
        self.reconnect_max = reconnect_max
        self.registered = anyio.Event()
        self.stopped = anyio.Event()
        self._stopping = anyio.Event()
        self._invoker = Invoker(scope, max_workers, self._stopping, self._hold)
        self.key: str | None = None
        self.failure: BaseException | None = None
        self.connections = 0
        self._running: dict[str, AssignmentContext] = {}
        self._held: dict[str, list[str]] = {}  # encoded messages, until acknowledged
        self._resends: dict[str, int] = {}  # failed deliveries in a row of each held id
        self._again: dict[str, dict[str, Any]] = {}  # delivered again while a cancel ends them
        self._outbox = Outbox(unsendable)  # a fresh one for each connection
        self._connected = False
        self._draining = False
        self._tasks: TaskGroup | None = None
        self._socket: ClientConnection | None = None

    # -- outgoing ------------------------------------------------------------------------------
    def send(self, message: dict[str, Any] | str) -> None:
        """Queue a message (or an encoded one); dropped while disconnected.

        Held messages are resent after a reconnect anyway.
        """
        if self._connected:
            self._outbox.put(message)

    def _hold(self, id: str, message: str) -> None:
        self._held.setdefault(id, []).append(message)
        self.send(message)

    @property
    def holding(self) -> list[str]:
        """Ids of assignments running here or with results not yet acknowledged."""
        return list({*self._running, *self._held})

    @property
    def running(self) -> list[str]:
        """Ids of assignments running here (their functions have not returned yet)."""
        return list(self._running)

    # -- connection ----------------------------------------------------------------------------
    async def serve(self) -> None:
        """Connect, serve, reconnect with capped exponential backoff and jitter; until cancelled.

        Raises:
            AgentRefusedError: the server refused the registration (retrying cannot help).

        """
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                await self._reconnecting()
            finally:
                # Stopping: sync code sees the cancel at its next progress()/log(), and worker
                # threads that do not stop are abandoned (they are daemon threads).
                self._stopping.set()
                for context in self._running.values():
                    context.cancelled = True

    async def drain(self) -> None:
        """Take no new assignments; return once the running ones have ended and been delivered.

        Returns early when the connection is gone; the caller bounds how long it waits.
        """
        self._draining = True
        # polled: runs end, acks arrive and the connection drops in many places; once, at exit
        while self._connected and (self._running or self._held):  # noqa: ASYNC110
            await anyio.sleep(0.05)

    async def _reconnecting(self) -> None:
        failures = 0
        while True:
            before = self.connections
            try:
                await self._session()
            except (AgentRefusedError, ConfigError):
                raise  # retrying cannot help
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as error:
                log.info("rekuest agent connection failed: %r", error)
            except Exception as error:  # keep serving: the server may be restarting
                log.warning("rekuest agent connection failed: %r", error)
            if self.connections > before:
                failures = 0  # it was connected: start the backoff afresh
            failures += 1
            await anyio.sleep(backoff(failures, self.reconnect_max))

    async def _session(self) -> None:
        url = await endpoint(self.transport, "agent")
        socket = await open_authorised(self.transport, functools.partial(self._open, url))
        self._socket = socket
        self.connections += 1
        try:
            refused: AgentRefusedError | None = None
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._pump, socket)
                try:
                    async for frame in socket:
                        for message in loads(frame):
                            self._handle(message)
                except ConnectionClosed as error:
                    log.info("rekuest agent disconnected: %r", error)
                except AgentRefusedError as error:
                    refused = error
                tasks.cancel_scope.cancel()
            if refused is not None:
                raise refused
        finally:
            self._connected = False
            self._socket = None
            with anyio.CancelScope(shield=True):
                await socket.close()

    async def _open(self, url: str, token: str) -> ClientConnection:
        """Connect and register; the socket is closed again if registering fails."""
        socket = await open_socket(self.transport, url, token)
        try:
            with anyio.fail_after(self.transport.settings.timeout):
                await self._register(socket)
        except BaseException:
            self._connected = False
            with anyio.CancelScope(shield=True):
                await socket.close()
            raise
        return socket

    def _bound_resends(self) -> None:
        """Count the resends of what is held; give up on what failed too often in a row.

        A count is cleared once a connection took everything resent (see :meth:`_register`),
        so reconnections for other reasons (a long stream's items are held until it ends) never
        add up to a give-up.
        """
        for id in list(self._held):
            count = self._resends[id] = self._resends.get(id, 0) + 1
            if count <= MAX_RESENDS:
                continue
            if count == MAX_RESENDS + 1:
                log.error(
                    "rekuest agent: sent %s again %d times; sending an error", id, MAX_RESENDS
                )
                reason = (
                    f"its result could not be delivered: the connection closed each of the "
                    f"{MAX_RESENDS} times it was sent again"
                )
                self._held[id] = [error_message(id, RekuestError(reason))]
                if (running := self._running.get(id)) is not None:
                    running.cancel()
            else:
                log.error("rekuest agent: could not deliver anything of %s; dropped it", id)
                del self._held[id], self._resends[id]

    async def _register(self, socket: ClientConnection) -> None:
        self._bound_resends()
        register = {
            "t": "register",
            "instance": self.instance,
            "definitions": [entry.definition.model_dump() for entry in self.registry],
            "holding": self.holding,
        }
        try:
            encoded = encode(register)
        except MessageError as error:
            raise AgentRefusedError(f"the registration cannot be sent: {error}") from None
        resend = [message for messages in self._held.values() for message in messages]
        for frame in frames([encoded, *resend], unsendable):
            await socket.send(frame)
        first, *rest = loads(await socket.recv()) or [{}]
        if first.get("t") == "fatal":
            raise AgentRefusedError(f"the server refused the agent: {first.get('m')}")
        if first.get("t") != "registered":
            raise RekuestError(f"unexpected first answer of the server: {first.get('t')!r}")
        if resend:  # frames are read in order: the pong says the server read every resent one
            await (await socket.ping())
        self._resends.clear()  # delivered: only failed deliveries in a row count
        self.key = str(first.get("agent"))
        self._outbox = Outbox(unsendable)
        self._connected = True
        self.registered.set()
        for message in rest:
            self._handle(message)

    async def _pump(self, socket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._outbox.pump(socket.send)

    async def disconnect(self) -> None:
        """Drop the current connection (the agent reconnects); for tests and failover."""
        if self._socket is not None:
            await self._socket.close()

    # -- incoming ------------------------------------------------------------------------------
    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if (why := problem(message)) is not None:
            log.warning("rekuest agent: refused a %r message of the server: %s", kind, why)
            id = message.get("id")
            if kind == "assign" and isinstance(id, str) and id not in self._held:
                self._hold(id, error_message(id, RekuestError(f"unreadable assignment: {why}")))
            return
        if kind == "assign":
            id = str(message.get("id"))
            if id in self._running or id in self._held:
                self._delivered_again(id, message)
            elif not self._draining:  # else never started: the server delivers it again
                self._start(id, message)
        elif kind == "cancel":
            running = self._running.get(str(message.get("id")))
            if running is not None:
                running.cancel()
        elif kind == "ack":
            ids = message.get("ids")
            for id in ids if isinstance(ids, list) else []:
                if isinstance(id, str):
                    self._held.pop(id, None)
                    self._resends.pop(id, None)
        elif kind == "refused":  # a bug of this agent, or of the server; the call failed
            log.warning("rekuest agent: the server refused a message: %s", message.get("m"))
        elif kind == "fatal":
            raise AgentRefusedError(f"the server refused the agent: {message.get('m')}")

    def _start(self, id: str, message: dict[str, Any]) -> None:
        assert self._tasks is not None
        # Registered before its task starts, so a cancel in the same frame finds it.
        context = AssignmentContext(id, str(message["f"]), self.send)
        self._running[id] = context
        self._tasks.start_soon(self._execute, context, message.get("a") or {})

    def _delivered_again(self, id: str, message: dict[str, Any]) -> None:
        """Answer an assignment the server delivered again (it runs, or ran, here).

        The server lost what this agent sent of it (it restarted before storing the call, which
        its caller then sent again). What is held is sent again: the server waits for it
        (ignoring the delivery would leave the call without an outcome). A run that was
        cancelled (the server had given the call up) runs again, once it has ended.
        """
        log.info("rekuest agent: %s was delivered again; answering with what it has", id)
        running = self._running.get(id)
        if running is not None and running.cancelled:
            self._again[id] = message
            return
        if running is None and self._held[id][-1:] == [cancelled_message(id)]:
            del self._held[id]
            self._resends.pop(id, None)
            self._start(id, message)
            return
        for held in self._held.get(id, []):
            self.send(held)

    # -- running -------------------------------------------------------------------------------
    async def _execute(self, context: AssignmentContext, args: dict[str, Any]) -> None:
        id, name = context.id, context.function
        token = _current.set(context)
        cancelled = cancelled_message(id)
        outcome = cancelled
        try:
            with anyio.CancelScope() as cancel_scope:
                context.cancel_scope = cancel_scope
                if context.cancelled:  # cancelled before it started
                    cancel_scope.cancel()
                entry = self.registry.get(name)
                if entry is None:
                    outcome = error_message(
                        id, RekuestError(f"this agent has no function {name!r}")
                    )
                else:
                    outcome = await self._invoker.invoke(entry, context, args)
            if context.cancelled:
                outcome = cancelled
        finally:
            _current.reset(token)
            del self._running[id]
            again = self._again.pop(id, None)
        if again is not None:  # its cancelled run ended after it was delivered again
            self._start(id, again)
            return
        self._hold(id, outcome)


def backoff(failures: int, cap: float, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt ``failures`` (1, 2, ...).

    Exponential from 0.2 s, capped at ``cap``, with "equal jitter": a random value in the upper
    half of the step, so many agents that lost the same server do not come back in lockstep.
    """
    step: float = min(cap, _BACKOFF_START * 2.0 ** min(failures, 30))
    return step * (0.5 + 0.5 * draw())
