"""Properties of the rekuest wire (arkitekt.protocol.rekuest): what is refused, is refused with
an error naming what was wrong; what is accepted travels unchanged and within the limits."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arkitekt.protocol.rekuest import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_FRAME_CONTAINERS,
    MAX_FRAME_MESSAGES,
    MAX_INT_MAGNITUDE,
    MAX_MESSAGE_CONTAINERS,
    MAX_TEXT_CHARS,
    ArgumentsInvalid,
    CallMessage,
    Definition,
    MessageError,
    Port,
    RegisterMessage,
    agent_message,
    argument_problem,
    bind_arguments,
    clip,
    encode,
    explain,
    frames,
    loads,
    problem,
)
from arkitekt.protocol.rekuest_frames import MessageTooBig

PROPERTY = settings(max_examples=100, deadline=None, database=None)

finite = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    finite,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def with_non_finite(draw: st.DrawFn) -> Any:
    """A JSON value with one non-finite number somewhere inside."""
    value = draw(non_finite)
    for _ in range(draw(st.integers(0, 5))):
        value = [value] if draw(st.booleans()) else {draw(st.text(max_size=4)): value}
    return value


@PROPERTY
@given(json_values)
def test_finite_values_travel_unchanged(value: Any) -> None:
    message = {"t": "done", "id": "an-assignment", "v": value}
    (frame,) = frames([message], lambda *_: pytest.fail("refused a good message"))
    assert loads(frame) == [json.loads(encode(message))]
    assert problem(loads(frame)[0]) is None


@PROPERTY
@given(with_non_finite())
def test_non_finite_numbers_are_refused_by_sender_and_receiver(value: Any) -> None:
    with pytest.raises(MessageError, match="not finite"):
        encode({"t": "done", "id": "x", "v": value})
    received = loads(json.dumps([{"t": "done", "id": "an-id", "v": value}]))  # NaN literals
    with pytest.raises(MessageError, match=r"v: |not finite"):
        agent_message(received[0])
    assert "not finite" in str(problem(received[0]))


@PROPERTY
@given(st.integers(MAX_DEPTH, 3 * MAX_DEPTH), st.sampled_from(["[]", "{}"]))
def test_too_deep_values_are_refused(levels: int, brackets: str) -> None:
    value: Any = 1
    for _ in range(levels):
        value = [value] if brackets == "[]" else {"a": value}
    with pytest.raises(MessageError, match=f"deeper than {MAX_DEPTH}"):
        encode({"v": value})
    assert f"deeper than {MAX_DEPTH}" in str(problem(loads(json.dumps({"v": value}))[0]))


@PROPERTY
@given(
    st.text(max_size=200) | st.binary(max_size=200) | st.integers(1, 20_000).map(lambda n: "[" * n)
)
def test_loads_refuses_anything_unreadable_with_a_message_error(frame: str | bytes) -> None:
    try:
        messages = loads(frame)
    except MessageError as error:
        refusal = str(error)
    else:
        assert all(isinstance(message, dict) for message in messages)
        return
    assert refusal


@PROPERTY
@given(st.lists(st.one_of(json_values, with_non_finite()), max_size=8))
def test_frames_send_every_good_message_and_refuse_only_the_bad(values: list[Any]) -> None:
    messages = [{"t": "yield", "id": f"id-{n}", "v": value} for n, value in enumerate(values)]
    refused: list[str] = []
    out = frames(messages, lambda message, error: refused.append(message["id"]))
    sent = [message["id"] for frame in out for message in loads(frame)]
    assert all(len(frame) <= MAX_FRAME_BYTES for frame in out)
    expected_bad = {m["id"] for m in messages if problem(loads(json.dumps(m))[0]) is not None}
    assert set(refused) == expected_bad
    assert sent == [m["id"] for m in messages if m["id"] not in expected_bad]


_fields = st.sampled_from(["id", "p", "m", "level", "n", "tb"])


@PROPERTY
@given(st.sampled_from(["progress", "log", "yield", "error"]), _fields, json_values)
def test_agent_messages_are_validated_field_by_field(kind: str, field: str, value: Any) -> None:
    message = {"t": kind, "id": "assignment-1", "m": "text"}
    message[field] = value
    try:
        parsed = agent_message(message)
    except MessageError as error:
        refusal = str(error)
    else:
        assert parsed.t == kind
        return
    assert field in refusal  # the refusal names the field


@PROPERTY
@given(st.text(max_size=3 * MAX_TEXT_CHARS // 2))
def test_clip_bounds_texts_and_keeps_their_start(text: str) -> None:
    clipped = clip(text)
    assert len(clipped) <= MAX_TEXT_CHARS
    assert clipped == text or clipped.startswith(text[:1000])


_ports = st.sampled_from(
    [
        Port(key="a", kind="int"),
        Port(key="a", kind="float", nullable=True),
        Port(key="a", kind="list", children=[Port(key="item", kind="float")]),
        Port(key="a", kind="dict", children=[Port(key="value", kind="str")]),
        Port(key="a", kind="enum", choices=["ONE", "TWO"]),
        Port(key="a", kind="structure", identifier="@x/y"),
    ]
)


@st.composite
def with_huge_int(draw: st.DrawFn) -> Any:
    """A JSON value with an integer beyond 64 bits (up to beyond a float's range) inside."""
    value = draw(st.integers(2**63, 2**1100) | st.integers(-(2**1100), -(2**63) - 1))
    for _ in range(draw(st.integers(0, 3))):
        value = [value] if draw(st.booleans()) else {draw(st.text(max_size=4)): value}
    return value


@PROPERTY
@given(_ports, json_values | with_non_finite() | with_huge_int())
def test_arguments_are_accepted_or_refused_naming_the_argument(port: Port, value: Any) -> None:
    definition = Definition(name="f", args=[port])
    try:
        bound = bind_arguments(definition, [], {"a": value})
    except ArgumentsInvalid as error:
        refusal = str(error)
    else:
        encode(bound)  # what is accepted can travel
        return
    assert "argument 'a'" in refusal


_call_fields = st.sampled_from(["id", "f", "args", "agent", "wait", "stream", "events", "timeout"])


@PROPERTY
@given(_call_fields, json_values | non_finite)
def test_call_messages_are_refused_naming_the_field(field: str, value: Any) -> None:
    message = {"t": "call", "id": "call-00001", "f": "f", field: value}
    try:
        CallMessage.model_validate(message)
    except ValidationError as error:
        refusal = explain(error)
    else:
        return
    assert refusal.startswith(field)


@PROPERTY
@given(st.sampled_from(["instance", "definitions", "holding"]), json_values)
def test_registrations_are_refused_naming_the_field(field: str, value: Any) -> None:
    try:
        RegisterMessage.model_validate({"t": "register", field: value})
    except ValidationError as error:
        refusal = explain(error)
    else:
        return
    assert refusal.startswith(field)


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("float", 10**400, "expected a finite number, got a larger integer"),
        ("float", -(10**400), "expected a finite number"),
        ("int", INT_MAX + 1, "expected a 64-bit integer"),
        ("int", INT_MIN - 1, "expected a 64-bit integer"),
    ],
)
def test_integers_beyond_a_port_are_refused_naming_the_argument(
    kind: str, value: int, why: str
) -> None:
    definition = Definition(name="f", args=[Port(key="x", kind=kind)])  # type: ignore[arg-type]
    with pytest.raises(ArgumentsInvalid, match=f"argument 'x': {why}"):
        bind_arguments(definition, [], {"x": value})
    nested = Definition(
        name="f", args=[Port(key="d", kind="dict", children=[Port(key="v", kind=kind)])]
    )  # type: ignore[arg-type]
    with pytest.raises(ArgumentsInvalid, match=f"argument 'd'\\['k'\\]: {why}"):
        bind_arguments(nested, [{"k": value}], {})
    largest = {"int": INT_MAX, "float": 2**1023}[kind]  # accepted: the port can hold it
    assert bind_arguments(definition, [], {"x": largest})["x"] == largest


def test_integers_no_number_can_hold_are_refused_by_the_wire_naming_the_argument() -> None:
    assert argument_problem([1, {"a": [MAX_INT_MAGNITUDE]}], {}) == (
        "positional argument 1",
        "an integer of 1025 bits, too large for any number (at most 1024)",
    )
    assert argument_problem([], {"x": -(MAX_INT_MAGNITUDE - 1)}) is None
    assert "too large" in str(problem({"t": "done", "id": "i", "v": [MAX_INT_MAGNITUDE]}))
    for value in (MAX_INT_MAGNITUDE, -MAX_INT_MAGNITUDE, [10**400]):  # in a small message too
        with pytest.raises(MessageError, match="too large for any number"):
            encode({"t": "done", "id": "i", "v": value})
    assert json.loads(encode({"v": MAX_INT_MAGNITUDE - 1}))["v"] == MAX_INT_MAGNITUDE - 1


def test_a_frame_holds_at_most_max_frame_messages_and_senders_split_batches() -> None:
    batch = [{"t": "log", "id": f"id-{n}", "m": ""} for n in range(MAX_FRAME_MESSAGES * 2 + 1)]
    sent = frames(batch, lambda *_: pytest.fail("refused a good message"))
    assert [len(loads(frame)) for frame in sent] == [MAX_FRAME_MESSAGES] * 2 + [1]
    with pytest.raises(MessageError, match=f"more than {MAX_FRAME_MESSAGES:,} messages"):
        loads("[" + ",".join(["{}"] * (MAX_FRAME_MESSAGES + 1)) + "]")


def test_objects_and_arrays_are_bounded_per_message_and_per_frame() -> None:
    """16 MiB of ``{}`` would take about 400 MiB once parsed: counted before decoding."""
    many = [{}] * MAX_MESSAGE_CONTAINERS  # with the message itself, one more than allowed
    with pytest.raises(MessageTooBig, match=f"more than {MAX_MESSAGE_CONTAINERS:,} objects"):
        encode({"t": "done", "id": "c-1", "v": many})
    brackets = "[{" * MAX_MESSAGE_CONTAINERS  # inside a string they do not count
    assert json.loads(encode({"t": "log", "id": "c-1", "m": brackets}))["m"] == brackets
    # a sender splits so that no frame holds more than the receiver accepts
    part = {"t": "done", "id": "c-1", "v": [[]] * (MAX_MESSAGE_CONTAINERS - 2)}
    sent = frames([part, part, part], lambda message, error: None)
    assert len(sent) == 3
    assert [len(loads(frame)) for frame in sent] == [1, 1, 1]
    flood = "[" + ",".join([encode(part)] * 3) + "]"  # a peer that does not split
    with pytest.raises(MessageError, match=f"more than {MAX_FRAME_CONTAINERS:,} objects"):
        loads(flood)
    with pytest.raises(MessageError, match=f"more than {MAX_FRAME_MESSAGES:,} messages"):
        loads("[" + "{}," * 600_000 + "{}]")  # refused without building 600,000 objects
