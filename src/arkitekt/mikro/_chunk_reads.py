"""Reading a selection of an array of mikro's codec: each chunk decoded straight into the result.

zarr's own read (3.1) decodes every chunk into a buffer of its own in a worker thread, then
copies it into the result on its event loop, one chunk after the other: for a whole image that
is a second pass over every byte, on one thread, into memory touched for the first time. For
arrays stored the way mikro stores them (the ``bytes`` codec in native order, then ``blosc``:
:func:`arkitekt.mikro._upload.codec`), :func:`read` lets blosc write each whole chunk into its
place in the result (it releases the GIL, so chunks decode in parallel) and copies only the
chunks a selection cuts, also in worker threads. Any other array, or a selection other than
plain slices, is read by zarr (:func:`plan` returns ``None``).

Chunks are read through the array's store (for an image, its
:class:`~arkitekt.mikro._checked.CheckedStore`, which checks each chunk's header against the
image's record first), at most ``async.concurrency`` of zarr's config at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from arkitekt.errors import MikroError

__all__ = ["Plan", "plan", "read"]

_BLOSC_HEADER = 16


Piece = tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]
"""One chunk of a selection: its grid coordinates, its place in the result, the part of the
chunk that goes there."""


@dataclass(frozen=True)
class Plan:
    """A selection of plain slices: its start and shape, and the array's chunk shape."""

    start: tuple[int, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    def pieces(self) -> Iterator[Piece]:
        """Each chunk the selection touches, in grid order."""
        ranges = [
            range(start // chunk, -(-(start + size) // chunk))
            for start, size, chunk in zip(self.start, self.shape, self.chunks, strict=True)
        ]
        for coords in itertools.product(*ranges):
            into, part = [], []
            for coord, start, size, chunk in zip(
                coords, self.start, self.shape, self.chunks, strict=True
            ):
                low, high = max(start, coord * chunk), min(start + size, (coord + 1) * chunk)
                into.append(slice(low - start, high - start))
                part.append(slice(low - coord * chunk, high - coord * chunk))
            yield coords, tuple(into), tuple(part)


def plan(array: Any, key: tuple[Any, ...]) -> Plan | None:
    """How :func:`read` reads ``array[key]``, or ``None`` when zarr must read it.

    Args:
        array: an ``AsyncArray`` (zarr v3).
        key: one part per axis, in the array's order (slices; anything else goes to zarr).

    """
    from zarr.codecs import BloscCodec, BytesCodec
    from zarr.core.chunk_grids import RegularChunkGrid

    meta = array.metadata
    if meta.zarr_format != 3 or len(key) != len(array.shape):
        return None
    codecs = meta.codecs
    if (
        len(codecs) != 2
        or not isinstance(codecs[0], BytesCodec)
        or not isinstance(codecs[1], BloscCodec)
        or not isinstance(meta.chunk_grid, RegularChunkGrid)
        or (codecs[0].endian is not None and codecs[0].endian.value != sys.byteorder)
    ):
        return None
    start, shape = [], []
    for part, size in zip(key, array.shape, strict=True):
        if not isinstance(part, slice):
            return None
        first, stop, step = part.indices(size)
        if step != 1:
            return None
        start.append(first)
        shape.append(max(0, stop - first))
    return Plan(tuple(start), tuple(shape), tuple(meta.chunk_grid.chunk_shape))


async def read(array: Any, selection: Plan) -> np.ndarray[Any, Any]:
    """The selection ``selection`` of ``array`` (an ``AsyncArray``) as a new numpy array.

    Raises:
        MikroError: a chunk does not decode to its array's chunk size.

    """
    from zarr import config
    from zarr.core.buffer import default_buffer_prototype

    dtype = np.dtype(array.dtype)
    out = np.empty(selection.shape, dtype)
    if out.size == 0:
        return out
    fill = array.metadata.fill_value
    prototype = default_buffer_prototype()
    pieces = selection.pieces()  # shared by the workers: each takes the next chunk

    async def worker() -> None:
        for coords, into, part in pieces:
            key = array.metadata.encode_chunk_key(coords)
            found = await (array.store_path / key).get(prototype)
            if found is None:  # never written: the fill value
                out[into] = fill
                continue
            source = found.as_numpy_array()
            await asyncio.to_thread(_decode, source, out[into], part, selection.chunks, key)

    chunks = zip(out.shape, selection.chunks, strict=True)
    most = math.prod(-(-size // chunk) + 1 for size, chunk in chunks)  # chunks touched, at most
    workers = min(max(1, int(config.get("async.concurrency") or 10)), most)
    try:
        async with asyncio.TaskGroup() as group:  # a failure cancels the other workers
            for _ in range(workers):
                group.create_task(worker())
    except ExceptionGroup as errors:  # raise what zarr's read would have raised
        raise errors.exceptions[0] from None
    return out


def _decode(
    source: np.ndarray[Any, Any],
    target: np.ndarray[Any, Any],
    part: tuple[slice, ...],
    chunks: tuple[int, ...],
    key: str,
) -> None:
    """Decode one chunk into ``target``, its place in the result: straight when it is whole."""
    from numcodecs import blosc

    raw = math.prod(chunks) * target.itemsize
    if len(source) < _BLOSC_HEADER or int.from_bytes(source[4:8].tobytes(), "little") != raw:
        raise MikroError(f"chunk {key!r} does not decode to its array's chunk size ({raw} bytes)")
    if target.nbytes == raw and target.flags.c_contiguous:  # the whole chunk, in one piece
        blosc.decompress(source, target)
        return
    chunk = np.empty(chunks, target.dtype)
    blosc.decompress(source, chunk)
    target[...] = chunk[part]
