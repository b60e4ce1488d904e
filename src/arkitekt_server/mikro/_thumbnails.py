"""Thumbnails of images: a small PNG of a max projection, read within the image's bounds.

Blocking work (reads and decoding): call it in a worker thread.
"""

from __future__ import annotations

import math

import numpy as np

from arkitekt_server.mikro._storage import Location, Verified, open_bounded

__all__ = ["THUMBNAIL_SIZE", "render_thumbnail"]

THUMBNAIL_SIZE = 256
_THUMBNAIL_MAX_PLANES = 64


def render_thumbnail(location: Location, verified: Verified, size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG of the max projection (over t and z) of the first channel, at most ``size`` px.

    Read from the pyramid's smallest level (at most 256 px along y and x).

    At most about 64 planes are read (whole chunks along z, evenly spaced), so huge stacks stay
    cheap; one chunk is decoded at a time (through :class:`BoundedStore`), so memory stays
    near one chunk plus the thumbnail; intensities are stretched between the 0.5th and 99.5th
    percentile.

    Raises:
        StoreInvalidError: the store cannot be read within its bounds, or its ``zarr.json`` is
            not the verified one.
        ChunkRefusedError: a chunk declares more than the chunk's raw size.

    """
    import io

    from PIL import Image

    specs = verified.arrays()
    level = len(specs) - 1  # the smallest level: it fits the thumbnail, or nearly
    array = open_bounded(location, verified, level)
    if verified.levels is None:  # a store from before pyramids: (c, t, z, y, x)
        _, t, z, y, x = verified.shape
    else:
        t, _, z, y, x = specs[level].shape
    step = max(1, math.ceil(max(y, x) / size))
    depth, height, width = (int(c) for c in array.chunks[2:])
    slabs = [(ti, z0) for ti in range(t) for z0 in range(0, z, depth)]  # whole chunks at once
    if len(slabs) * depth > _THUMBNAIL_MAX_PLANES:
        keep = max(1, _THUMBNAIL_MAX_PLANES // depth)
        picks = np.linspace(0, len(slabs) - 1, keep).round().astype(int)
        slabs = [slabs[i] for i in sorted(set(picks.tolist()))]
    projection = np.full((len(range(0, y, step)), len(range(0, x, step))), -np.inf)
    for ti, z0 in slabs:
        for y0 in range(0, y, height):
            ys = y0 + (-y0) % step  # the first sampled row inside this chunk
            for x0 in range(0, x, width):
                xs = x0 + (-x0) % step
                if ys >= min(y0 + height, y) or xs >= min(x0 + width, x):
                    continue
                region = (
                    (0, ti, slice(z0, z0 + depth))
                    if verified.levels is None
                    else (ti, 0, slice(z0, z0 + depth))
                )
                block = np.asarray(
                    array[(*region, slice(ys, y0 + height, step), slice(xs, x0 + width, step))]
                )
                plane = block.max(axis=0).astype(np.float64)
                rows, cols = (
                    slice(ys // step, ys // step + plane.shape[0]),
                    slice(xs // step, xs // step + plane.shape[1]),
                )
                projection[rows, cols] = np.fmax(projection[rows, cols], plane)
    finite = projection[np.isfinite(projection)]
    low, high = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1
    scaled = np.clip((np.nan_to_num(projection, nan=low, neginf=low) - low) / (high - low), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((scaled * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
