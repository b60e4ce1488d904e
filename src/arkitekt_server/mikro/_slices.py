"""Slices of an image rendered as PNG for the viewer: one plane (channel, time, z) of a region,
from the smallest level that covers the view, with a contrast window.

Blocking (reads, decoding, PNG encoding): call :func:`render_slice` in a worker thread.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from arkitekt_server.mikro._levels import Level, pick_level

__all__ = ["MAX_VIEW", "Slice", "SliceRequest", "contrast", "render_slice"]

MAX_VIEW = 2048
"""The largest view (width or height, in screen pixels) a slice is rendered for."""

_AUTO_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class SliceRequest:
    """What to render (already checked against the image's shape).

    Attributes:
        c: the channel.
        t: the time point.
        z: the plane.
        region: ``(y, x, height, width)`` in full-resolution pixels.
        view: ``(height, width)`` of the view in screen pixels (at most :data:`MAX_VIEW`).
        window: the intensities mapped to black and white, or ``None`` for automatic (the
            0.5th and 99.5th percentile of the rendered pixels).

    """

    c: int
    t: int
    z: int
    region: tuple[int, int, int, int]
    view: tuple[int, int]
    window: tuple[float, float] | None


@dataclass(frozen=True)
class Slice:
    """A rendered slice: the PNG and how it was made.

    Attributes:
        png: the 8-bit grey PNG.
        level: the index of the level it was read from (0: full resolution).
        step: every ``step``-th pixel of that level was taken along y and x.
        window: the intensities mapped to black and white.

    """

    png: bytes
    level: int
    step: int
    window: tuple[float, float]


def contrast(plane: np.ndarray[Any, Any], low: float, high: float) -> np.ndarray[Any, Any]:
    """``floor(255 * clip((v - low) / (high - low), 0, 1))`` as ``uint8`` (NaN is black)."""
    with np.errstate(all="ignore"):
        scaled = (plane.astype(np.float64) - low) / (high - low)
        scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)
        return (scaled * 255).astype(np.uint8)


def _auto_window(plane: np.ndarray[Any, Any]) -> tuple[float, float]:
    finite = plane[np.isfinite(plane)]
    if not finite.size:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, _AUTO_PERCENTILES))
    return (low, high) if high > low else (low, low + 1.0)


def _sample(level: Level, request: SliceRequest, box: tuple[int, int, int, int], step: int) -> Any:
    """Every ``step``-th pixel of the level's box ``(y0, y1, x0, x1)`` of the requested plane,
    read one chunk at a time (memory: one chunk plus the result)."""
    y0, y1, x0, x1 = box
    height, width = level.tile
    out = np.zeros((len(range(y0, y1, step)), len(range(x0, x1, step))), dtype=np.float64)
    for cy in range(y0 - y0 % height, y1, height):
        ys = y0 + math.ceil(max(0, cy - y0) / step) * step  # the first sampled row in the chunk
        ye = min(cy + height, y1)
        if ys >= ye:
            continue
        for cx in range(x0 - x0 % width, x1, width):
            xs = x0 + math.ceil(max(0, cx - x0) / step) * step
            xe = min(cx + width, x1)
            if xs >= xe:
                continue
            block = level.read(
                request.c, request.t, request.z, slice(ys, ye, step), slice(xs, xe, step)
            )
            row, col = (ys - y0) // step, (xs - x0) // step
            out[row : row + block.shape[0], col : col + block.shape[1]] = block
    return out


def render_slice(levels: list[Level], request: SliceRequest) -> Slice:
    """Render one plane of a region as an 8-bit PNG of at most the view's size.

    The smallest level whose pixels still cover the view is read (:func:`pick_level`); if it
    holds more pixels than the view, every ``step``-th is taken so the PNG fits the view.

    Raises:
        StoreInvalidError: the store cannot be read within its bounds.
        ChunkRefusedError: a chunk declares more than its raw size.

    """
    from PIL import Image

    y, x, height, width = request.region
    index, level = pick_level(levels, (height, width), request.view)
    full_y, full_x = levels[0].shape[3:]
    level_y, level_x = level.shape[3:]
    box = (
        y * level_y // full_y,
        max(y * level_y // full_y + 1, math.ceil((y + height) * level_y / full_y)),
        x * level_x // full_x,
        max(x * level_x // full_x + 1, math.ceil((x + width) * level_x / full_x)),
    )
    box = (box[0], min(box[1], level_y), box[2], min(box[3], level_x))
    step = max(
        1,
        math.ceil((box[1] - box[0]) / request.view[0]),
        math.ceil((box[3] - box[2]) / request.view[1]),
    )
    plane = _sample(level, request, box, step)
    window = request.window or _auto_window(plane)
    buffer = io.BytesIO()
    Image.fromarray(contrast(plane, *window)).save(buffer, format="PNG")
    return Slice(buffer.getvalue(), index, step, window)
