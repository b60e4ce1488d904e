"""Check and normalise an ``xr.DataArray`` before upload; choose its zarr chunks.

Everything here is local and cheap (no pixels are computed), so a bad input fails before the
server is contacted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arkitekt.errors import InvalidImageError
from arkitekt.protocol.mikro import DIMS, DTYPES, Shape5
from arkitekt.protocol.ome import level_count, level_shape

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

__all__ = ["CHUNK_TARGET_BYTES", "Prepared", "choose_chunks", "prepare"]

CHUNK_TARGET_BYTES = 16 << 20
"""Aim for chunks of about this many (uncompressed) bytes."""

_UNIT_MAX_BYTES = 64 << 20  # a dask block larger than this is split into several writes


@dataclass(frozen=True)
class Prepared:
    """An array ready to upload.

    Attributes:
        array: the (c, t, z, y, x) ``xr.DataArray`` (still lazy if it was dask-backed).
        shape: its shape.
        dtype: its numpy dtype name.
        chunks: the zarr chunk shape of level 0.
        unit: the shape of one write (a whole number of level-0 chunks; the chunk itself for
            numpy). Along y and x it is the whole axis or a multiple of ``2**(levels - 1)``, so
            each unit makes exactly one chunk of every lower level.
        lazy: whether the data is dask-backed (computed unit by unit).
        level_chunks: the chunk shape of every level, level 0 (``chunks``) first; a lower
            level's chunks either divide a unit's image on that level exactly or hold whole
            units' images (a unit's image always lies in one chunk), and are no larger than a
            level-0 chunk.

    """

    array: xr.DataArray
    shape: Shape5
    dtype: str
    chunks: Shape5
    unit: Shape5
    lazy: bool
    level_chunks: tuple[Shape5, ...] = ()

    @property
    def levels(self) -> int:
        """How many pyramid levels the image has (stores)."""
        return len(self.level_chunks) or level_count(self.shape)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return int(self.array.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        """Uncompressed size of the whole array."""
        return math.prod(self.shape) * self.itemsize

    @property
    def chunk_count(self) -> int:
        """How many chunks the store holds when complete."""
        return math.prod(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    def regions(self) -> Iterator[tuple[slice, ...]]:
        """The write units in storage order, as slices of the normalised array."""
        ranges = [range(0, s, u) for s, u in zip(self.shape, self.unit, strict=True)]
        for c in ranges[0]:
            for t in ranges[1]:
                for z in ranges[2]:
                    for y in ranges[3]:
                        for x in ranges[4]:
                            starts = (c, t, z, y, x)
                            yield tuple(
                                slice(start, min(start + u, s))
                                for start, u, s in zip(starts, self.unit, self.shape, strict=True)
                            )


def _normalise_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    import numpy as np

    if dtype.kind in "OcSUVMm" or dtype.fields is not None:
        raise InvalidImageError(
            f"cannot store an image of dtype {dtype}: use a numeric dtype "
            "(bool, int, uint or float; object, string, complex and datetime are not supported)"
        )
    native = dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype
    if native.name not in DTYPES:
        raise InvalidImageError(f"cannot store an image of dtype {dtype}")
    return np.dtype(native)


def prepare(array: Any, levels: int | None = None) -> Prepared:
    """Check ``array`` and return it as a (c, t, z, y, x) array with chosen chunks.

    ``levels`` caps the pyramid (``None``: every level down to one tile; ``1``: level 0 only).

    Raises:
        InvalidImageError: not an ``xr.DataArray``, unknown or repeated dims, no ``x``/``y``,
            an axis of size 0, or an unsupported dtype.

    """
    import dask.array as da
    import xarray as xr

    if not isinstance(array, xr.DataArray):
        hint = " (wrap it: xr.DataArray(data, dims=[...]))" if hasattr(array, "shape") else ""
        raise InvalidImageError(
            f"from_xarray() needs an xarray.DataArray, not {type(array).__name__}{hint}"
        )
    dims = [str(dim) for dim in array.dims]
    unknown = [dim for dim in dims if dim not in DIMS]
    if unknown:
        raise InvalidImageError(
            f"unknown dim(s) {unknown}: an image's dims are a subset of {list(DIMS)}"
        )
    if len(set(dims)) != len(dims):
        raise InvalidImageError(f"repeated dims {dims}")
    missing = [dim for dim in ("x", "y") if dim not in dims]
    if missing:
        raise InvalidImageError(f"an image needs the dims 'x' and 'y'; {missing} missing")
    empty = [dim for dim, size in zip(dims, array.shape, strict=True) if size == 0]
    if empty:
        raise InvalidImageError(f"the axis {empty} has size 0; an image needs data on every axis")
    dtype = _normalise_dtype(array.dtype)
    if dtype != array.dtype:
        array = array.astype(dtype)
    for dim in DIMS:
        if dim not in dims:
            array = array.expand_dims(dim)
    array = array.transpose(*DIMS)
    shape: Shape5 = tuple(int(size) for size in array.shape)  # type: ignore[assignment]
    lazy = isinstance(array.data, da.Array)
    count = level_count(shape) if levels is None else max(1, min(levels, level_count(shape)))
    step = 1 << (count - 1)
    if not lazy:
        chunks = _aligned(choose_chunks(shape, dtype.itemsize), shape, step)
        return _prepared(array, shape, dtype.name, chunks, chunks, False, count)
    blocks = array.data.chunks
    regular = all(len(set(axis[:-1])) <= 1 and axis[-1] <= axis[0] for axis in blocks)
    if regular:
        unit = _split(tuple(axis[0] for axis in blocks), dtype.itemsize, _UNIT_MAX_BYTES)
        unit = _aligned(unit, shape, step)
        chunks = _split(unit, dtype.itemsize, CHUNK_TARGET_BYTES)
    else:
        chunks = _aligned(choose_chunks(shape, dtype.itemsize), shape, step)
        unit = chunks
    if tuple(axis[0] for axis in blocks) != unit:
        array = array.chunk(dict(zip(DIMS, unit, strict=True)))
    return _prepared(array, shape, dtype.name, chunks, unit, True, count)


def _prepared(
    array: xr.DataArray,
    shape: Shape5,
    dtype: str,
    chunks: Shape5,
    unit: Shape5,
    lazy: bool,
    count: int,
) -> Prepared:
    import numpy as np

    itemsize = np.dtype(dtype).itemsize
    target = math.prod(chunks) * itemsize
    levels: list[Shape5] = [chunks]
    for level in range(1, count):
        image = level_shape(unit, level)  # a unit's image on that level
        if math.prod(image) * itemsize > target:  # whole parts of a unit's image
            levels.append(_split(image, itemsize, target))
        else:  # whole numbers of units' images
            levels.append(_grown(image, level_shape(shape, level), itemsize, target))
    return Prepared(array, shape, dtype, chunks, unit, lazy, tuple(levels))


def _grown(image: Shape5, extent: Shape5, itemsize: int, target: int) -> Shape5:
    """``image`` doubled along x, then y, then z while it fits ``target`` and the level.

    A lower level's chunks then hold about as many bytes as level 0's (several units' images
    each) instead of one unit's image: a quarter, a sixteenth, ... of the bytes per chunk made
    a pyramid cost three times as many writes (files, requests) as level 0. Each size stays
    a multiple of the image's (or the whole axis), so a unit's image lies in one chunk.
    """
    sizes = list(image)
    for axis in (4, 3, 2):
        while sizes[axis] < extent[axis] and math.prod(sizes) * 2 * itemsize <= target:
            sizes[axis] *= 2
        sizes[axis] = min(sizes[axis], extent[axis])
    return tuple(sizes)  # type: ignore[return-value]


def _aligned(unit: Shape5, shape: Shape5, step: int) -> Shape5:
    """``unit`` with y and x the whole axis or a multiple of ``step``.

    Rounded down, at least ``step``: so a unit's image on every level starts at a whole pixel.
    """
    sizes = list(unit)
    for axis in (3, 4):
        if sizes[axis] < shape[axis]:
            sizes[axis] = min(shape[axis], max(step, sizes[axis] - sizes[axis] % step))
    return tuple(sizes)  # type: ignore[return-value]


def choose_chunks(shape: Shape5, itemsize: int, target: int = CHUNK_TARGET_BYTES) -> Shape5:
    """Chunks of about ``target`` bytes: whole (y, x) planes stacked along z when they fit.

    One channel and time point per chunk (reads usually want one of each); planes larger than
    the target are split along y, then x.
    """
    _, _, z, y, x = shape
    plane = y * x * itemsize
    if plane <= target:
        depth = max(1, min(z, target // plane))
        return (1, 1, depth, y, x)
    cy, cx = y, x
    while cy * cx * itemsize > target and (cy > 256 or cx > 256):
        if cy >= cx:
            cy = -(-cy // 2)
        else:
            cx = -(-cx // 2)
    return (1, 1, 1, cy, cx)


def _split(unit: tuple[int, ...], itemsize: int, target: int) -> Shape5:
    """Divide ``unit`` by whole factors (z, then y, then x, then c, t) until it fits ``target``.

    The result divides ``unit`` exactly, so each unit is a whole number of chunks.
    """
    sizes = list(unit)
    order = (2, 3, 4, 0, 1)
    while math.prod(sizes) * itemsize > target:
        for axis in order:
            if sizes[axis] > 1:
                factor = _smallest_factor(sizes[axis])
                sizes[axis] //= factor
                break
        else:
            break
    return tuple(sizes)  # type: ignore[return-value]


def _smallest_factor(n: int) -> int:
    for candidate in range(2, math.isqrt(n) + 1):
        if n % candidate == 0:
            return candidate
    return n
