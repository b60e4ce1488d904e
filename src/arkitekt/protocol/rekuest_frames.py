"""Frames of the rekuest websockets: the limits, and bounded encoding and decoding.

Re-exported by :mod:`arkitekt.protocol.rekuest` (import from there). Both sides use these, so
what one side sends is what the other accepts:

* a frame (a JSON array of messages) is at most :data:`MAX_FRAME_BYTES` and holds at most
  :data:`MAX_FRAME_MESSAGES` messages; one message, encoded, at most :data:`MAX_MESSAGE_BYTES`
  (a sender splits a batch into several frames rather than exceed a frame limit; a receiver
  refuses a frame above them once, as a whole, without decoding the messages past the cap);
* values nest at most :data:`MAX_DEPTH` arrays/objects deep;
* numbers are finite (``NaN`` and ``Infinity`` are not JSON; receivers refuse them per message),
  and integers fit a float's range (:data:`MAX_INT_MAGNITUDE`);
* error messages, tracebacks, log lines and progress texts are cut to :data:`MAX_TEXT_CHARS`.

A sender never lets one message it cannot encode stop the others: :func:`frames` hands such a
message to a ``refuse`` callback (which answers a replacement, such as an error for its call,
or drops it). A receiver validates each message before acting on it (the models are in
:mod:`arkitekt.protocol.rekuest_messages`).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from arkitekt.protocol.text import too_many_containers

__all__ = [
    "CLOSE_OUTBOX_FULL",
    "CLOSE_TOKEN_REFUSED",
    "MAX_DEPTH",
    "MAX_ENCODED_GROWTH",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_CONTAINERS",
    "MAX_FRAME_MESSAGES",
    "MAX_INT_MAGNITUDE",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_CONTAINERS",
    "MAX_TEXT_CHARS",
    "MessageError",
    "MessageTooBig",
    "clip",
    "dumps",
    "encode",
    "frames",
    "loads",
    "may_hold_big_messages",
    "problem",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest frame either side accepts (the server's websocket closes with 1009 above it;
it equals uvicorn's ``ws_max_size`` default, the client sets it as its ``max_size``)."""
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""The largest message, encoded: a result, stream item or call whose JSON is bigger fails its
own call (return large data as a structure, such as an image, instead)."""
MAX_FRAME_MESSAGES = 4096
"""The most messages one frame may hold. A frame with more is refused as a whole, once (never
once per message); senders split larger batches. An agent's burst of results, or a caller's
burst of calls, that piles up while one frame is written is far smaller."""
MAX_INT_MAGNITUDE = 2**1024
"""Integers must be smaller than this in magnitude (so that every receiver can hold them as a
float); ports of kind ``int`` take 64-bit integers only (:data:`INT_MIN` .. :data:`INT_MAX`)."""
CLOSE_OUTBOX_FULL = 4008
"""The close code the server uses for a peer that does not read what it is sent: its queue of
outgoing messages overflowed (see the server's documentation for the bounds)."""
CLOSE_TOKEN_REFUSED = 4401
"""The close code the server uses for a websocket without a valid bearer token (revoked or
expired): a client refreshes its token and connects once more."""
MAX_DEPTH = 64
"""How deeply arrays and objects may nest in one message."""
MAX_MESSAGE_CONTAINERS = 500_000
"""The most objects and arrays one message may hold: what bounds the memory a message takes
once parsed (16 MiB of ``{}`` would take about 400 MiB; half a million take about 35 MiB).
A result with more fails its own call, like one too big in bytes."""
MAX_FRAME_CONTAINERS = 2 * MAX_MESSAGE_CONTAINERS
"""The most objects and arrays one frame may hold, counted before it is decoded (a frame with
more is refused whole); senders split their batches to stay under it."""
MAX_ENCODED_GROWTH = 12
"""How many times longer than the received frame a message in it can get when :func:`encode`
writes it (what a message's size is, on both sides): a character beyond the BMP, received as
one character, is written as a 12-character escape pair (other growth is smaller: 6 for any
other non-ASCII character, 4.5 for a number such as ``1e15``)."""
MAX_TEXT_CHARS = 64 * 1024
"""Error messages, tracebacks, log lines and progress texts are cut to this many characters."""


class MessageError(ValueError):
    """A message (or frame) that cannot travel: the text says why."""


class MessageTooBig(MessageError):
    """A message bigger than :data:`MAX_MESSAGE_BYTES` (raised by :func:`encode`)."""


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"\n... [cut {len(text) - limit:,}+ characters: texts are limited to {limit:,}]"
    return text[: max(0, limit - len(note))] + note


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB" if count >= 1024 * 1024 else f"{count:,} bytes"


class _NonFinite:
    """What a ``NaN``/``Infinity`` literal decodes to: :func:`problem` refuses the message."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _not_finite(value: Any) -> str | None:
    if isinstance(value, int) and not -MAX_INT_MAGNITUDE < value < MAX_INT_MAGNITUDE:
        return f"an integer of {value.bit_length()} bits, too large for any number (at most 1024)"
    if isinstance(value, _NonFinite):
        name = value.name
    elif isinstance(value, float) and not math.isfinite(value):
        name = repr(value)
    else:
        return None
    return f"a number that is not finite ({name}); JSON numbers must be finite"


_CONTAINERS = (dict, list, tuple)
_NUMBERS = (float, int, _NonFinite)  # tuples: ``isinstance`` with a union object is slower


def problem(value: Any) -> str | None:
    """Why a decoded ``value`` may not be used, or ``None``.

    Too deep, a non-finite number, or an integer of :data:`MAX_INT_MAGNITUDE` or more.
    """
    if not isinstance(value, _CONTAINERS):
        return _not_finite(value)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"values nested deeper than {MAX_DEPTH} levels"
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
            elif isinstance(child, _NUMBERS) and (why := _not_finite(child)):
                return why
    return None


_LONG_DIGITS = re.compile(rf"(?<!\d)\d{{{len(str(MAX_INT_MAGNITUDE))}}}")
"""A run of digits as long as :data:`MAX_INT_MAGNITUDE`'s: the text may hold an integer too
large (then :func:`problem` decides); shorter runs cannot. Starts only where a run starts."""


def encode(message: Any) -> str:
    """One message (or value) as JSON, checked against the limits.

    Raises:
        MessageError: it holds a non-finite number or something JSON cannot carry, nests too
            deeply, or is bigger than :data:`MAX_MESSAGE_BYTES`.

    """
    try:
        text = json.dumps(message, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise MessageError(f"values nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        if "JSON compliant" in str(error):
            raise MessageError("a number that is not finite (NaN or infinity)") from None
        raise MessageError(str(error)) from None  # a circular reference
    except TypeError as error:
        raise MessageError(f"a value JSON cannot carry ({error})") from None
    if len(text) > MAX_MESSAGE_BYTES:
        raise MessageTooBig(
            f"it is {_size(len(text))} encoded, more than the limit of "
            f"{_size(MAX_MESSAGE_BYTES)} per message"
        )
    if too_many_containers(text, MAX_MESSAGE_CONTAINERS):
        raise MessageTooBig(
            f"it holds more than {MAX_MESSAGE_CONTAINERS:,} objects and arrays, the limit per "
            "message"
        )
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if (deep or _LONG_DIGITS.search(text)) and (why := problem(message)) is not None:
        raise MessageError(why)
    return text


def may_hold_big_messages(frame: str | bytes) -> bool:
    """Whether a message of the received ``frame`` may exceed :data:`MAX_MESSAGE_BYTES` encoded.

    A message's size is what :func:`encode` writes, on both sides; a receiver measures each
    message of such a frame with it. Smaller frames cannot hold one, whatever their characters.
    """
    return len(frame) * MAX_ENCODED_GROWTH > MAX_MESSAGE_BYTES


def frames(
    messages: Iterable[Mapping[str, Any] | str],
    refuse: Callable[[Mapping[str, Any], MessageError], Mapping[str, Any] | None],
) -> list[str]:
    """Encode a batch into as few frames as the limits allow; never raises for one message.

    Args:
        messages: messages, or messages already :func:`encode`-d (strings).
        refuse: told each message that cannot be encoded, and why; answers a replacement to
            send instead (for example an error for its call) or ``None`` to drop it.

    """
    parts: list[str] = []
    for message in messages:
        if isinstance(message, str):
            parts.append(message)
            continue
        try:
            parts.append(encode(message))
        except MessageError as error:
            replacement = refuse(message, error)
            if replacement is not None:
                with contextlib.suppress(MessageError):  # a bad replacement: drop, never stop
                    parts.append(encode(replacement))
    out: list[str] = []
    batch: list[str] = []
    size = containers = 2
    for part in parts:
        brackets = part.count("[") + part.count("{")  # at least its containers: splits early
        if batch and (
            size + len(part) + 1 > MAX_FRAME_BYTES
            or len(batch) >= MAX_FRAME_MESSAGES
            or containers + brackets > MAX_FRAME_CONTAINERS
        ):
            out.append("[" + ",".join(batch) + "]")
            batch, size, containers = [], 2, 2
        batch.append(part)
        size += len(part) + 1
        containers += brackets
    if batch:
        out.append("[" + ",".join(batch) + "]")
    return out


def dumps(messages: Iterable[Mapping[str, Any]]) -> str:
    """Encode one frame (a batch of messages); for small batches of known-good messages.

    Raises:
        MessageError: a message cannot be encoded, or the frame is too big.

    """
    encoded = [encode(message) for message in messages]
    if len(encoded) > MAX_FRAME_MESSAGES:
        raise MessageError(f"{len(encoded):,} messages, more than {MAX_FRAME_MESSAGES:,} per frame")
    frame = "[" + ",".join(encoded) + "]"
    if len(frame) > MAX_FRAME_BYTES:
        raise MessageError(f"the frame is {_size(len(frame))}, more than {_size(MAX_FRAME_BYTES)}")
    return frame


def loads(frame: str | bytes) -> list[dict[str, Any]]:
    """Decode one frame; a single object is accepted as a batch of one.

    Messages are decoded one by one, so that a frame with more than :data:`MAX_FRAME_MESSAGES`
    is refused before the messages past the cap are built. Non-finite numbers do not fail the
    frame: they decode to a marker that :func:`problem` reports, so that a receiver refuses
    only the message holding one.

    Raises:
        MessageError: the frame is too big, holds too many messages, is not JSON, is nested
            too deeply, or is not objects.

    """
    if len(frame) > MAX_FRAME_BYTES:
        raise MessageError(f"the frame is {_size(len(frame))}, more than {_size(MAX_FRAME_BYTES)}")
    if too_many_containers(frame, MAX_FRAME_CONTAINERS):
        raise MessageError(f"the frame holds more than {MAX_FRAME_CONTAINERS:,} objects and arrays")
    try:
        text = frame.decode() if isinstance(frame, bytes) else frame
        data = _messages(text)
    except MessageError:
        raise
    except RecursionError:
        raise MessageError(f"values nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise MessageError(f"not JSON ({error})") from None
    if not all(isinstance(item, dict) for item in data):
        raise MessageError("a frame must be a JSON array of message objects")
    return data


_DECODER = json.JSONDecoder(parse_constant=_NonFinite)
_BLANK = re.compile(r"[ \t\n\r]*")


def _messages(text: str) -> list[Any]:
    """The items of the frame ``text`` (a JSON array, or one object), at most the cap."""
    at = _BLANK.match(text).end()  # type: ignore[union-attr]  # it matches the empty string
    if text.startswith("{", at) or not text.startswith("[", at):
        data, end = _DECODER.raw_decode(text, at)
        _end(text, end)
        if not isinstance(data, dict):
            raise MessageError("a frame must be a JSON array of message objects")
        return [data]
    items: list[Any] = []
    at = _BLANK.match(text, at + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", at):
        _end(text, at + 1)
        return items
    while True:
        if len(items) == MAX_FRAME_MESSAGES:
            raise MessageError(
                f"the frame holds more than {MAX_FRAME_MESSAGES:,} messages (the limit per "
                "frame; split larger batches)"
            )
        item, at = _DECODER.raw_decode(text, at)
        items.append(item)
        at = _BLANK.match(text, at).end()  # type: ignore[union-attr]
        if text.startswith("]", at):
            _end(text, at + 1)
            return items
        if not text.startswith(",", at):
            raise MessageError(f"not JSON (expected ',' or ']' at character {at})")
        at = _BLANK.match(text, at + 1).end()  # type: ignore[union-attr]


def _end(text: str, at: int) -> None:
    if _BLANK.match(text, at).end() != len(text):  # type: ignore[union-attr]
        raise MessageError(f"not JSON (extra data at character {at})")
