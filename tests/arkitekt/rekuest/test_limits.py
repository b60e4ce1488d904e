"""One oversized or unencodable value fails its own call, never the app, agent or connection."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import pytest

from arkitekt import App
from arkitekt.errors import ArkitektError
from arkitekt.protocol import rekuest_frames
from arkitekt.protocol.rekuest import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_CHARS,
    loads,
)
from arkitekt.rekuest import (
    BadArgumentsError,
    ConnectionLostError,
    DefinitionError,
    NoAgentError,
    Registry,
    RekuestError,
    RemoteError,
    acall,
    aiterate,
    call,
    register,
)
from arkitekt.rekuest._caller import CallerChannel, Pending, expand
from tests.helpers import until

registry = Registry()


@registry.register
def l_echo(x: float) -> float:
    return x


@registry.register
def l_shout(size: int) -> int:
    raise ValueError("x" * size)


@registry.register
def l_big(size: int) -> str:
    return "y" * size


@registry.register
def l_nan() -> list[float]:
    return [1.0, math.nan]


@registry.register
def l_items(size: int) -> Iterator[str]:
    yield "small"
    yield "z" * size
    yield "never sent"


@pytest.mark.anyio
async def test_a_huge_error_is_cut_and_the_agent_stays_online(
    connect: Callable[..., App], serve: Any
) -> None:
    async with serve(connect(), registry) as agent, connect() as app:
        with pytest.raises(RemoteError) as raised:
            await acall("l_shout", 9_000_000, rekuest=app.rekuest)
        assert len(raised.value.remote_message) <= MAX_TEXT_CHARS
        assert len(raised.value.remote_traceback) <= MAX_TEXT_CHARS
        assert "texts are limited to" in raised.value.remote_message
        assert await acall("l_echo", 2.5, rekuest=app.rekuest) == 2.5
        assert agent.connections == 1  # never thrown off
        await until(lambda: not agent.holding)  # acknowledged: nothing kept to resend


@pytest.mark.anyio
async def test_a_result_too_big_to_send_fails_its_call_only(
    connect: Callable[..., App], serve: Any
) -> None:
    async with serve(connect(), registry) as agent, connect() as app:
        with pytest.raises(RemoteError) as raised:
            await acall("l_big", MAX_MESSAGE_BYTES + 1000, rekuest=app.rekuest)
        text = str(raised.value)
        assert "the return value cannot be sent" in text
        assert "per message" in text
        assert "structure, such as an image" in text
        with pytest.raises(RemoteError, match="item 1 cannot be sent"):
            async for _ in aiterate("l_items", MAX_MESSAGE_BYTES + 1000, rekuest=app.rekuest):
                pass
        assert await acall("l_echo", 1.0, rekuest=app.rekuest) == 1.0
        assert agent.connections == 1
        await until(lambda: not agent.holding)  # nothing kept to resend forever


@pytest.mark.anyio
async def test_a_nan_result_fails_its_call_only(connect: Callable[..., App], serve: Any) -> None:
    async with serve(connect(), registry), connect() as app:
        with pytest.raises(RemoteError, match="finite"):
            await acall("l_nan", rekuest=app.rekuest)
        assert await acall("l_echo", 3.0, rekuest=app.rekuest) == 3.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((), {"x": math.nan}, "argument 'x'"),
        ((math.inf,), {}, "positional argument 0"),
        ((), {"x": [[1.0, -math.inf]]}, "argument 'x'"),
        ((), {"x": object()}, "argument 'x'"),
        ((10**400,), {}, "positional argument 0 cannot be sent: an integer of 1329 bits"),
        ((), {"x": {"a": [-(10**400)]}}, "argument 'x' cannot be sent: an integer"),
    ],
)
async def test_an_unsendable_argument_fails_that_call_before_sending(
    connect: Callable[..., App],
    serve: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    named: str,
) -> None:
    async with serve(connect(), registry), connect() as app, anyio.create_task_group() as tasks:
        slow = anyio.Event()

        async def in_flight() -> None:  # a call in flight is not cancelled by the bad one
            assert await acall("l_echo", 7.0, rekuest=app.rekuest) == 7.0
            slow.set()

        tasks.start_soon(in_flight)
        with pytest.raises(BadArgumentsError, match=named):
            await acall("l_echo", *args, rekuest=app.rekuest, **kwargs)
        await slow.wait()
        assert await acall("l_echo", 4.0, rekuest=app.rekuest) == 4.0


def test_a_nan_argument_leaves_a_sync_app_working(connect: Callable[..., App], serve: Any) -> None:
    agent_app = connect()
    agent_app.rekuest.registry = registry
    with agent_app:
        agent_app.rekuest.start()
        with connect():
            with pytest.raises(BadArgumentsError, match=r"argument 'x'.*not finite"):
                call("l_echo", x=float("nan"))
            assert call("l_echo", x=1.5) == 1.5
        # leaving `with` raised nothing (no ExceptionGroup)


def test_too_deep_arguments_are_refused_naming_the_argument(connect: Callable[..., App]) -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with connect(), pytest.raises(BadArgumentsError, match=r"argument 'x'.*nested deeper"):
        call("l_echo", x=deep)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "non-empty"), ("   ", "non-empty"), ("n" * 10_000, "at most 200 characters")],
)
def test_a_bad_function_name_is_a_definition_error(name: str, problem: str) -> None:
    def f() -> None:
        pass

    with pytest.raises(DefinitionError, match=problem):
        register(name=name)(f)


class _Frames:
    """A websocket stand-in that delivers given frames (a hostile server)."""

    def __init__(self, *frames: str) -> None:
        self.frames = list(frames)
        self.closed: int | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        for frame in self.frames:
            yield frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("frame", "lost"),
    [
        ("[" * 5000 + "]" * 5000, True),
        ("not json", True),
        ("[5]", True),
        ('[{"id": [1]}]', False),
        ('[{"id": {"a": 1}, "t": 1}]', False),
    ],
)
async def test_a_hostile_server_frame_fails_the_calls_not_the_app(
    connect: Callable[..., App], frame: str, lost: bool
) -> None:
    async with connect() as app:
        channel = CallerChannel(app.rekuest.app_slot.scope, await app.container.transport())
        waiting = Pending("call-0001", stream=False)
        channel._pending[waiting.id] = waiting
        socket = _Frames(frame, '[{"t": "done", "id": "call-0001", "v": 1}]')
        await channel._read(socket)  # type: ignore[arg-type]  # returns: nothing escapes
        if lost:  # an unreadable frame ends the connection: its calls fail clearly
            assert isinstance(waiting.future.exception(), ConnectionLostError)
            assert "cannot be read" in str(waiting.future.exception())
            assert socket.closed == 1007
        else:  # a message that names no call of ours is ignored
            assert waiting.future.result()["v"] == 1
        with pytest.raises(NoAgentError):  # the app still works
            await acall("l_nowhere", rekuest=app.rekuest)


@pytest.mark.anyio
async def test_an_unreadable_answer_fails_its_own_call(connect: Callable[..., App]) -> None:
    async with connect() as app:
        channel = CallerChannel(app.rekuest.app_slot.scope, await app.container.transport())
        bad, good = Pending("call-bad01", stream=False), Pending("call-good1", stream=False)
        channel._pending.update({bad.id: bad, good.id: good})
        frame = '[{"t": "done", "id": "call-bad01", "v": NaN}, {"t": "done", "id": "call-good1"}]'
        await channel._read(_Frames(frame))  # type: ignore[arg-type]
        assert bad.future.result()["kind"] == "refused"
        assert "not finite" in bad.future.result()["m"]
        assert good.future.result()["t"] == "done"


@pytest.mark.parametrize("value", [math.inf, -1.0, math.nan, "5", True])
def test_unbounded_timeouts_are_arkitekt_errors(connect: Callable[..., App], value: Any) -> None:
    with connect(), pytest.raises(ArkitektError, match="timeout must be a finite number"):
        call("l_echo", 1.0, timeout=value)


@pytest.mark.anyio
async def test_a_kept_result_the_server_keeps_closing_over_is_not_resent_forever(
    connect: Callable[..., App], serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An agent whose message limit is above the server's frame limit (as behind a proxy with
    # a smaller limit): the server closes the socket (1009) each time the result arrives.
    monkeypatch.setattr(rekuest_frames, "MAX_MESSAGE_BYTES", 4 * MAX_FRAME_BYTES)
    fast = connect(rekuest={"reconnect_max_seconds": 0.2})
    async with serve(fast, registry) as agent, connect() as app:
        with anyio.fail_after(30), pytest.raises(RemoteError, match="could not be delivered"):
            await acall("l_big", MAX_FRAME_BYTES + 1000, rekuest=app.rekuest)
        # the first connection, and the one that delivered the error (the server closed each
        # of the MAX_RESENDS reconnections that sent the result again during registration;
        # a connection counts once the server read what was resent on it)
        await until(lambda: agent.connections == 2)
        assert await acall("l_echo", 5.0, rekuest=app.rekuest) == 5.0  # serving again
        await until(lambda: not agent.holding)


@pytest.mark.anyio
async def test_the_callers_writer_fails_an_unencodable_message_alone(
    connect: Callable[..., App],
) -> None:
    # Calls are encoded before they are queued; the writer copes with one that is not.
    async with connect() as app:
        channel = await app.rekuest._channel()
        bad, good = Pending("writer-bad-1", stream=False), Pending("writer-good", stream=False)
        await channel.submit({"t": "call", "id": bad.id, "f": "w_f", "args": [math.nan]}, bad)
        await channel.submit({"t": "call", "id": good.id, "f": "w_f"}, good)
        with anyio.fail_after(10):
            refused, answered = await bad.future, await good.future
        assert (refused["kind"], refused["id"]) == ("invalid", bad.id)
        assert "not finite" in refused["m"]
        assert answered["kind"] == "no_agent"  # the other call went out and was answered
        with pytest.raises(NoAgentError):  # and the app works on
            await acall("w_f", rekuest=app.rekuest)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "hint", "problem"),
    [
        (1, {"key": "return", "kind": "list"}, "invalid result port"),
        (
            {"a": 1},
            {"key": "return", "kind": "list", "children": [{"key": "i", "kind": "int"}]},
            "does not fit",
        ),
        ({"a": 1}, {"key": "return", "kind": "float"}, "does not fit.*expected float, got dict"),
        ([1, 2], {"key": "return", "kind": "structure", "identifier": "@mikro/image"}, "fit"),
        (2**70, {"key": "return", "kind": "int"}, "does not fit.*64-bit"),
    ],
)
async def test_a_hostile_result_port_is_a_rekuest_error(
    connect: Callable[..., App], value: Any, hint: dict[str, Any], problem: str
) -> None:
    async with connect() as app:
        with pytest.raises(RekuestError, match=problem):
            await expand(value, hint, app.rekuest.app_slot.scope)


@pytest.mark.anyio
async def test_an_unreadable_assignment_is_answered_with_an_error(
    connect: Callable[..., App], serve: Any
) -> None:
    async with serve(connect(), registry) as agent, connect() as app:
        (hostile,) = loads('[{"t": "assign", "id": "hostile-001", "f": "l_echo", "a": {"x": NaN}}]')
        agent._handle(hostile)  # as if the server had sent it
        (held,) = agent._held["hostile-001"]
        assert json.loads(held)["t"] == "error"
        assert "unreadable assignment" in json.loads(held)["m"]
        await until(lambda: "hostile-001" not in agent.holding)  # delivered, acknowledged
        assert await acall("l_echo", 6.0, rekuest=app.rekuest) == 6.0


@pytest.mark.anyio
async def test_a_server_that_breaks_the_handshake_is_a_lost_connection(
    connect: Callable[..., App],
) -> None:
    """A server dying mid-handshake (or anything not speaking HTTP) fails the calls clearly."""

    async def garbage(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"garbage\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with connect() as app, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, garbage)
        channel = CallerChannel(app.rekuest.app_slot.scope, await app.container.transport())
        with pytest.raises(ConnectionLostError, match=f"127.0.0.1:{port}"):
            await channel._open(f"ws://127.0.0.1:{port}/rekuest/caller/ws", "token")
        tasks.cancel_scope.cancel()
