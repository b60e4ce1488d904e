"""What a caller checks before sending a call: arguments that can travel, bounded waits.

Each refusal is a :class:`~arkitekt.errors.BadArgumentsError` naming the argument (or
option; a call too big as a whole names its size), raised before anything is sent, so that
one bad call never reaches the connection.
"""

from __future__ import annotations

import math
from typing import Any

from arkitekt.errors import BadArgumentsError
from arkitekt.protocol.rekuest import MAX_SECONDS, MessageError, argument_problem, encode
from arkitekt.rekuest._structures import shrink_any

__all__ = ["check_seconds", "encode_call", "shrink_argument"]


def shrink_argument(function: str, where: str, value: Any) -> Any:
    """One argument as JSON (structures as ids); refused naming the argument."""
    try:
        return shrink_any(value)
    except (TypeError, RecursionError) as error:
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BadArgumentsError(f"{function}(): {where}: {problem}") from None


def encode_call(function: str, message: dict[str, Any]) -> str:
    """The ``call`` message encoded, before anything is sent; refused naming the argument.

    Raises:
        BadArgumentsError: an argument holds a non-finite number, an integer too large for
            any number port, or nests too deeply, or the call is bigger than
            ``MAX_MESSAGE_BYTES``.

    """
    bad = argument_problem(message["args"], message["kwargs"])
    if bad is not None:
        raise BadArgumentsError(f"{function}(): {bad[0]} cannot be sent: {bad[1]}")
    try:
        return encode(message)
    except MessageError as error:  # too big, or a value JSON cannot carry
        raise BadArgumentsError(f"{function}(): the call cannot be sent: {error}") from None


def check_seconds(name: str, value: float, *, zero: bool) -> None:
    """Refuse a ``wait``/``timeout`` the server would refuse, before anything is sent."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (
        number
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
        and value <= MAX_SECONDS
    ):
        above = "0 or more" if zero else "above 0"
        raise BadArgumentsError(
            f"{name} must be a finite number of seconds, {above} and at most {MAX_SECONDS:g} "
            f"(one day); got {value!r}"
        )
