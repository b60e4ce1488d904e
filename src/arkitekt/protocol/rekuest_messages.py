"""Messages of the rekuest websockets, as models: what is validated before it is acted on.

Re-exported by :mod:`arkitekt.protocol.rekuest` (which documents every message). Here are the
models of what an agent sends once registered (:func:`agent_message` validates one), of its
``register`` message, and of a caller's ``call`` and ``resume``; the kinds of error a caller
is told (:data:`ERROR_KINDS`) and the bounds of a call (:data:`MAX_SECONDS`,
:data:`MAX_RESUME_IDS`). How a message is encoded, and the limits of its size, are in
:mod:`arkitekt.protocol.rekuest_frames`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from arkitekt.protocol.rekuest_definitions import Definition
from arkitekt.protocol.rekuest_frames import MessageError, clip, problem

__all__ = [
    "ERROR_KINDS",
    "MAX_RESUME_IDS",
    "MAX_SECONDS",
    "AgentMessage",
    "CallMessage",
    "Cancelled",
    "Done",
    "Failed",
    "Log",
    "Progress",
    "RegisterMessage",
    "ResumeMessage",
    "Yield",
    "agent_message",
    "explain",
]

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

MAX_SECONDS = 86400.0
"""The longest ``wait`` and ``timeout`` a call may ask for (one day)."""
MAX_RESUME_IDS = 1000
"""The most call ids one ``resume`` message names (a caller sends several for more)."""


def explain(error: ValidationError) -> str:
    """A short, readable account of a validation error (one line per problem)."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "message"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


# -- what agents send (after ``register``) ----------------------------------------------------
_Id = Annotated[str, Field(min_length=1, max_length=64)]
_Text = Annotated[
    str, BeforeValidator(lambda value: clip(value) if isinstance(value, str) else value)
]
"""A text cut to ``MAX_TEXT_CHARS`` (an agent that sends more is not refused for it)."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True)


class Progress(_Message):
    """``progress``: how far an assignment is (``p``: 0 to 100) and/or what it does (``m``)."""

    t: Literal["progress"]
    id: _Id
    p: int | None = Field(default=None, ge=0, le=100)
    m: _Text | None = None


class Log(_Message):
    """``log``: a log line of an assignment."""

    t: Literal["log"]
    id: _Id
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    m: _Text = ""


class Yield(_Message):
    """``yield``: stream item ``n`` (numbered from 0) with value ``v``."""

    t: Literal["yield"]
    id: _Id
    n: int | None = Field(default=None, ge=0)
    v: Any = None


class Done(_Message):
    """``done``: the assignment finished with value ``v``."""

    t: Literal["done"]
    id: _Id
    v: Any = None


class Failed(_Message):
    """``error``: the function raised (``m``: the message, ``tb``: its traceback)."""

    t: Literal["error"]
    id: _Id
    m: _Text
    tb: _Text | None = None


class Cancelled(_Message):
    """``cancelled``: the assignment stopped after a ``cancel``."""

    t: Literal["cancelled"]
    id: _Id


AgentMessage = Annotated[
    Progress | Log | Yield | Done | Failed | Cancelled, Field(discriminator="t")
]
"""Any message a registered agent sends."""

_AGENT_MESSAGES: TypeAdapter[AgentMessage] = TypeAdapter(AgentMessage)


def agent_message(message: dict[str, Any]) -> AgentMessage:
    """Validate a decoded message of a registered agent.

    Raises:
        MessageError: it is not one of the agent's messages, or holds values it may not.

    """
    why = problem(message)
    if why is not None:
        raise MessageError(why)
    try:
        return _AGENT_MESSAGES.validate_python(message)
    except ValidationError as error:
        raise MessageError(explain(error)) from None


# -- what agents register with, and what callers send -----------------------------------------
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
    """A caller's ``call`` message (see :mod:`arkitekt.protocol.rekuest`).

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
