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

Each name here is defined in one of three modules and re-exported: the limits and the
bounded encoding of frames (:mod:`arkitekt.protocol.rekuest_frames`), definitions, ports and
argument checks (:mod:`arkitekt.protocol.rekuest_definitions`), and the message models
(:mod:`arkitekt.protocol.rekuest_messages`).

Limits: frames of at most
:data:`MAX_FRAME_BYTES` and :data:`MAX_FRAME_MESSAGES` messages, messages of at most
:data:`MAX_MESSAGE_BYTES` encoded, values nested at most :data:`MAX_DEPTH` deep, finite numbers
only (integers below :data:`MAX_INT_MAGNITUDE`; ``int`` ports take 64-bit ones), texts cut
to :data:`MAX_TEXT_CHARS`. The server validates every message of an agent
(:func:`agent_message`, and results against the definition's return port); a bad one fails its
own assignment only.
"""

from __future__ import annotations

from arkitekt.protocol.rekuest_definitions import (
    INT_MAX,
    INT_MIN,
    ArgumentsInvalid,
    Definition,
    Port,
    PortKind,
    argument_problem,
    bind_arguments,
    check_value,
    has_structure,
)
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
    MessageError,
    clip,
    dumps,
    encode,
    frames,
    loads,
    may_hold_big_messages,
    problem,
)
from arkitekt.protocol.rekuest_messages import (
    ERROR_KINDS,
    MAX_RESUME_IDS,
    MAX_SECONDS,
    AgentMessage,
    CallMessage,
    RegisterMessage,
    ResumeMessage,
    agent_message,
    explain,
)

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
