"""A frame fuzzer for both rekuest websockets, against the real server.

Random JSON (with ``NaN``/``Infinity`` literals), messages of every type with random fields,
frames nested thousands of levels deep, messages above ``MAX_MESSAGE_BYTES``, text that is not
JSON and binary frames. After every frame the same socket must still serve a good call, and a
bystander app's calls keep working. Run with ``-s`` to see how many frames were fuzzed.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from arkitekt import App
from arkitekt.protocol.rekuest import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES
from arkitekt.rekuest import Registry, call
from arkitekt_server import EmbeddedServer

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from tests.helpers import Wire

EXAMPLES = 80
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
KINDS = ("call", "cancel", "register", "done", "error", "yield", "progress", "log", "cancelled")
_kinds = st.sampled_from([*KINDS, "assign", "ack", "ready", "dance"])
_fields = ("id", "f", "args", "kwargs", "v", "m", "tb", "n", "p", "level", "wait", "timeout")
_message = st.fixed_dictionaries(
    {"t": _kinds | _json},
    optional={field: st.text(min_size=8, max_size=70) | _json for field in _fields},
)


def _dumps(value: Any) -> str:
    return json.dumps(value)  # allow_nan: NaN, Infinity and -Infinity literals appear


def _deep(levels: int, opener: str) -> str:
    if opener == "[":
        return "[" * levels + "]" * levels
    return '{"a":' * levels + "1" + "}" * levels


_text_frames = st.one_of(
    _json.map(_dumps),
    _message.map(_dumps),
    st.lists(_message, max_size=4).map(_dumps),
    st.builds(_deep, st.integers(1, 6000), st.sampled_from(["[", "{"])),
    st.text(max_size=40),
    st.sampled_from([1_000, 200_000]).map(
        lambda n: '[{"t": "log", "id": "x", "m": "' + "a" * n + '"}]'
    ),
)
FRAMES = st.one_of(_text_frames, _text_frames.map(str.encode), st.binary(max_size=64))
HUGE = '[{"t": "call", "id": "huge-0001", "f": "x", "v": "' + "a" * MAX_MESSAGE_BYTES + '"}]'

registry = Registry()


@registry.register
def fz_double(x: int) -> int:
    return 2 * x


@pytest.fixture
def bystander(connect: Callable[..., App]) -> Iterator[Callable[[], None]]:
    """A real agent and caller app; calling the fixture's value checks they still work."""
    agent_app = connect()
    agent_app.rekuest.registry = registry
    calls = [0]

    def check() -> None:
        calls[0] += 1
        assert call("fz_double", calls[0]) == 2 * calls[0]

    with agent_app:
        agent_app.rekuest.start()
        with connect():
            yield check


def _probe_caller(wire: Wire, caller: ClientConnection) -> None:
    id = wire.call(caller, "fz_nowhere")
    assert wire.answer(caller, id)["kind"] == "no_agent"


def _probe_agent(wire: Wire, agent: ClientConnection, caller: ClientConnection) -> None:
    id = wire.call(caller, "fz_ping")
    assert wire.until(agent, lambda m: m["t"] == "assign" and m["id"] == id)
    agent.send(json.dumps([{"t": "done", "id": id}]))
    assert wire.answer(caller, id) == {"t": "done", "id": id, "v": None}


def test_fuzzed_frames_to_the_caller_socket(
    wire: Wire, connect: Callable[..., App], bystander: Callable[[], None]
) -> None:
    caller = wire.open(wire.token(connect()), "caller")
    sent = [0]

    @FUZZ
    @given(frame=FRAMES)
    @example(frame=HUGE)
    def fuzz(frame: str | bytes) -> None:
        caller.send(frame)
        sent[0] += 1
        _probe_caller(wire, caller)  # the same socket still answers
        bystander()

    fuzz()
    print(f"\nrekuest caller socket: {sent[0]} frames fuzzed, the socket served a call after each")
    assert sent[0] > EXAMPLES // 2


def test_fuzzed_frames_to_the_agent_socket(
    wire: Wire, connect: Callable[..., App], bystander: Callable[[], None]
) -> None:
    agent = wire.open(wire.token(connect()), "agent")
    wire.register(agent, {"name": "fz_ping"})
    caller = wire.open(wire.token(connect()), "caller")
    sent = [0]

    @FUZZ
    @given(frame=FRAMES)
    @example(frame=HUGE)
    def fuzz(frame: str | bytes) -> None:
        agent.send(frame)
        sent[0] += 1
        _probe_agent(wire, agent, caller)  # the same agent socket still serves
        bystander()

    fuzz()
    print(f"\nrekuest agent socket: {sent[0]} frames fuzzed, the agent served a call after each")
    assert sent[0] > EXAMPLES // 2


_registrations = st.fixed_dictionaries(
    {"t": st.just("register")},
    optional={
        "instance": st.text(max_size=120) | _json,
        "definitions": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=8)},
                optional={"args": _json, "returns": _json, "stream": _json, "description": _json},
            ),
            max_size=3,
        )
        | _json,
        "holding": st.lists(st.text(max_size=70), max_size=3) | _json,
    },
).map(lambda message: _dumps([message]))


def test_fuzzed_first_frames_of_agents(
    wire: Wire, connect: Callable[..., App], bystander: Callable[[], None]
) -> None:
    token = wire.token(connect())
    outcomes = {"registered": 0, "fatal": 0}

    @FUZZ
    @given(frame=_registrations | FRAMES)
    def fuzz(frame: str | bytes) -> None:
        with wire.socket(token, "agent") as agent:
            agent.send(frame)
            answer = wire.recv(agent)[0]
            assert answer["t"] in outcomes, answer
            outcomes[answer["t"]] += 1
            if answer["t"] == "fatal":  # the documented refusal: fatal, then close 4400
                with pytest.raises(ConnectionClosed) as closed:
                    wire.recv(agent)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4400
        bystander()

    fuzz()
    print(f"\nrekuest agent registration: {sum(outcomes.values())} first frames fuzzed {outcomes}")
    assert outcomes["fatal"] > 0


def _announce_oversized_frame(server: EmbeddedServer, token: str, kind: str) -> int:
    """Open a websocket by hand, announce a text frame one byte above ``MAX_FRAME_BYTES`` (the
    header only, so that the server's answer is not lost in a reset) and return the close code
    the server sends."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                f"GET /rekuest/{kind}/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += raw.recv(4096)
        assert data.startswith(b"HTTP/1.1 101"), data
        data = data.split(b"\r\n\r\n", 1)[1]
        raw.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", MAX_FRAME_BYTES + 1) + b"mask")
        while True:  # frames the server sends (a caller's `ready` first), up to its close frame
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                chunk = raw.recv(4096)
                assert chunk, "the server closed without a close frame"
                data += chunk
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            if opcode == 0x8:
                return int(struct.unpack("!H", data[2:4])[0])
            data = data[2 + length :]


@pytest.mark.parametrize("kind", ["caller", "agent"])
def test_a_frame_above_the_frame_limit_closes_with_1009(
    server: EmbeddedServer,
    wire: Wire,
    connect: Callable[..., App],
    bystander: Callable[[], None],
    kind: str,
) -> None:
    assert _announce_oversized_frame(server, wire.token(connect()), kind) == 1009
    bystander()


def test_the_frame_limit_is_the_servers_websocket_limit() -> None:
    # The server runs uvicorn with its default ws_max_size; both sides bound frames by it.
    assert uvicorn.Config(app="arkitekt_server._app:create_app").ws_max_size == MAX_FRAME_BYTES
