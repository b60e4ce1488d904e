"""The resolution levels of a stored image, read within its bounds.

One function opens them (:func:`open_levels`): a bare zarr array is one level in ``c, t, z, y,
x`` order; an OME-Zarr image group holds its levels (``attributes.ome.multiscales[0].datasets``,
full resolution first) in ``t, c, z, y, x`` order, y and x shrinking level by level.
:func:`pick_level` chooses the smallest level that still covers a view. Everything here blocks
(reads and decoding): call it in a worker thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from arkitekt_server.mikro import _storage as storage

__all__ = ["Level", "open_levels", "pick_level"]

_LEVEL_PATH = re.compile(r"[A-Za-z0-9_-]{1,64}")
_GROUP_AXES = ["t", "c", "z", "y", "x"]


@dataclass(frozen=True)
class Level:
    """One resolution level of an image.

    Attributes:
        array: the zarr array (read through a bounded store).
        axes: the order of its axes on disk: ``"ctzyx"`` (a bare array) or ``"tczyx"``.
        shape: its shape in ``c, t, z, y, x`` order, whatever ``axes`` is.

    """

    array: Any
    axes: str
    shape: tuple[int, int, int, int, int]

    @property
    def tile(self) -> tuple[int, int]:
        """The chunk height and width (y and x are the last two axes in both orders)."""
        chunks = self.array.chunks
        return int(chunks[3]), int(chunks[4])

    def read(self, c: int, t: int, z: int, rows: slice, cols: slice) -> np.ndarray[Any, Any]:
        """The ``(y, x)`` block of one plane: ``rows`` and ``cols`` of channel ``c``, time
        ``t``, plane ``z``."""
        first, second = (c, t) if self.axes == "ctzyx" else (t, c)
        return np.asarray(self.array[first, second, z, rows, cols])


def open_levels(location: storage.Location, verified: storage.Verified) -> list[Level]:
    """The levels of an image's store, full resolution first.

    Each is opened as the image's row describes it (:func:`~arkitekt_server.mikro._storage.
    open_bounded`): its ``zarr.json`` must be the verified one and every chunk is bounded by the
    row, never by what the store says now; a group's root ``zarr.json`` must be unchanged too.

    Args:
        location: where the store's keys are.
        verified: what the image's row says the store holds.

    Raises:
        StoreInvalidError: a document is missing or not the verified one, or codecs whose
            chunk sizes cannot be bounded.

    """
    specs = verified.arrays()
    if verified.levels is None:  # a store from before pyramids: one (c, t, z, y, x) array
        c, t, z, y, x = verified.shape
        return [Level(storage.open_bounded(location, verified), "ctzyx", (c, t, z, y, x))]
    storage.check_document("zarr.json", storage.read_meta_bytes(location), verified)
    levels = []
    for n, spec in enumerate(specs):
        t, c, z, y, x = spec.shape  # a group's levels are stored t, c, z, y, x
        levels.append(Level(storage.open_bounded(location, verified, n), "tczyx", (c, t, z, y, x)))
    return levels


def pick_level(
    levels: list[Level], region: tuple[int, int], view: tuple[int, int]
) -> tuple[int, Level]:
    """The smallest level whose y and x still cover a view of a region.

    Args:
        levels: the image's levels, full resolution first.
        region: the region's height and width in full-resolution pixels.
        view: the view's height and width in screen pixels.

    Returns:
        The level's index and the level (full resolution when no smaller level covers it).

    """
    full_y, full_x = levels[0].shape[3:]
    need_y, need_x = min(view[0], region[0]), min(view[1], region[1])
    best = 0
    for index, level in enumerate(levels):
        level_y, level_x = level.shape[3:]
        if region[0] * level_y / full_y >= need_y and region[1] * level_x / full_x >= need_x:
            best = index
    return best, levels[best]
