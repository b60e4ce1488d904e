"""The rekuest service object (``app.rekuest``): serve functions as an agent, call others'."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio

from arkitekt._scope import AppSlot
from arkitekt._service import Service
from arkitekt._settings import Settings
from arkitekt.errors import CallTimeoutError, RekuestError
from arkitekt.fakts import Fakts
from arkitekt.rekuest._agent import Agent
from arkitekt.rekuest._caller import CallerChannel, CallEvent, Pending, error_of, expand
from arkitekt.rekuest._checks import check_seconds, encode_call, shrink_argument
from arkitekt.rekuest._handle import Assignment
from arkitekt.rekuest._registry import Registry, default_registry
from arkitekt.rekuest._serving import serving_line, sigterm_interrupts
from arkitekt.rekuest._ws import endpoint

__all__ = ["Rekuest"]

log = logging.getLogger("arkitekt.rekuest")

SHUTDOWN_SECONDS = 10.0
"""How long ``run()`` waits for running assignments to stop after Ctrl+C."""


class Rekuest(Service):
    """The function service of an app (``app.rekuest``).

    Configure before entering the app: ``app.rekuest.registry`` (default: the registry
    ``@register`` fills) and ``app.rekuest.instance`` (the agent's name among this app's agents).

    Args:
        app_slot: the app's app_slot.
        transport: the provider of the app's transport (resolved per call).
        fakts: the app's fakts service.
        settings: the app's settings.

    """

    def __init__(
        self, app_slot: AppSlot, transport: Callable[[], Any], fakts: Fakts, settings: Settings
    ) -> None:
        super().__init__(app_slot)
        self._transport = transport
        self.fakts = fakts
        self.settings = settings
        self.registry: Registry = default_registry
        self.instance = "default"

    # -- agent ---------------------------------------------------------------------------------
    async def astart(self) -> Agent:
        """Start serving in the background of the app scope; return once registered.

        The agent keeps serving (and reconnecting) until the app scope ends. Calling this again
        returns the same agent.

        Raises:
            AgentRefusedError: the server refused the registration.

        """
        scope = self.app_slot.scope
        agent: Agent = await scope.resource(
            ("rekuest-agent", id(self)), "rekuest agent", self._agent
        )
        await agent.registered.wait()
        if agent.failure is not None:
            raise agent.failure
        return agent

    async def _agent(self) -> contextlib.AbstractAsyncContextManager[Agent]:
        scope = self.app_slot.scope
        agent = Agent(
            self.registry,
            scope,
            await self._transport(),
            instance=self.instance,
            max_workers=self.settings.rekuest.max_workers,
            reconnect_max=self.settings.rekuest.reconnect_max_seconds,
        )

        @asynccontextmanager
        async def serving() -> AsyncIterator[Agent]:
            cancel = anyio.CancelScope()

            async def serve() -> None:
                try:
                    with cancel:
                        await agent.serve()
                except Exception as error:
                    log.error("the rekuest agent stopped: %s", error)
                    agent.failure = error
                finally:
                    agent.registered.set()  # wake whoever waits for the registration
                    agent.stopped.set()

            scope.task_group.start_soon(serve)
            try:
                yield agent
            finally:
                cancel.cancel()
                with anyio.move_on_after(SHUTDOWN_SECONDS, shield=True):
                    await agent.stopped.wait()

        return serving()

    async def arun(self) -> None:
        """Serve the registered functions until cancelled.

        Prints one line once the agent is registered: the functions it serves and where.

        Raises:
            AgentRefusedError: the server refused the registration.

        """
        agent = await self.astart()
        where = await endpoint(agent.transport, "agent")
        print(f"{serving_line(self.registry, where)} (Ctrl+C stops it)", flush=True)
        await agent.stopped.wait()
        raise agent.failure or RekuestError("the rekuest agent stopped")

    def start(self) -> Agent:
        """Blocking twin of :meth:`astart`: serve in the background of a sync ``with app:``.

        Example:
            >>> from arkitekt.rekuest import call, register
            >>> @register
            ... def negate(value: int) -> int:
            ...     '''Flip the sign.'''
            ...     return -value
            >>> with app:
            ...     agent = app.rekuest.start()  # returns once registered; serves until exit
            ...     call("negate", value=7)
            -7

        """
        return self.app_slot.scope.bridge.call(self.astart)

    def run(self) -> None:
        """Serve the registered functions until Ctrl+C or SIGTERM, then stop cleanly.

        Blocks the calling thread (not the app's loop). On ``KeyboardInterrupt`` (and on
        SIGTERM, when called from the main thread: what ``kill`` and container runtimes send)
        the agent takes no new assignments and waits up to ``SHUTDOWN_SECONDS`` for the
        running ones to finish and their results to reach the server; a second signal stops
        at once. What has not finished then is handed back: the server delivers it again
        (to this agent when it returns, else it fails after the agent grace period).

        Raises:
            BridgeError: called on the app's own event loop (use ``await arun()`` there).
            AgentRefusedError: the server refused the registration.

        """
        bridge = self.app_slot.scope.bridge
        try:
            with sigterm_interrupts():
                bridge.call(self.arun)
        except KeyboardInterrupt:
            # The bridge has cancelled arun(); the agent still serves until the app scope ends:
            # first let what runs finish and reach the server (a second signal: stop now).
            log.info("interrupted: stopping the rekuest agent")
            with sigterm_interrupts(), contextlib.suppress(KeyboardInterrupt):
                bridge.call(self._finish)

    async def _finish(self) -> None:
        """Wait (up to ``SHUTDOWN_SECONDS``) for running assignments to end and be delivered."""
        agent = await self.astart()  # the agent of this scope, already serving
        if agent.running:  # results only waiting for the server's acknowledgement: no news
            print(
                f"stopping: waiting up to {SHUTDOWN_SECONDS:g} s for {len(agent.running)} "
                "running assignment(s) to finish (Ctrl+C again: stop now, they are handed back)",
                flush=True,
            )
        with anyio.move_on_after(SHUTDOWN_SECONDS):
            await agent.drain()

    # -- caller --------------------------------------------------------------------------------
    async def _channel(self) -> CallerChannel:
        scope = self.app_slot.scope

        async def opener() -> contextlib.AbstractAsyncContextManager[CallerChannel]:
            channel = CallerChannel(scope, await self._transport())

            @asynccontextmanager
            async def opened() -> AsyncIterator[CallerChannel]:
                try:
                    yield channel
                finally:
                    await channel.aclose()

            return opened()

        channel: CallerChannel = await scope.resource(
            ("rekuest-caller", id(self)), "rekuest caller", opener
        )
        return channel

    def _name(self, function: str | Callable[..., Any]) -> str:
        if isinstance(function, str):
            return function
        name = self.registry.name_of(function)
        if name is None:
            raise RekuestError(
                f"{getattr(function, '__qualname__', function)!r} is not registered; "
                "call functions by name, or register them with @register"
            )
        return name

    async def _submit(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
        wait: float,
        agent: str | None,
        on_event: Callable[[CallEvent], Any] | None,
        timeout: float | None,  # noqa: ASYNC109 - passed on to the server
    ) -> tuple[CallerChannel, Pending]:
        check_seconds("wait", wait, zero=True)
        if timeout is not None:
            check_seconds("timeout", timeout, zero=False)
        id = uuid.uuid4().hex
        name = self._name(function)
        message: dict[str, Any] = {
            "t": "call",
            "id": id,
            "f": name,
            "args": [
                shrink_argument(name, f"positional argument {n}", v) for n, v in enumerate(args)
            ],
            "kwargs": {
                key: shrink_argument(name, f"argument {key!r}", v) for key, v in kwargs.items()
            },
        }
        if stream:
            message["stream"] = True
        if on_event is not None:
            message["events"] = True
        if wait:
            message["wait"] = wait
        if agent is not None:
            message["agent"] = agent
        if timeout is not None:
            message["timeout"] = timeout  # the server enforces it too (if this caller vanishes)
        encoded = encode_call(name, message)
        channel = await self._channel()
        pending = Pending(id, stream=stream, on_event=on_event)
        await channel.submit(encoded, pending)
        return channel, pending

    async def asubmit(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        wait: float = 0.0,
        agent: str | None = None,
        on_event: Callable[[CallEvent], Any] | None = None,
    ) -> Assignment:
        """Send a call and return its handle; see :func:`arkitekt.rekuest.asubmit`."""
        channel, pending = await self._submit(
            function,
            args,
            kwargs or {},
            stream=False,
            wait=wait,
            agent=agent,
            on_event=on_event,
            timeout=timeout,
        )
        return Assignment(channel, pending, self._name(function), timeout, self.app_slot.scope)

    async def acall(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        wait: float = 0.0,
        agent: str | None = None,
        on_event: Callable[[CallEvent], Any] | None = None,
    ) -> Any:
        """Call a function on an agent and return its result; see :func:`arkitekt.rekuest.acall`."""
        assignment = await self.asubmit(
            function, args, kwargs, timeout=timeout, wait=wait, agent=agent, on_event=on_event
        )
        return await assignment.aresult()

    async def aiterate(
        self,
        function: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        wait: float = 0.0,
        agent: str | None = None,
        on_event: Callable[[CallEvent], Any] | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Iterate over a stream's items; see :func:`arkitekt.rekuest.aiterate`."""
        channel, pending = await self._submit(
            function,
            args,
            kwargs or {},
            stream=True,
            wait=wait,
            agent=agent,
            on_event=on_event,
            timeout=timeout,
        )
        assert pending.queue is not None
        deadline = None if timeout is None else anyio.current_time() + timeout
        finished = False
        try:
            while True:
                remaining = None if deadline is None else deadline - anyio.current_time()
                try:
                    with anyio.fail_after(remaining):
                        message = await pending.queue.get()
                except TimeoutError:
                    raise CallTimeoutError(
                        f"{self._name(function)}() did not finish within {timeout:g} s; "
                        "cancelled it",
                        pending.id,
                    ) from None
                kind = message["t"]
                if kind == "yield":
                    yield await expand(message.get("v"), message.get("r"), self.app_slot.scope)
                elif kind == "done":
                    finished = True
                    return
                else:
                    finished = True
                    raise message.get("_exception") or error_of(message)
        finally:
            if not finished:
                channel.cancel(pending.id)
