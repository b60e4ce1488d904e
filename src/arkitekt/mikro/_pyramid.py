"""The pyramid of an upload, one write unit at a time.

Each unit's image on every level, and the display range of each channel.

Level ``n`` holds every ``2**n``-th pixel of level 0 along y and x (``nearest``, see
:mod:`arkitekt.protocol.ome`). A write unit starts at a multiple of ``2**(levels - 1)`` along
y and x (:class:`~arkitekt.mikro._normalize.Prepared`), so its image on level ``n`` is
``block[..., ::2**n, ::2**n]``. On a level whose chunks are parts of a unit's image, the unit
writes them itself; on a level whose chunks hold several units' images, :class:`Pyramid` copies
each image into its chunk's buffer and hands the chunk out once its last unit is in. No chunk
is written twice. The copies are made in a worker thread (:meth:`Pyramid.fill`): given a
strided view, zarr would make them itself, on the event loop (its bytes codec is synchronous).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arkitekt.protocol.ome import disk_order, level_shape

if TYPE_CHECKING:
    import numpy as np

    from arkitekt.mikro._normalize import Prepared

__all__ = ["Pyramid", "Window", "Write", "halved"]

Region = tuple[slice, ...]
Write = tuple[int, Region, "np.ndarray[Any, Any]"]
"""One write: the level, the region on it and the block, both in disk order (t, c, z, y, x)."""


def halved(
    block: np.ndarray[Any, Any], out: np.ndarray[Any, Any] | None = None
) -> np.ndarray[Any, Any]:
    """``block[..., ::2, ::2]``, the next level's image of a block, copied into ``out``.

    ``out`` (a new C-contiguous array if not given) may be a view into a chunk's buffer.
    Every other row is read whole; within a row, each pair of pixels is read as one unsigned
    integer twice as wide and cast to the narrow one, which keeps the pair's first pixel on a
    little-endian machine: a vectorised cast, about twice as fast as numpy's strided copy
    (which it falls back to for odd widths, 8-byte pixels and big-endian machines).
    """
    import numpy as np

    rows = block[..., ::2, :]
    if out is None:
        out = np.empty(rows[..., ::2].shape, block.dtype)
    size, width = block.dtype.itemsize, block.shape[-1]
    if (
        sys.byteorder != "little"
        or size > 4
        or width % 2
        or not block.dtype.isnative
        or rows.strides[-1] != size
        or out.strides[-1] != size
    ):
        np.copyto(out, rows[..., ::2])
    else:
        np.copyto(out.view(f"u{size}"), rows.view(f"u{2 * size}"), casting="unsafe")
    return out


def _image(region: Region, level: int) -> Region:
    """A unit's region (c, t, z, y, x) on level ``level``."""
    step = 1 << level
    y, x = region[3], region[4]
    return (
        *region[:3],
        slice(y.start // step, -(-y.stop // step)),
        slice(x.start // step, -(-x.stop // step)),
    )


class Pyramid:
    """The lower levels of one upload: which unit writes what, and the chunks being filled.

    Use it from the event loop, except :meth:`fill` (a worker thread, one call per unit):
    :meth:`plan` before a unit is computed, :meth:`fill` with its block, :meth:`finish` after,
    and :meth:`release` for each chunk :meth:`finish` handed out once it is written: its buffer
    then takes a later chunk (fresh memory is slow to map on small VMs).
    """

    def __init__(self, prepared: Prepared) -> None:
        self._dtype = prepared.dtype
        self._levels = prepared.levels
        self._chunks = prepared.level_chunks[: self._levels]
        self._extents = [level_shape(prepared.shape, n) for n in range(self._levels)]
        self._shared = [  # chunks larger than a unit's image on that level
            n > 0 and math.prod(chunks) > math.prod(level_shape(prepared.unit, n))
            for n, chunks in enumerate(self._chunks)
        ]
        self._shape = prepared.shape
        self._unit = prepared.unit
        self._filling: list[dict[tuple[int, ...], _Filling]] = [{} for _ in self._chunks]
        self._spare: dict[tuple[int, ...], list[Any]] = {}

    def release(self, buffer: Any) -> None:
        """Take back a written chunk's buffer for a later chunk of the same shape."""
        spare = self._spare.setdefault(buffer.shape, [])
        if len(spare) < 2:
            spare.append(buffer)

    def _shared_levels(self) -> list[int]:
        return [n for n, shared in enumerate(self._shared) if shared]

    def _chunk(self, level: int, region: Region) -> tuple[int, ...]:
        image = _image(region, level)
        return tuple(
            part.start // size for part, size in zip(image, self._chunks[level], strict=True)
        )

    def _units_in(self, level: int, where: Region) -> int:
        """How many units have their image in the chunk at ``where`` on level ``level``."""
        count = 1
        for axis, part in enumerate(where):
            scale = 1 << level if axis >= 3 else 1
            low, high = part.start * scale, min(part.stop * scale, self._shape[axis])
            size = self._unit[axis]
            count *= -(-high // size) - -(-low // size)
        return count

    def _chunk_region(self, level: int, index: tuple[int, ...]) -> Region:
        return tuple(
            slice(i * size, min((i + 1) * size, extent))
            for i, size, extent in zip(
                index, self._chunks[level], self._extents[level], strict=True
            )
        )

    def plan(self, region: Region) -> list[tuple[Any, Region] | None]:
        """Where ``region``'s image goes on each level: a chunk buffer and the place in it.

        ``None`` for levels where the unit writes its image itself.
        """
        import numpy as np

        targets: list[tuple[Any, Region] | None] = []
        for n in range(self._levels):
            if not self._shared[n]:
                targets.append(None)
                continue
            index = self._chunk(n, region)
            where = self._chunk_region(n, index)
            filling = self._filling[n].get(index)
            if filling is None:
                shape = tuple(disk_order([part.stop - part.start for part in where]))
                spare = self._spare.get(shape)
                buffer = spare.pop() if spare else np.empty(shape, self._dtype)
                filling = self._filling[n][index] = _Filling(buffer, self._units_in(n, where))
            image = _image(region, n)
            inside = tuple(
                slice(part.start - chunk.start, part.stop - chunk.start)
                for part, chunk in zip(image, where, strict=True)
            )
            targets.append((filling.buffer, tuple(disk_order(inside))))
        return targets

    @staticmethod
    def fill(
        region: Region, block: np.ndarray[Any, Any], targets: list[tuple[Any, Region] | None]
    ) -> list[Write]:
        """Copy ``block``'s images into their buffers; return the unit's own writes.

        Blocking (run it in a worker thread). The unit's own writes are C-contiguous.
        """
        import numpy as np

        writes: list[Write] = []
        above = block  # the unit's image on the level above, where it was put
        for level, target in enumerate(targets):
            if target is None:
                image = halved(above) if level else block
                where = tuple(disk_order(_image(region, level)))
                writes.append((level, where, np.ascontiguousarray(image.swapaxes(0, 1))))
            else:  # straight into the chunk's buffer (fresh memory is slow to map)
                buffer, inside = target
                image = halved(above, buffer[inside].swapaxes(0, 1))
            above = image  # the next level reads a quarter of these pixels
        return writes

    def finish(self, region: Region) -> list[Write]:
        """Count ``region`` as filled in; return the chunks that are complete now."""
        complete: list[Write] = []
        for n in self._shared_levels():
            index = self._chunk(n, region)
            filling = self._filling[n][index]
            filling.missing -= 1
            if not filling.missing:
                del self._filling[n][index]
                where = tuple(disk_order(self._chunk_region(n, index)))
                complete.append((n, where, filling.buffer))
        return complete


@dataclass
class _Filling:
    """A lower level's chunk being filled: its buffer, and how many units it still misses."""

    buffer: Any
    missing: int


class Window:
    """The smallest and largest finite value of each channel, from the blocks it is shown.

    It is shown the smallest level's blocks: a sample of every ``2**n``-th pixel, cheap to scan.
    """

    def __init__(self, channels: int, dtype: str) -> None:
        import numpy as np

        self._dtype = np.dtype(dtype)
        self.low: list[float | None] = [None] * channels
        self.high: list[float | None] = [None] * channels

    def add(self, channel_start: int, block: np.ndarray[Any, Any]) -> None:
        """Count a (c, t, z, y, x) block whose first channel is ``channel_start``."""
        import numpy as np

        for offset in range(block.shape[0]):
            values = block[offset]
            if self._dtype.kind == "f":
                values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            low, high = values.min().item(), values.max().item()
            index = channel_start + offset
            seen_low, seen_high = self.low[index], self.high[index]
            self.low[index] = low if seen_low is None else min(seen_low, low)
            self.high[index] = high if seen_high is None else max(seen_high, high)

    def ranges(self) -> list[tuple[float, float, float, float]]:
        """``(min, max, start, end)`` of each channel's display window.

        ``min``/``max`` are the dtype's range (floats: the data's), ``start``/``end`` the
        data's (sampled).
        """
        import numpy as np

        kind = self._dtype.kind
        result = []
        for low, high in zip(self.low, self.high, strict=True):
            start = float(low) if low is not None else 0.0
            end = float(high) if high is not None else 1.0
            if kind == "b":
                bounds = (0.0, 1.0)
            elif kind in "iu":
                info = np.iinfo(self._dtype)
                bounds = (float(info.min), float(info.max))
            else:
                bounds = (start, end)
            result.append((*bounds, start, end))
        return result
