"""Stores: where uploads and images live on disk, verification and bounded reads (disk or bucket).

Layout under ``<data_dir>/mikro``: ``uploads/<grant id>/`` (a zarr v3 store being written),
``stores/<image id>/`` (finished stores; an image keeps its grant's id), ``records/<id>.json``
(each store's image record, to adopt stores after a lost database), ``thumbs/<id>.png``,
``trash/`` (stores being deleted) and ``quarantine/`` (stores an operator set aside).
Everything here is blocking file work: call it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.protocol.mikro import DIMS
from arkitekt.protocol.text import echo
from arkitekt_server.mikro._chunks import (
    HEADER_BYTES,
    META_MAX_BYTES,
    ChunkRefusedError,
    Pipeline,
    check_key,
    max_encoded_bytes,
)
from arkitekt_server.mikro._locations import (
    BucketLocation,
    DiskLocation,
    Location,
    StoreInvalidError,
)

__all__ = [
    "BoundedStore",
    "BucketLocation",
    "DiskLocation",
    "Layout",
    "Location",
    "StoreInvalidError",
    "Verified",
    "check_key",
    "checked_pipeline",
    "meta_sha256",
    "open_bounded",
    "read_meta",
    "read_meta_bytes",
    "verify_store",
    "write_key",
]


class Layout:
    """The directories of mikro under a server's data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "mikro"
        self.uploads = self.root / "uploads"
        self.stores = self.root / "stores"
        self.thumbs = self.root / "thumbs"
        self.records = self.root / "records"
        self.trash = self.root / "trash"
        self.quarantine = self.root / "quarantine"

    def create(self) -> None:
        """Create the directories, owner-only (also those that existed with other modes)."""
        for path in (self.root, self.uploads, self.stores, self.thumbs, self.records, self.trash):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)

    def upload(self, grant_id: str) -> Path:
        """The directory an upload is written to."""
        return self.uploads / _safe_id(grant_id)

    def store(self, image_id: str) -> Path:
        """The directory of a finished image's store."""
        return self.stores / _safe_id(image_id)

    def thumb(self, image_id: str) -> Path:
        """The cached thumbnail of an image."""
        return self.thumbs / f"{_safe_id(image_id)}.png"

    def record(self, image_id: str) -> Path:
        """The image record kept next to a store (what adopting the store restores)."""
        return self.records / f"{_safe_id(image_id)}.json"


def _safe_id(value: str) -> str:
    return str(uuid.UUID(value))  # raises ValueError for anything but a UUID


def grid(shape: list[int] | tuple[int, ...], chunks: list[int] | tuple[int, ...]) -> list[int]:
    """Chunks per axis."""
    return [-(-s // c) for s, c in zip(shape, chunks, strict=True)]


def write_key(directory: Path, key: str, data: bytes) -> None:
    """Write one key of a store atomically (a temporary file renamed into place)."""
    target = directory / key
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove a directory tree (or a file) if it exists."""
    DiskLocation(path).remove()


def _expected_metadata(shape: list[int], chunks: list[int], dtype: str) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "dimension_names": list(DIMS),
    }


def _check_metadata(meta: object, shape: list[int], chunks: list[int], dtype: str) -> None:
    """Raise :class:`StoreInvalidError` unless ``meta`` (a parsed ``zarr.json``) fits the grant."""
    if not isinstance(meta, dict):
        raise StoreInvalidError("zarr.json is not an object")
    for key, value in _expected_metadata(shape, chunks, dtype).items():
        if meta.get(key) != value:
            raise StoreInvalidError(
                f"zarr.json: {key} is {echo(meta.get(key))}, expected {value!r}"
            )
    encoding = meta.get("chunk_key_encoding", {})
    configuration = encoding.get("configuration", {}) if isinstance(encoding, dict) else None
    if (
        not isinstance(encoding, dict)
        or encoding.get("name") != "default"
        or not isinstance(configuration, dict)
        or configuration.get("separator", "/") != "/"
    ):
        raise StoreInvalidError(
            "zarr.json: chunk_key_encoding must be an object {'name': 'default', "
            f"'configuration': {{'separator': '/'}}}}, not {echo(encoding)}"
        )


@dataclass(frozen=True)
class Verified:
    """What an image's store was verified to hold (kept with its row); every read checks the
    store still says so and bounds each chunk by it, never by what the store says now.

    Attributes:
        shape: the array's shape.
        chunks: the chunk shape.
        dtype: the numpy dtype name.
        meta_sha256: the SHA-256 (hex) of the verified ``zarr.json``; ``None`` for an image
            from before it was kept (its ``zarr.json`` is then checked field by field).

    """

    shape: list[int]
    chunks: list[int]
    dtype: str
    meta_sha256: str | None = None

    @property
    def raw(self) -> int:
        """The decoded size of every chunk."""
        return math.prod(self.chunks) * np.dtype(self.dtype).itemsize


class BoundedStore(WrapperStore[Store]):
    """A read-only store (of a :class:`Location`) that checks every chunk before zarr decodes it.

    ``zarr.json`` is the document :func:`open_bounded` checked (never read again, so it cannot
    change in between). A chunk larger than any encoding of a chunk is not read (its size is
    checked on the open file, or from the answer's headers, so it cannot grow in between); a
    chunk that declares (or inflates to) more than the chunk's raw size is refused
    (:class:`ChunkRefusedError`), so a read never allocates more than the chunks it asked for.
    """

    def __init__(self, location: Location, pipeline: Pipeline, meta: bytes) -> None:
        super().__init__(location.zarr_store())
        self.location = location
        self.pipeline = pipeline
        self.meta = meta

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Read one key; a chunk is checked (size, then header or bounded inflate) first."""
        import asyncio

        prototype = prototype or default_buffer_prototype()
        if key == "zarr.json":  # zarr reads it whole
            return prototype.buffer.from_bytes(self.meta)
        if byte_range is not None:  # not asked for by these arrays (no sharding): size only
            try:
                self.pipeline.check_size(key, await self._store.getsize(key))
            except (OSError, ValueError):
                return None
            return await self._store.get(key, prototype, byte_range)
        limit = max_encoded_bytes(self.pipeline.raw)
        try:
            data = await asyncio.to_thread(self.location.read, key, limit)
        except OSError:
            return None
        if data is None:
            raise ChunkRefusedError(f"chunk {key!r} is more than the {limit} bytes allowed")
        self.pipeline.check_chunk(key, data)
        return prototype.buffer.from_bytes(data)


def read_meta_bytes(location: Location) -> bytes:
    """A store's ``zarr.json``, bounded in size, unparsed.

    Raises:
        StoreInvalidError: it is missing or too large.

    """
    try:
        data = location.read("zarr.json", META_MAX_BYTES)
    except OSError as error:
        raise StoreInvalidError(f"the store has no valid zarr.json: {error}") from None
    if data is None:
        raise StoreInvalidError(f"zarr.json is larger than {META_MAX_BYTES} bytes")
    return data


def _parse_meta(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StoreInvalidError(f"the store has no valid zarr.json: {error}") from None


def read_meta(location: Location) -> Any:
    """A store's ``zarr.json``, bounded in size, parsed.

    Raises:
        StoreInvalidError: it is missing, too large, or not JSON (nested too deeply included).

    """
    return _parse_meta(read_meta_bytes(location))


def meta_sha256(data: bytes) -> str:
    """The hash kept of a verified ``zarr.json``."""
    return hashlib.sha256(data).hexdigest()


def checked_pipeline(data: bytes, verified: Verified) -> Pipeline:
    """The pipeline of ``data`` (a ``zarr.json``) if it is the verified one, chunks bounded by
    ``verified``.

    Raises:
        StoreInvalidError: it is not the verified document (or does not fit ``verified``), or
            its codecs' sizes cannot be bounded.

    """
    if verified.meta_sha256 is not None and meta_sha256(data) != verified.meta_sha256:
        raise StoreInvalidError(
            "zarr.json is not the one verified when the image was stored (it was changed "
            "since); the image is not read"
        )
    meta = _parse_meta(data)
    try:
        _check_metadata(meta, verified.shape, verified.chunks, verified.dtype)
        return Pipeline.from_metadata(meta, verified.raw)
    except ChunkRefusedError as error:
        raise StoreInvalidError(str(error)) from None
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise StoreInvalidError(f"zarr.json is malformed: {echo(error)}") from None


def open_bounded(location: Location, verified: Verified) -> Any:
    """Open a store's array for reading through a :class:`BoundedStore`, bounded by
    ``verified`` (an image's row), never by what the store's ``zarr.json`` says now.

    Raises:
        StoreInvalidError: no readable ``zarr.json``, one that is not the verified one, or codecs
            whose chunk sizes cannot be bounded.

    """
    import zarr

    data = read_meta_bytes(location)
    store = BoundedStore(location, checked_pipeline(data, verified), data)
    return zarr.open_array(store, mode="r", zarr_format=3)


def _check_chunk(location: Location, key: str, size: int, pipeline: Pipeline) -> None:
    pipeline.check_size(key, size)
    if pipeline.header_suffices:
        pipeline.check_header(key, location.head(key, min(size, HEADER_BYTES)), size)
        return
    data = location.read(key, max_encoded_bytes(pipeline.raw))
    if data is None:
        raise ChunkRefusedError(f"chunk {key!r} grew beyond its bound while it was checked")
    pipeline.check_chunk(key, data)


def _listed_chunks(location: Location, counts: list[int]) -> list[tuple[str, int]]:
    """The chunk keys of the store with their sizes, listing stopped at the first unexpected key
    or once there are more keys than the grid has chunks (plus ``zarr.json``)."""
    expected = math.prod(counts)
    found: list[tuple[str, int]] = []
    try:
        for key, size in location.entries():
            if not check_key(key, counts):
                raise StoreInvalidError(
                    f"the store holds an unexpected file {echo(key)} (chunk keys are "
                    "c/i/j/k/l/m in ASCII digits without leading zeros, inside the grid)"
                )
            if key != "zarr.json":
                found.append((key, size))
                if len(found) > expected:
                    break  # already too many: the rest is not listed
    except OSError as error:
        raise StoreInvalidError(f"the store cannot be listed: {error}") from None
    if len(found) != expected:
        more = " or more" if len(found) > expected else ""
        raise StoreInvalidError(f"the store holds {len(found)}{more} chunk(s); {expected} expected")
    return found


def verify_store(location: Location, shape: list[int], chunks: list[int], dtype: str) -> str:
    """Check an uploaded store before it becomes an image.

    Checks: ``zarr.json`` describes a zarr v3 array of the announced shape, dtype, chunks and
    dims, with codecs whose decoded sizes can be bounded; the store holds exactly one key per
    chunk under its canonical name and nothing else (no symlinks, no leftovers, no missing
    chunk: fill-value chunks must be written too); every chunk declares exactly the chunk's
    raw size (checked before anything is decoded); the last chunk decodes.

    Returns:
        The SHA-256 of the verified ``zarr.json`` (kept with the image: :class:`Verified`).

    Raises:
        StoreInvalidError: naming the first problem found (and the chunk key, for a chunk).

    """
    counts = grid(shape, chunks)
    found = _listed_chunks(location, counts)
    data = read_meta_bytes(location)
    verified = Verified(list(shape), list(chunks), dtype, meta_sha256(data))
    pipeline = checked_pipeline(data, verified)
    try:
        if location.concurrency > 1 and len(found) > 1:  # a request each: overlap them
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(location.concurrency) as pool:
                checks = [pool.submit(_check_chunk, location, k, n, pipeline) for k, n in found]
                for check in checks:
                    check.result()  # the first problem in key order (the rest are dropped)
        else:
            for key, size in found:
                _check_chunk(location, key, size, pipeline)
    except ChunkRefusedError as error:
        raise StoreInvalidError(str(error)) from None
    except OSError as error:
        raise StoreInvalidError(f"a chunk cannot be read: {error}") from None
    try:
        array = open_bounded(location, verified)
        last = tuple(slice((n - 1) * c, None) for n, c in zip(counts, chunks, strict=True))
        array[last]
    except StoreInvalidError:
        raise
    except Exception as error:
        raise StoreInvalidError(f"the store cannot be read: {error}") from None
    assert verified.meta_sha256 is not None
    return verified.meta_sha256
