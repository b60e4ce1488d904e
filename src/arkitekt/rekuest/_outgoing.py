"""What an agent sends about an assignment, encoded and checked against the protocol's limits.

A result that cannot travel (too big, a non-finite number) becomes an error for its assignment
before the agent keeps it, so that everything the agent keeps is a message the server accepts.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from arkitekt.errors import RekuestError
from arkitekt.protocol.rekuest import MAX_MESSAGE_BYTES, MessageError, clip, encode

__all__ = ["cancelled_message", "error_message", "sendable", "unsendable"]

log = logging.getLogger("arkitekt.rekuest.agent")


def error_message(id: str, error: BaseException) -> str:
    """The ``error`` message of an assignment, its texts cut to ``MAX_TEXT_CHARS``."""
    message = clip(f"{type(error).__name__}: {error}")
    return encode(
        {
            "t": "error",
            "id": id,
            "m": message,
            "tb": clip("".join(traceback.format_exception(error))),
        }
    )


def cancelled_message(id: str) -> str:
    """The ``cancelled`` message of an assignment (the outcome of a cancelled run)."""
    return encode({"t": "cancelled", "id": id})


def sendable(message: dict[str, Any], what: str) -> str:
    """``message`` encoded, or (it cannot travel) an error for its assignment.

    Raises:
        RekuestError: naming ``what``, why, and what to do instead.

    """
    try:
        return encode(message)
    except MessageError as error:
        raise RekuestError(
            f"{what} cannot be sent: {error} (a value travels as JSON of at most "
            f"{MAX_MESSAGE_BYTES // (1024 * 1024)} MiB with finite numbers; return large data as "
            "a structure, such as an image, instead)"
        ) from None


def unsendable(message: Any, error: MessageError) -> None:
    """Drop a progress or log message that cannot be encoded (results are checked before)."""
    log.warning("rekuest agent: dropped a %r message: %s", message.get("t"), error)
