"""Every frame an agent sends is validated: a bad one fails its own assignment, and is
acknowledged, while the caller, the agent's socket and the server's writers keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from arkitekt import App
from arkitekt.protocol.rekuest import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS

if TYPE_CHECKING:
    from tests.helpers import Wire

INT_RESULT = [{"key": "return", "kind": "int"}]
ECHO = {"name": "af_echo", "args": [{"key": "x", "kind": "int"}], "returns": INT_RESULT}
STREAM = {"name": "af_stream", "stream": True, "returns": INT_RESULT}


@pytest.mark.parametrize(
    ("function", "bad", "why"),
    [
        ("af_echo", '{"t": "done", "id": "%s", "v": NaN}', "not finite (NaN)"),
        ("af_echo", '{"t": "done", "id": "%s", "v": [Infinity]}', "not finite (Infinity)"),
        ("af_echo", '{"t": "error", "id": "%s", "m": -Infinity}', "not finite"),
        ("af_echo", '{"t": "progress", "id": "%s", "p": NaN}', "not finite"),
        ("af_echo", '{"t": "log", "id": "%s", "m": 5}', "m: Input should be a valid string"),
        ("af_echo", '{"t": "done", "id": "%s", "v": "text"}', "the return value: expected int"),
        ("af_stream", '{"t": "yield", "id": "%s", "n": 0, "v": NaN}', "not finite"),
        ("af_stream", '{"t": "yield", "id": "%s", "n": 0, "v": 1.5}', "stream item: expected int"),
        ("af_echo", '{"t": "yield", "id": "%s", "v": 1}', "is not a stream"),
        ("af_echo", '{"t": "done", "id": "%s", "v": ' + "[" * 200 + "]" * 200 + "}", "deeper"),
        ("af_echo", '{"t": "done", "id": "%s", "v": "%s"}', "per message"),
        # 1.4 M characters received, but 8 MiB + once encoded (each "é" is written "\\u00e9")
        ("af_echo", '{"t": "done", "id": "%s", "v": "%s"}', "per message (escaped)"),
    ],
)
def test_a_bad_message_of_an_agent_fails_its_assignment_only(
    wire: Wire, connect: Callable[..., App], function: str, bad: str, why: str
) -> None:
    agent = wire.open(wire.token(connect()), "agent")
    caller = wire.open(wire.token(connect()), "caller")
    wire.register(agent, ECHO, STREAM)
    stream = function == "af_stream"
    fields: dict[str, Any] = {"stream": True} if stream else {"kwargs": {"x": 1}, "events": True}
    id = wire.call(caller, function, **fields)
    assert wire.assignment(agent)["id"] == id
    if why == "per message (escaped)":
        why = "per message"
        frame = "[" + bad % (id, "\u00e9" * (MAX_MESSAGE_BYTES // 6 + 1)) + "]"
    elif why == "per message":
        frame = "[" + bad % (id, "x" * MAX_MESSAGE_BYTES) + "]"
    else:
        frame = "[" + bad % id + "]"
    agent.send(frame)
    failed = wire.answer(caller, id)
    assert (failed["t"], failed["kind"]) == ("error", "remote")
    assert "sent an invalid" in failed["m"]
    assert why in failed["m"]
    told = wire.until(agent, lambda message: message["t"] == "refused")
    assert told["id"] == id
    assert why in told["m"]
    assert wire.until(agent, lambda message: message["t"] == "ack")["ids"] == [id]
    # the same sockets, and the server's writer for this caller, still work
    again = wire.call(caller, "af_echo", kwargs={"x": 2})
    assert wire.assignment(agent)["id"] == again
    agent.send(json.dumps([{"t": "done", "id": again, "v": 4}]))
    assert wire.answer(caller, again) == {"t": "done", "id": again, "v": 4, "r": INT_RESULT[0]}


def test_an_unreadable_frame_of_an_agent_is_refused_and_the_socket_kept(
    wire: Wire, connect: Callable[..., App]
) -> None:
    agent = wire.open(wire.token(connect()), "agent")
    caller = wire.open(wire.token(connect()), "caller")
    wire.register(agent, ECHO)
    for frame in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000, "nope", b"\xff"):
        agent.send(frame)
        told = wire.until(agent, lambda message: message["t"] == "refused")
        assert told["id"] is None
        assert "malformed frame" in told["m"]
    id = wire.call(caller, "af_echo", kwargs={"x": 3})
    assert wire.assignment(agent)["id"] == id
    agent.send(json.dumps([{"t": "done", "id": id, "v": 3}]))
    assert wire.answer(caller, id)["v"] == 3


def test_a_deep_or_non_finite_call_is_refused_and_the_socket_kept(
    wire: Wire, connect: Callable[..., App]
) -> None:
    caller = wire.open(wire.token(connect()), "caller")
    caller.send("[" * 5000 + "]" * 5000)
    refused = wire.recv(caller)[0]
    assert (refused["kind"], refused["id"]) == ("refused", None)
    assert "nested deeper than" in refused["m"]
    caller.send('[{"t": "call", "id": "deep-call-01", "f": "x", "args": [NaN]}]')
    refused = wire.recv(caller)[0]
    assert (refused["kind"], refused["id"]) == ("refused", "deep-call-01")
    assert "not finite (NaN)" in refused["m"]
    id = wire.call(caller, "af_nowhere")
    assert wire.answer(caller, id)["kind"] == "no_agent"


def test_a_registration_above_the_message_limit_is_refused(
    wire: Wire, connect: Callable[..., App]
) -> None:
    agent = wire.open(wire.token(connect()), "agent")
    holding = ["assignment-id"] * (MAX_MESSAGE_BYTES // 15)
    agent.send(json.dumps([{"t": "register", "definitions": [ECHO], "holding": holding}]))
    refused = wire.recv(agent)[0]
    assert refused["t"] == "fatal"
    assert "invalid registration" in refused["m"]
    assert "per message" in refused["m"]


def test_long_texts_of_an_agent_are_cut_not_refused(
    wire: Wire, connect: Callable[..., App]
) -> None:
    agent = wire.open(wire.token(connect()), "agent")
    caller = wire.open(wire.token(connect()), "caller")
    wire.register(agent, ECHO)
    id = wire.call(caller, "af_echo", kwargs={"x": 1}, events=True)
    assert wire.assignment(agent)["id"] == id
    text = "e" * (3 * MAX_TEXT_CHARS)
    agent.send(
        json.dumps(
            [{"t": "log", "id": id, "m": text}, {"t": "error", "id": id, "m": text, "tb": text}]
        )
    )
    logged = wire.until(caller, lambda message: message["t"] == "log")
    failed = wire.answer(caller, id)
    for cut in (logged["m"], failed["m"], failed["tb"]):
        assert len(cut) <= MAX_TEXT_CHARS
        assert cut.startswith("eeee")
        assert "texts are limited to" in cut
