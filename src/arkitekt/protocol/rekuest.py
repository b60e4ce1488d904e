"""The rekuest wire protocol: definitions, ports, argument validation, message shapes.

Shared by the client (``arkitekt.rekuest``) and the server (``arkitekt_server.rekuest``); it
imports nothing else of either.

Both websockets (``/rekuest/agent/ws`` for agents, ``/rekuest/caller/ws`` for callers) carry
text frames, each a JSON array of messages (a sender batches whatever is queued into one frame).
Every message is an object with a type ``t``:

Agent to server:
    ``register`` (``instance``, ``definitions``, ``holding``: ids the agent still runs or holds
    unacknowledged results of), ``progress`` (``id``, ``p``, ``m``), ``log`` (``id``,
    ``level``, ``m``), ``yield`` (``id``, ``n``: sequence number, ``v``), and the terminal
    ``done`` (``id``, ``v``), ``error`` (``id``, ``m``, ``tb``) and ``cancelled`` (``id``).

Server to agent:
    ``registered`` (``agent``), ``assign`` (``id``, ``f``, ``a``: validated arguments),
    ``cancel`` (``id``), ``ack`` (``ids``: results now stored; the agent forgets them),
    ``refused`` (``id``: the assignment concerned or ``null``, ``m``: why a message or frame of
    the agent was refused; the assignment, if any, failed and is acknowledged),
    ``fatal`` (``m``: the server refuses the agent; it closes the socket).

Caller to server:
    ``call`` (``id``: a fresh uuid chosen by the caller, ``f``, ``args``, ``kwargs``,
    ``agent``, ``wait``, ``stream``, ``events``, ``timeout``), ``cancel`` (``id``), and
    ``resume`` (``ids``: at most :data:`MAX_RESUME_IDS` calls made on an earlier connection
    that the caller still waits for; after a reconnect, to any replica).

Server to caller:
    ``ready`` (first, once the token is accepted), ``progress`` and ``log`` (only with
    ``events``), ``yield`` (``id``, ``n``: the item's number, from 0, so that a caller that
    resumed drops an item it got before, ``v``), ``done`` (``id``, ``v``), ``error`` (``id``,
    ``kind``: one of :data:`ERROR_KINDS`, ``m``, ``tb``). Results (``done``, ``yield``) of a
    function with a return port also carry ``r``, that port: the caller checks the value
    against it and fetches the structures in it back. A resumed call that finished is
    answered at once; one the server does not know fails with ``kind`` ``unknown``.

Limits (:mod:`arkitekt.protocol.rekuest_frames`, re-exported here): frames of at most
:data:`MAX_FRAME_BYTES` and :data:`MAX_FRAME_MESSAGES` messages, messages of at most
:data:`MAX_MESSAGE_BYTES` encoded, values nested at most :data:`MAX_DEPTH` deep, finite numbers
only (integers below :data:`MAX_INT_MAGNITUDE`; ``int`` ports take 64-bit ones), texts cut
to :data:`MAX_TEXT_CHARS`. The server validates every message of an agent
(:func:`agent_message`, and results against the definition's return port); a bad one fails its
own assignment only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arkitekt.protocol.rekuest_frames import (
    CLOSE_OUTBOX_FULL,
    CLOSE_TOKEN_REFUSED,
    MAX_DEPTH,
    MAX_ENCODED_GROWTH,
    MAX_FRAME_BYTES,
    MAX_FRAME_CONTAINERS,
    MAX_FRAME_MESSAGES,
    MAX_INT_MAGNITUDE,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CONTAINERS,
    MAX_TEXT_CHARS,
    AgentMessage,
    MessageError,
    agent_message,
    clip,
    dumps,
    encode,
    explain,
    frames,
    loads,
    may_hold_big_messages,
    problem,
)
from arkitekt.protocol.text import echo

__all__ = [
    "CLOSE_OUTBOX_FULL",
    "CLOSE_TOKEN_REFUSED",
    "ERROR_KINDS",
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "MAX_ENCODED_GROWTH",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_CONTAINERS",
    "MAX_FRAME_MESSAGES",
    "MAX_INT_MAGNITUDE",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_CONTAINERS",
    "MAX_RESUME_IDS",
    "MAX_SECONDS",
    "MAX_TEXT_CHARS",
    "AgentMessage",
    "ArgumentsInvalid",
    "CallMessage",
    "Definition",
    "MessageError",
    "Port",
    "PortKind",
    "RegisterMessage",
    "ResumeMessage",
    "agent_message",
    "argument_problem",
    "bind_arguments",
    "check_value",
    "clip",
    "dumps",
    "encode",
    "explain",
    "frames",
    "has_structure",
    "loads",
    "may_hold_big_messages",
    "problem",
]

PortKind = Literal["int", "float", "str", "bool", "list", "dict", "enum", "structure"]

ERROR_KINDS = (
    "remote",
    "invalid",
    "no_agent",
    "lost",
    "cancelled",
    "timeout",
    "refused",
    "unknown",
)
"""Why an assignment failed: the function raised (``remote``), bad arguments (``invalid``), no
agent online (``no_agent``), its agent vanished for too long (``lost``), it was cancelled,
timed out, the server refused the request (``refused``), or a resumed call is not known to
the server (``unknown``: never stored, or pruned)."""

INT_MIN = -(2**63)
"""The smallest value a port of kind ``int`` takes (64-bit, as databases and most languages
store integers)."""
INT_MAX = 2**63 - 1
"""The largest value a port of kind ``int`` takes."""

MAX_SECONDS = 86400.0
"""The longest ``wait`` and ``timeout`` a call may ask for (one day)."""
MAX_RESUME_IDS = 1000
"""The most call ids one ``resume`` message names (a caller sends several for more)."""


class Port(BaseModel):
    """One argument or return value of a function.

    Attributes:
        key: the parameter name (``"return"`` / ``"yield"`` for results).
        kind: what travels: a JSON scalar, a list or dict of ``children[0]``, an enum member's
            name (one of ``choices``), or a structure's id (``identifier`` names the structure).
        nullable: ``None`` is allowed.
        required: no default exists (only for arguments).
        default: the JSON default when not required.
        children: the item (list) or value (dict) port.
        choices: the enum member names.
        identifier: the structure type, e.g. ``"@mikro/image"``.
        description: from the docstring.

    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    kind: PortKind
    nullable: bool = False
    required: bool = True
    default: Any = None
    children: list[Port] = Field(default_factory=list)
    choices: list[str] | None = Field(default=None, max_length=1000)
    identifier: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _check_structure(self) -> Port:
        """Refuse ports that cannot describe a value (so a bad definition fails at once)."""
        where = f"port {self.key!r}"
        if self.kind in ("list", "dict"):
            if len(self.children) != 1:
                raise ValueError(
                    f"{where}: a {self.kind} port needs exactly one child port (its item), "
                    f"got {len(self.children)}"
                )
        elif self.children:
            raise ValueError(f"{where}: a {self.kind} port has no child ports")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"{where}: an enum port needs its choices")
        if self.kind == "structure" and not self.identifier:
            raise ValueError(f"{where}: a structure port needs its identifier")
        return self


class Definition(BaseModel):
    """What a registered function is: name, description, argument and return ports.

    Attributes:
        name: the name callers use.
        description: the docstring's text without its sections.
        args: the argument ports, in signature order.
        returns: zero or one return port (the yielded item's port for streams).
        stream: a generator: callers ``iterate`` over its items.

    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    args: list[Port] = Field(default_factory=list, max_length=200)
    returns: list[Port] = Field(default_factory=list, max_length=1)
    stream: bool = False


class RegisterMessage(BaseModel):
    """An agent's first message: who it is, what it provides, what it still holds.

    Attributes:
        t: always ``"register"``.
        instance: the agent's instance name (one app may serve several).
        definitions: the functions it provides (names unique).
        holding: ids of assignments it still runs or holds unacknowledged results of.

    """

    t: Literal["register"]
    instance: str = Field(default="default", min_length=1, max_length=100)
    definitions: list[Definition] = Field(default_factory=list)
    holding: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RegisterMessage:
        if len({d.name for d in self.definitions}) != len(self.definitions):
            raise ValueError("two definitions share a name")
        return self


class CallMessage(BaseModel):
    """A caller's ``call`` message (see the module's documentation).

    Attributes:
        t: always ``"call"``.
        id: a fresh id the caller chose (a uuid).
        f: the function's name.
        args: positional arguments (a list; keyword arguments, ``kwargs``, are an object the
            server checks itself: a field of that name cannot be declared here).
        agent: only agents of this app identifier (or agent key).
        wait: seconds to wait for an agent to come online (0: fail at once).
        stream: the caller iterates (the function must be a stream).
        events: the caller wants ``progress`` and ``log`` messages.
        timeout: seconds until the assignment is cancelled (``None``: no limit).

    """

    t: Literal["call"]
    id: str = Field(min_length=8, max_length=64)
    f: str = Field(min_length=1, max_length=200)
    args: list[Any] | None = None
    agent: str | None = Field(default=None, max_length=300)
    wait: float | None = Field(default=0.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    stream: bool = False
    events: bool = False
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS, allow_inf_nan=False)


class ResumeMessage(BaseModel):
    """A caller's ``resume`` message: calls of an earlier connection it still waits for.

    Attributes:
        t: always ``"resume"``.
        ids: their ids (as in their ``call`` messages), at most :data:`MAX_RESUME_IDS`.

    """

    model_config = ConfigDict(extra="forbid")

    t: Literal["resume"]
    ids: list[Annotated[str, Field(min_length=8, max_length=64)]] = Field(
        min_length=1, max_length=MAX_RESUME_IDS
    )


class ArgumentsInvalid(ValueError):
    """Arguments do not match a definition (the message says which and why)."""


def has_structure(port: Port) -> bool:
    """Whether a structure travels somewhere inside ``port``."""
    return port.kind == "structure" or any(has_structure(child) for child in port.children)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {echo(value)}"


def check_value(port: Port, value: Any, where: str) -> Any:
    """Check one JSON value against ``port``; return it normalised (ints become floats).

    Raises:
        ArgumentsInvalid: naming ``where`` (e.g. ``"argument 'level'"``) and the problem.

    """
    if value is None:
        if port.nullable:
            return None
        raise ArgumentsInvalid(f"{where}: may not be null")
    kind = port.kind
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise ArgumentsInvalid(
                    f"{where}: expected a 64-bit integer (-2**63 to 2**63-1), got an integer "
                    f"of {value.bit_length()} bits"
                )
            return value
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond a float's range
                number = math.inf
            if not math.isfinite(number):
                shown = _describe(value) if isinstance(value, float) else "a larger integer"
                raise ArgumentsInvalid(f"{where}: expected a finite number, got {shown}")
            return number
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "enum":
        if isinstance(value, str) and value in (port.choices or []):
            return value
        raise ArgumentsInvalid(
            f"{where}: expected one of {', '.join(map(repr, port.choices or []))}, "
            f"got {_describe(value)}"
        )
    elif kind == "structure":
        if isinstance(value, str) and value:
            return value
        raise ArgumentsInvalid(
            f"{where}: expected a {port.identifier} (its id), got {_describe(value)}"
        )
    elif kind == "list":
        if isinstance(value, list):
            return [check_value(port.children[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif kind == "dict" and isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentsInvalid(f"{where}: keys must be strings, got {_describe(key)}")
            out[key] = check_value(port.children[0], item, f"{where}[{key!r}]")
        return out
    raise ArgumentsInvalid(f"{where}: expected {kind}, got {_describe(value)}")


def argument_problem(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """Which argument of a call cannot travel and why (see :func:`problem`), or ``None``.

    Used by callers before sending and by the server for every call it gets.
    """
    named = [(f"positional argument {n}", value) for n, value in enumerate(args)]
    named += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for where, value in named:
        if (why := problem(value)) is not None:
            return where, why
    return None


def bind_arguments(
    definition: Definition, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Bind positional and keyword arguments to ``definition``'s ports, checked and complete.

    Defaults fill missing optional arguments, so the agent receives every argument.

    Raises:
        ArgumentsInvalid: too many, unknown, missing or mistyped arguments.

    """
    ports = definition.args
    name = definition.name
    if len(args) > len(ports):
        raise ArgumentsInvalid(
            f"{name}() takes {len(ports)} argument(s) but {len(args)} were given positionally"
        )
    given: dict[str, Any] = {port.key: value for port, value in zip(ports, args, strict=False)}
    known = {port.key for port in ports}
    for key, value in kwargs.items():
        if key not in known:
            raise ArgumentsInvalid(
                f"{name}() got an unexpected argument {key!r} "
                f"(it takes: {', '.join(sorted(known)) or 'no arguments'})"
            )
        if key in given:
            raise ArgumentsInvalid(f"{name}() got multiple values for argument {key!r}")
        given[key] = value
    bound: dict[str, Any] = {}
    for port in ports:
        if port.key in given:
            bound[port.key] = check_value(port, given[port.key], f"argument {port.key!r}")
        elif port.required:
            raise ArgumentsInvalid(f"{name}() is missing the required argument {port.key!r}")
        else:
            bound[port.key] = port.default
    return bound
