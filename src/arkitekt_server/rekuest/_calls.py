"""Checking a ``call`` message, whichever way it came (caller websocket or HTTP): one check."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from arkitekt.protocol.rekuest import (
    CallMessage,
    MessageError,
    RegisterMessage,
    argument_problem,
    encode,
    explain,
)
from arkitekt.protocol.rekuest_frames import MessageTooBig
from arkitekt_server._errors import ArkitektServerError

__all__ = ["HubError", "check_call", "check_register"]


class HubError(ArkitektServerError):
    """A request the hub refuses (the message says why).

    Attributes:
        status: the HTTP status that fits: 422 (malformed), 413 (too big), 429 (over a limit
            of the caller's app).

    """

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def check_call(msg: dict[str, Any]) -> tuple[CallMessage, dict[str, Any], int]:
    """The parsed call, its keyword arguments and its encoded size.

    Raises:
        HubError: malformed (422: a field, a non-finite or too large number, too deep), or
            bigger than ``MAX_MESSAGE_BYTES`` encoded (413).

    """
    try:
        message = CallMessage.model_validate(msg)
    except ValidationError as error:
        raise HubError(f"invalid call: {explain(error)}") from None
    kwargs = msg.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise HubError("invalid call: kwargs: must be an object")
    culprit = argument_problem(message.args or [], kwargs)
    if culprit is not None:
        raise HubError(f"invalid call: {culprit[0]}: {culprit[1]}")
    try:  # the one size check of a call
        size = len(encode(msg))
    except MessageTooBig as error:
        raise HubError(f"invalid call: {error}", 413) from None
    except MessageError as error:
        raise HubError(f"invalid call: {error}") from None
    return message, kwargs, size


def check_register(msg: dict[str, Any]) -> RegisterMessage:
    """Validate an agent's first message, ``register``, all of it.

    Raises:
        HubError: it is not ``register``, or it is invalid (the message says which part).

    """
    if msg.get("t") != "register":
        raise HubError("the first message of an agent must be `register`")
    try:
        return RegisterMessage.model_validate(msg)
    except ValidationError as error:
        only = all(item["loc"][:1] == ("definitions",) for item in error.errors())
        what = "definitions" if only else "registration"
        raise HubError(f"invalid {what}: {explain(error)}") from None
