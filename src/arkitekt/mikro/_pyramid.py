"""The pyramid of an upload, one write unit at a time.

Each unit's image on every level, and the display range of each channel.

Level ``n`` holds every ``2**n``-th pixel of level 0 along y and x (``nearest``, see
:mod:`arkitekt.protocol.ome`). A write unit starts at a multiple of ``2**(levels - 1)`` along
y and x (:class:`~arkitekt.mikro._normalize.Prepared`), so its image on level ``n`` is
``block[..., ::2**n, ::2**n]`` (a view, nothing is computed) and fills exactly one chunk of
that level: no chunk is written by two units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arkitekt.protocol.ome import disk_order

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Window", "level_block", "on_disk"]


def level_block(block: np.ndarray[Any, Any], level: int) -> np.ndarray[Any, Any]:
    """A unit's (c, t, z, y, x) block on level ``level`` (a strided view)."""
    step = 1 << level
    return block[..., ::step, ::step] if level else block


def on_disk(
    region: tuple[slice, ...], block: np.ndarray[Any, Any], level: int
) -> tuple[tuple[slice, ...], np.ndarray[Any, Any]]:
    """A unit's region and block (level 0, (c, t, z, y, x)) as written to level ``level``.

    Returns the region on that level and the block, both in disk order (t, c, z, y, x).
    """
    step = 1 << level
    small = level_block(block, level)
    y, x = region[3].start // step, region[4].start // step
    where = (*region[:3], slice(y, y + small.shape[3]), slice(x, x + small.shape[4]))
    return tuple(disk_order(where)), small.swapaxes(0, 1)


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
