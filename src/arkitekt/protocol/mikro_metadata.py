"""Free-form metadata of mikro images: JSON values only, bounded in depth and size.

Re-exported by :mod:`arkitekt.protocol.mikro`, whose models check their ``metadata`` with
:func:`check_metadata`; the client checks its arguments with it before sending, the server
every body it receives, so both refuse the same metadata with the same message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from arkitekt.protocol.text import ECHO_CHARS, echo, unstorable

__all__ = ["MAX_METADATA_BYTES", "MAX_METADATA_DEPTH", "check_metadata"]

MAX_METADATA_BYTES = 1 << 20
"""The largest free-form metadata (as JSON) an image may carry."""
MAX_METADATA_DEPTH = 32
"""How deeply free-form metadata may nest (objects and lists; the top-level object is 1)."""


def _path(trail: list[str | int]) -> str:
    """``metadata.key[3].other``, each key cut short (a message never repeats a long key)."""
    parts = ["metadata"]
    for key in trail:
        parts.append(f"[{key}]" if isinstance(key, int) else f".{_short_key(key)}")
    return "".join(parts)


def _short_key(key: str) -> str:
    return key if len(key) <= ECHO_CHARS else echo(key)


def _children(item: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> Iterator[tuple[Any, Any]]:
    return iter(item.items()) if isinstance(item, dict) else enumerate(item)


def _check_leaf(item: object, trail: list[str | int]) -> None:
    if isinstance(item, str):
        if unstorable(item):
            raise ValueError(
                f"{_path(trail)} contains a NUL character or a lone surrogate, which stored "
                "JSON cannot keep; remove it"
            )
    elif isinstance(item, float) and not math.isfinite(item):
        raise ValueError(
            f"{_path(trail)} is {item}; JSON numbers must be finite (use None or a number)"
        )
    elif not isinstance(item, int | float | bool) and item is not None:
        raise ValueError(
            f"{_path(trail)} is a {type(item).__name__}, not a JSON value; use str, int, "
            "float, bool, None, lists and dicts (numpy values: .item() or .tolist())"
        )


def check_metadata(value: object) -> None:
    """Check free-form metadata: JSON types only, finite numbers, bounded depth and size.

    Walked depth first without recursion, keeping only the containers being walked (memory
    grows with the depth, not with the number of values), so a hostile nesting depth or
    width fails here clearly. The client checks its arguments with it before sending, the
    server every body it receives.

    Raises:
        ValueError: naming the path of the first offending value (``metadata...``) and the limit.

    Example:
        >>> check_metadata({"a": [1, 2.5, "x", None, True]})
        >>> check_metadata({"a": float("nan")})
        Traceback (most recent call last):
        ...
        ValueError: metadata.a is nan; JSON numbers must be finite (use None or a number)

    """
    trail: list[str | int] = []  # the key being walked at each level
    levels: list[Iterator[tuple[Any, Any]]] = []
    in_dict: list[bool] = []  # whether each level is an object (its keys must be strings)
    item: object = value
    while True:
        if isinstance(item, dict | list | tuple):
            if len(levels) + 1 > MAX_METADATA_DEPTH:
                raise ValueError(
                    f"{_path(trail)} nests deeper than {MAX_METADATA_DEPTH} levels of objects "
                    "and lists; flatten the metadata"
                )
            levels.append(_children(item))
            in_dict.append(isinstance(item, dict))
            trail.append(0)
        else:
            _check_leaf(item, trail)
        while levels:
            step = next(levels[-1], None)
            if step is not None:
                break
            levels.pop()
            in_dict.pop()
            trail.pop()
        else:
            break
        key, item = step
        if in_dict[-1] and not isinstance(key, str):
            raise ValueError(
                f"{_path(trail[:-1])} has the key {echo(key)} ({type(key).__name__}); keys "
                "must be strings (JSON)"
            )
        if in_dict[-1] and unstorable(key):
            raise ValueError(
                f"{_path(trail[:-1])} has a key with a NUL character or a lone surrogate; remove it"
            )
        trail[-1] = key
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except ValueError as error:  # an int of more digits than Python converts to text
        raise ValueError(f"metadata is not JSON-serialisable: {error}") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {size} bytes as JSON, more than {MAX_METADATA_BYTES} (store large "
            "data as an image or a file)"
        )
