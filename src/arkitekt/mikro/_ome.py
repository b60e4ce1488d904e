"""Where each pyramid level of a stored image is, and how its axes map to the API's.

An image's store is an OME-Zarr 0.5 image group (:mod:`arkitekt.protocol.ome`): level ``n`` is
the array at path ``"<n>"``, its dims (t, c, z, y, x). A store from before pyramids (its record
lists no ``level_chunks``) is one array at the root, already (c, t, z, y, x).
"""

from __future__ import annotations

from arkitekt.errors import InvalidImageError
from arkitekt.protocol.mikro import ImageRecord

__all__ = ["API_AXES", "level_count", "level_path", "stored_axes"]

API_AXES = (1, 0, 2, 3, 4)
"""Transposing a (t, c, z, y, x) level array by these axes gives (c, t, z, y, x)."""


def level_count(image: ImageRecord) -> int:
    """How many levels the image's store holds."""
    return len(image.level_chunks) or 1


def level_path(image: ImageRecord, level: int) -> str:
    """The path of level ``level`` in the image's store.

    Raises:
        InvalidImageError: no such level (naming how many there are).

    """
    count = level_count(image)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < count:
        raise InvalidImageError(
            f"image {image.id!r} has {count} level(s): pass a level from 0 to {count - 1}, "
            f"not {level!r}"
        )
    return str(level) if image.level_chunks else ""


def stored_axes(image: ImageRecord) -> tuple[int, ...]:
    """The transposition from a level array's axes as stored to (c, t, z, y, x)."""
    return API_AXES if image.level_chunks else (0, 1, 2, 3, 4)
