"""The resolution levels of a stored image, read within its bounds.

One function opens them (:func:`open_levels`): a bare zarr array is one level in ``c, t, z, y,
x`` order; an OME-Zarr image group holds its levels (``attributes.ome.multiscales[0].datasets``,
full resolution first) in ``t, c, z, y, x`` order, y and x shrinking level by level.
:func:`pick_level` chooses the smallest level that still covers a view. Everything here blocks
(reads and decoding): call it in a worker thread.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.protocol.mikro import MAX_CHUNK_BYTES
from arkitekt.protocol.text import echo
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._chunks import (
    META_MAX_BYTES,
    ChunkRefusedError,
    Pipeline,
    check_key,
    max_encoded_bytes,
)

__all__ = ["MAX_LEVELS", "Level", "open_levels", "pick_level"]

MAX_LEVELS = 32
"""The most levels an image group may declare (halving y and x 32 times leaves one pixel)."""

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

    Args:
        location: where the store's keys are.
        verified: what the image's row says the store holds (shape in ``c, t, z, y, x``, dtype);
            every level is bounded by it, never by what the store says now.

    Raises:
        StoreInvalidError: the store's documents are missing, malformed, or do not fit the
            image (a level larger than the image, another dtype, chunks beyond 64 MiB, ...).

    """
    meta = storage.read_meta(location)
    if isinstance(meta, dict) and meta.get("node_type") == "array":
        c, t, z, y, x = verified.shape
        return [Level(storage.open_bounded(location, verified), "ctzyx", (c, t, z, y, x))]
    return _group_levels(location, verified, meta)


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


def _refuse(message: str) -> storage.StoreInvalidError:
    return storage.StoreInvalidError(f"the image group's {message}")


def _datasets(meta: Any) -> list[str]:
    """The level paths an image group's ``zarr.json`` declares."""
    try:
        datasets = meta["attributes"]["ome"]["multiscales"][0]["datasets"]
        paths = [dataset["path"] for dataset in datasets]
    except (KeyError, IndexError, TypeError) as error:
        raise _refuse(f"zarr.json declares no multiscales datasets ({echo(error)})") from None
    if meta.get("node_type") != "group" or not 1 <= len(paths) <= MAX_LEVELS:
        raise _refuse(f"zarr.json must be a group with 1 to {MAX_LEVELS} levels")
    for path in paths:
        if not isinstance(path, str) or not _LEVEL_PATH.fullmatch(path):
            raise _refuse(f"level path {echo(path)} is not a plain name")
    if len(set(paths)) != len(paths):
        raise _refuse("levels repeat a path")
    return paths


def _level_layout(
    path: str, meta: Any, verified: storage.Verified, previous: tuple[int, int]
) -> tuple[tuple[int, int, int, int, int], Pipeline, list[int]]:
    """The shape (``c, t, z, y, x``), chunk pipeline and chunk grid of one level's
    ``zarr.json``, checked against the image's row and the level before it."""
    where = f"level {path!r}"
    try:
        shape = [int(n) for n in meta["shape"]]
        chunks = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
        encoding = meta.get("chunk_key_encoding", {"name": "default"})
        separator = encoding.get("configuration", {}).get("separator", "/")
        fits = (
            meta.get("zarr_format") == 3
            and meta.get("node_type") == "array"
            and meta["chunk_grid"].get("name") == "regular"
            and encoding.get("name") == "default"
            and separator == "/"
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _refuse(f"{where} zarr.json is malformed ({echo(error)})") from None
    c, t, z = verified.shape[:3]
    if not fits or meta.get("dimension_names") != _GROUP_AXES:
        raise _refuse(f"{where} is not a zarr v3 array with axes t, c, z, y, x and '/' keys")
    if meta.get("data_type") != verified.dtype:
        raise _refuse(f"{where} has dtype {echo(meta.get('data_type'))}, not {verified.dtype}")
    if len(shape) != 5 or shape[:3] != [t, c, z] or not all(n >= 1 for n in shape):
        raise _refuse(f"{where} has shape {echo(shape)}; t, c, z must be {t}, {c}, {z}")
    if not (shape[3] <= previous[0] and shape[4] <= previous[1]):
        raise _refuse(f"{where} is larger than the level before it ({echo(shape)})")
    if len(chunks) != 5 or not all(n >= 1 for n in chunks):
        raise _refuse(f"{where} has chunks {echo(chunks)}")
    raw = math.prod(chunks) * np.dtype(verified.dtype).itemsize
    if raw > MAX_CHUNK_BYTES:
        raise _refuse(f"{where} has chunks of {raw} bytes, more than {MAX_CHUNK_BYTES}")
    try:
        pipeline = Pipeline.from_metadata(meta, raw)
    except ChunkRefusedError as error:
        raise _refuse(f"{where}: {error}") from None
    ordered = (shape[1], shape[0], shape[2], shape[3], shape[4])
    return ordered, pipeline, storage.grid(shape, chunks)


def _group_levels(location: storage.Location, verified: storage.Verified, meta: Any) -> list[Level]:
    import zarr

    paths = _datasets(meta)
    store = _LevelStore(location)
    levels: list[Level] = []
    previous = (verified.shape[3], verified.shape[4])
    for index, path in enumerate(paths):
        try:
            data = location.read(f"{path}/zarr.json", META_MAX_BYTES)
        except OSError:
            data = None
        if data is None:
            raise _refuse(f"level {path!r} has no zarr.json of at most {META_MAX_BYTES} bytes")
        try:
            level_meta = json.loads(data)
        except (ValueError, RecursionError):
            raise _refuse(f"level {path!r} zarr.json is not JSON") from None
        shape, pipeline, counts = _level_layout(path, level_meta, verified, previous)
        if index == 0 and list(shape) != list(verified.shape):
            raise _refuse(f"first level has shape {shape}, the image {tuple(verified.shape)}")
        previous = shape[3], shape[4]
        store.levels[path] = (data, pipeline, counts)
        array = zarr.open_array(store, path=path, mode="r", zarr_format=3)
        levels.append(Level(array, "tczyx", shape))
    return levels


class _LevelStore(WrapperStore[Store]):
    """A read-only store of an image group's levels: each level's ``zarr.json`` is the document
    checked by :func:`_level_layout` (never read again), and each chunk is bounded by its
    level's pipeline before zarr decodes it (as :class:`storage.BoundedStore` does for a bare
    array)."""

    def __init__(self, location: storage.Location) -> None:
        super().__init__(location.zarr_store())
        self.location = location
        self.levels: dict[str, tuple[bytes, Pipeline, list[int]]] = {}

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """One key of a level: its checked ``zarr.json``, or a chunk checked before decoding."""
        import asyncio

        prototype = prototype or default_buffer_prototype()
        path, _, rest = key.partition("/")
        if path not in self.levels or byte_range is not None:
            return None  # nothing else is read (no sharding: chunks are read whole)
        meta, pipeline, counts = self.levels[path]
        if rest == "zarr.json":
            return prototype.buffer.from_bytes(meta)
        if not check_key(rest, counts):
            return None
        limit = max_encoded_bytes(pipeline.raw)
        try:
            data = await asyncio.to_thread(self.location.read, key, limit)
        except OSError:
            raise ChunkRefusedError(f"chunk {key!r} is missing or cannot be read") from None
        if data is None:
            raise ChunkRefusedError(f"chunk {key!r} is more than the {limit} bytes allowed")
        pipeline.check_chunk(key, data)
        return prototype.buffer.from_bytes(data)
