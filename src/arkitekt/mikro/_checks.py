"""Checks of the mikro API's arguments: every bad value fails here, before any request.

Each check raises :class:`~arkitekt.errors.InvalidImageError` naming the argument, what
was wrong with it and what to pass instead. Bounds are read from the wire models
(:mod:`arkitekt.protocol.mikro`) where the models declare them, so client and server agree;
the bounds the models do not declare are defined here.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from annotated_types import MaxLen
from pydantic import BaseModel

from arkitekt.errors import InvalidImageError
from arkitekt.protocol import mikro as wire
from arkitekt.protocol.mikro import (
    MAX_ID_CHARS,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TAG_CHARS,
    Datalayer,
    DatasetIn,
    ImageFields,
    PixelSize,
)
from arkitekt.protocol.text import echo

__all__ = [
    "MAX_ID_CHARS",
    "MAX_OFFSET",
    "MAX_PAGE",
    "MAX_TAG_CHARS",
    "check_bool",
    "check_datalayer",
    "check_id",
    "check_ids",
    "check_metadata",
    "check_page",
    "check_pixel_size",
    "check_text",
    "check_texts",
    "max_length",
]


def max_length(model: type[BaseModel], field: str) -> int:
    """The ``max_length`` a wire model declares for ``field`` (one source for both sides)."""
    for item in model.model_fields[field].metadata:
        if isinstance(item, MaxLen):
            return int(item.max_length)
    raise LookupError(f"{model.__name__}.{field} declares no max_length")


_LINE_BREAKS = frozenset("\t\n\r")


def _bad_char(text: str, *, multiline: bool) -> str | None:
    """The first control character or lone surrogate in ``text`` (as ``repr``), if any."""
    for char in text:
        if multiline and char in _LINE_BREAKS:
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            return repr(char)
    return None


def check_text(
    value: Any,
    argument: str,
    *,
    max_chars: int,
    blank: bool = False,
    multiline: bool = False,
) -> str:
    """A string argument: a ``str`` of at most ``max_chars``, without control characters.

    Args:
        value: what the caller passed.
        argument: its name, for the message.
        max_chars: the longest accepted.
        blank: whether an empty or whitespace-only string is accepted.
        multiline: whether tabs and line breaks are accepted.

    """
    if not isinstance(value, str):
        raise InvalidImageError(
            f"{argument} must be a string, not {type(value).__name__} ({echo(value)}): pass a "
            "non-empty name or text"
        )
    if len(value) > max_chars:
        raise InvalidImageError(
            f"{argument} is {len(value)} characters long; at most {max_chars} are accepted"
        )
    if not blank and not value.strip():
        raise InvalidImageError(
            f"{argument} must not be blank (a non-empty name or text), got {echo(value)}"
        )
    bad = _bad_char(value, multiline=multiline)
    if bad is not None:
        raise InvalidImageError(
            f"{argument} contains the control character {bad}; remove it (names and search "
            "strings are plain text)"
        )
    return value


def check_texts(values: Any, argument: str, *, max_items: int | None, max_chars: int) -> list[str]:
    """A list of non-blank strings (tags, channel names); one string alone is refused."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidImageError(
            f"{argument} must be a list of strings, not {type(values).__name__} ({echo(values)})"
        )
    if max_items is not None and len(values) > max_items:
        raise InvalidImageError(f"{argument} has {len(values)} items; at most {max_items}")
    return [
        check_text(value, f"{argument}[{index}]", max_chars=max_chars)
        for index, value in enumerate(values)
    ]


def check_id(value: Any, argument: str, kinds: tuple[type[BaseModel], ...] = ()) -> str:
    """An id, or a model of one of ``kinds`` (its ``id``)."""
    if kinds and isinstance(value, kinds):
        return str(value.id)  # type: ignore[attr-defined]
    if not isinstance(value, str) or not value.strip():
        names = " or ".join(["an id (str)", *(kind.__name__ for kind in kinds)])
        raise InvalidImageError(f"{argument} must be {names}, not {echo(value)}")
    return check_text(value, argument, max_chars=MAX_ID_CHARS)


def check_ids(
    values: Any, argument: str, kinds: tuple[type[BaseModel], ...], *, max_items: int | None
) -> list[str]:
    """A list of ids or models (``origins``)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidImageError(
            f"{argument} must be a list of ids or images, not {type(values).__name__}"
        )
    if max_items is not None and len(values) > max_items:
        raise InvalidImageError(f"{argument} has {len(values)} items; at most {max_items}")
    return [check_id(value, f"{argument}[{i}]", kinds) for i, value in enumerate(values)]


def check_bool(value: Any, argument: str) -> bool:
    """A real ``bool`` (``"yes"`` or ``1`` are refused, not guessed at)."""
    if not isinstance(value, bool):
        raise InvalidImageError(
            f"{argument} must be True or False, not {type(value).__name__} ({echo(value)})"
        )
    return value


def check_int(value: Any, argument: str, low: int, high: int) -> int:
    """An ``int`` (not a bool, not a string of digits) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidImageError(
            f"{argument} must be an int in {low}..{high}, not {type(value).__name__} "
            f"({echo(value)})"
        )
    if not low <= value <= high:
        raise InvalidImageError(f"{argument} must be in {low}..{high}, not {value}")
    return value


def check_page(limit: Any, offset: Any) -> tuple[int, int]:
    """``limit`` and ``offset`` of a search page."""
    return check_int(limit, "limit", 1, MAX_PAGE), check_int(offset, "offset", 0, MAX_OFFSET)


def check_datalayer(value: Any) -> Datalayer | None:
    """``None`` or one of the datalayers a client can write to."""
    layers = get_args(Datalayer)
    if value is not None and value not in layers:
        raise InvalidImageError(
            f"datalayer must be {' or '.join(map(repr, layers))} (or None), not {echo(value)}"
        )
    return value  # type: ignore[no-any-return]


def check_pixel_size(value: Any) -> PixelSize:
    """A :class:`PixelSize`, or a mapping of axis (x, y, z, t) to a positive finite number."""
    if value is None:
        return PixelSize()
    if isinstance(value, PixelSize):
        return value
    if not isinstance(value, Mapping):
        raise InvalidImageError(
            "pixel_size must be a PixelSize or a mapping like {'x': 0.1, 'y': 0.1} "
            f"(µm per pixel), not {type(value).__name__} ({echo(value)})"
        )
    axes = tuple(PixelSize.model_fields)
    sizes: dict[str, float] = {}
    for axis, size in value.items():
        if axis not in axes:
            raise InvalidImageError(
                f"pixel_size has the axis {echo(axis)}; the axes are {', '.join(axes)}"
            )
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int | float):
            raise InvalidImageError(
                f"pixel_size[{axis!r}] must be a number, not {type(size).__name__} ({echo(size)})"
            )
        if not math.isfinite(size) or size <= 0:
            raise InvalidImageError(
                f"pixel_size[{axis!r}] must be a positive finite number, not {size!r}"
            )
        sizes[axis] = float(size)
    return PixelSize(**sizes)


def check_metadata(value: Any) -> dict[str, Any]:
    """Free-form metadata: a JSON object of plain values, bounded in depth and size.

    The wire's own check (:func:`arkitekt.protocol.mikro.check_metadata`), the one the server
    applies too, so what passes here is what the server accepts.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidImageError(
            f"metadata must be a dict (a JSON object), not {type(value).__name__} "
            f"({echo(value)}); wrap it, e.g. {{'values': [...]}}"
        )
    metadata = dict(value)
    try:
        wire.check_metadata(metadata)
    except ValueError as error:
        raise InvalidImageError(str(error)) from None
    return metadata


NAME_CHARS = max_length(ImageFields, "name")
"""The longest image name (and name search string)."""

MAX_TAGS = max_length(ImageFields, "tags")
MAX_ORIGINS = max_length(ImageFields, "origins")
DATASET_NAME_CHARS = max_length(DatasetIn, "name")
DESCRIPTION_CHARS = max_length(DatasetIn, "description")
