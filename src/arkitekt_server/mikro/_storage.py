"""Stores: where uploads and images live on disk, verification and bounded reads (disk or bucket).

A store is an OME-Zarr image group (:mod:`arkitekt_server.mikro._groups`). Layout under
``<data_dir>/mikro``: ``uploads/<grant id>/`` (a store being written),
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
from pathlib import Path
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.protocol.mikro import UploadRequest
from arkitekt.protocol.text import echo
from arkitekt_server.mikro._chunks import (
    HEADER_BYTES,
    META_MAX_BYTES,
    ChunkRefusedError,
    Pipeline,
    check_key,
    chunk_index,
    max_encoded_bytes,
)
from arkitekt_server.mikro._groups import (
    ArraySpec,
    Level,
    Verified,
    check_group,
    grid,
    key_limit,
    upload_verified,
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
    "check_document",
    "check_key",
    "checked_pipeline",
    "grid",
    "key_limit",
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


def _expected_metadata(spec: ArraySpec, dtype: str) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": spec.shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": spec.chunks}},
        "dimension_names": list(spec.dims),
    }


def _check_metadata(meta: object, spec: ArraySpec, dtype: str) -> None:
    """Raise :class:`StoreInvalidError` unless ``meta`` (a parsed ``zarr.json``) fits ``spec``."""
    name = f"{spec.prefix}zarr.json"
    if not isinstance(meta, dict):
        raise StoreInvalidError(f"{name} is not an object")
    for key, value in _expected_metadata(spec, dtype).items():
        if meta.get(key) != value:
            raise StoreInvalidError(f"{name}: {key} is {echo(meta.get(key))}, expected {value!r}")
    encoding = meta.get("chunk_key_encoding", {})
    configuration = encoding.get("configuration", {}) if isinstance(encoding, dict) else None
    if (
        not isinstance(encoding, dict)
        or encoding.get("name") != "default"
        or not isinstance(configuration, dict)
        or configuration.get("separator", "/") != "/"
    ):
        raise StoreInvalidError(
            f"{name}: chunk_key_encoding must be an object {{'name': 'default', "
            f"'configuration': {{'separator': '/'}}}}, not {echo(encoding)}"
        )


class BoundedStore(WrapperStore[Store]):
    """A read-only store (of a :class:`Location`) that checks every chunk of one array (its keys
    below ``prefix``) before zarr decodes it.

    The array's ``zarr.json`` is the document :func:`open_bounded` checked (never read again, so
    it cannot change in between). A chunk larger than any encoding of a chunk is not read (its
    size is checked on the open file, or from the answer's headers, so it cannot grow in
    between); a chunk that declares (or inflates to) more than the chunk's raw size is refused
    (:class:`ChunkRefusedError`), so a read never allocates more than the chunks it asked for.
    """

    def __init__(
        self, location: Location, pipeline: Pipeline, meta: bytes, prefix: str = ""
    ) -> None:
        super().__init__(location.zarr_store())
        self.location = location
        self.pipeline = pipeline
        self.meta = meta
        self.prefix = prefix

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Read one key; a chunk is checked (size, then header or bounded inflate) first."""
        import asyncio

        prototype = prototype or default_buffer_prototype()
        if key == f"{self.prefix}zarr.json":  # zarr reads it whole
            return prototype.buffer.from_bytes(self.meta)
        if not key.startswith(self.prefix) or key.endswith("zarr.json"):
            return None  # another array's (or the group's) key: not this array's to read
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


def read_meta_bytes(location: Location, key: str = "zarr.json") -> bytes:
    """A store's ``zarr.json`` (or ``key``, another one), bounded in size, unparsed.

    Raises:
        StoreInvalidError: it is missing or too large.

    """
    try:
        data = location.read(key, META_MAX_BYTES)
    except OSError as error:
        raise StoreInvalidError(f"the store has no valid {key}: {error}") from None
    if data is None:
        raise StoreInvalidError(f"{key} is larger than {META_MAX_BYTES} bytes")
    return data


def _parse_meta(data: bytes, key: str = "zarr.json") -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StoreInvalidError(f"the store has no valid {key}: {error}") from None


def read_meta(location: Location, key: str = "zarr.json") -> Any:
    """A store's ``zarr.json`` (or ``key``), bounded in size, parsed.

    Raises:
        StoreInvalidError: it is missing, too large, or not JSON (nested too deeply included).

    """
    return _parse_meta(read_meta_bytes(location, key), key)


def meta_sha256(data: bytes) -> str:
    """The hash kept of a verified ``zarr.json``."""
    return hashlib.sha256(data).hexdigest()


def _unchanged(key: str, data: bytes, sha256: str | None) -> None:
    if sha256 is not None and meta_sha256(data) != sha256:
        raise StoreInvalidError(
            f"{key} is not the one verified when the image was stored (it was changed "
            "since); the image is not read"
        )


def checked_pipeline(data: bytes, verified: Verified, spec: ArraySpec | None = None) -> Pipeline:
    """The pipeline of ``data`` (the ``zarr.json`` of the array ``spec``, by default level 0)
    if it is the verified one, chunks bounded by ``verified``.

    Raises:
        StoreInvalidError: it is not the verified document (or does not fit ``verified``), or
            its codecs' sizes cannot be bounded.

    """
    spec = spec or verified.arrays()[0]
    name = f"{spec.prefix}zarr.json"
    _unchanged(name, data, spec.sha256)
    meta = _parse_meta(data, name)
    raw = math.prod(spec.chunks) * np.dtype(verified.dtype).itemsize
    try:
        _check_metadata(meta, spec, verified.dtype)
        return Pipeline.from_metadata(meta, raw)
    except ChunkRefusedError as error:
        raise StoreInvalidError(f"{spec.prefix}{error}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise StoreInvalidError(f"{name} is malformed: {echo(error)}") from None


def check_document(key: str, data: bytes, verified: Verified) -> None:
    """Check a ``zarr.json`` about to be served: the verified one (by its hash, or field by
    field for an image from before hashes were kept).

    Raises:
        StoreInvalidError: it is not (it was changed since the image was stored).

    """
    if key == "zarr.json" and verified.levels is not None:
        _unchanged(key, data, verified.meta_sha256)
        return
    spec = verified.array(key)
    if spec is None or key != f"{spec.prefix}zarr.json":
        raise StoreInvalidError(f"{echo(key)} is no document of this image")
    checked_pipeline(data, verified, spec)


def open_bounded(location: Location, verified: Verified, level: int = 0) -> Any:
    """Open level ``level`` of a store for reading through a :class:`BoundedStore`, bounded by
    ``verified`` (an image's row), never by what the store's ``zarr.json`` says now.

    Raises:
        StoreInvalidError: no readable ``zarr.json``, one that is not the verified one, or codecs
            whose chunk sizes cannot be bounded.

    """
    import zarr

    spec = verified.arrays()[level]
    data = read_meta_bytes(location, f"{spec.prefix}zarr.json")
    store = BoundedStore(location, checked_pipeline(data, verified, spec), data, spec.prefix)
    return zarr.open_array(store, mode="r", zarr_format=3, path=spec.prefix.rstrip("/"))


def _check_chunk(location: Location, key: str, size: int, pipeline: Pipeline) -> None:
    pipeline.check_size(key, size)
    if pipeline.header_suffices:
        pipeline.check_header(key, location.head(key, min(size, HEADER_BYTES)), size)
        return
    data = location.read(key, max_encoded_bytes(pipeline.raw))
    if data is None:
        raise ChunkRefusedError(f"chunk {key!r} grew beyond its bound while it was checked")
    pipeline.check_chunk(key, data)


def _array_of(key: str, specs: list[ArraySpec]) -> int | None:
    """The index of the array in ``specs`` whose chunk ``key`` is (``None``: no chunk key)."""
    for index, spec in enumerate(specs):
        rest = key[len(spec.prefix) :] if key.startswith(spec.prefix) else None
        if rest is not None and chunk_index(rest, spec.counts) is not None:
            return index
    return None


def _listed_chunks(location: Location, specs: list[ArraySpec]) -> list[tuple[str, int, int]]:
    """The chunk keys of the store with their sizes and arrays, listing stopped at the first
    unexpected key or once there are more keys than the grids have chunks."""
    documents = {"zarr.json"} | {f"{spec.prefix}zarr.json" for spec in specs}
    expected = [math.prod(spec.counts) for spec in specs]
    found: list[tuple[str, int, int]] = []
    try:
        for key, size in location.entries():
            if key in documents:
                continue
            index = _array_of(key, specs)
            if index is None:
                raise StoreInvalidError(
                    f"the store holds an unexpected file {echo(key)} (chunk keys are "
                    "<level>/c/i/j/k/l/m in ASCII digits without leading zeros, inside the grid)"
                )
            found.append((key, size, index))
            if len(found) > sum(expected):
                break  # already too many: the rest is not listed
    except OSError as error:
        raise StoreInvalidError(f"the store cannot be listed: {error}") from None
    for index, spec in enumerate(specs):
        count = sum(1 for _, _, i in found if i == index)
        if count != expected[index]:
            more = " or more" if len(found) > sum(expected) else ""
            where = f" in level {spec.prefix.rstrip('/')}" if spec.prefix else ""
            raise StoreInvalidError(
                f"the store holds {count}{more} chunk(s); {expected[index]} expected{where}"
            )
    return found


def _group_hash(location: Location, body: UploadRequest) -> str:
    data = read_meta_bytes(location)
    check_group(_parse_meta(data), body)
    return meta_sha256(data)


def verify_store(location: Location, body: UploadRequest, *, legacy: bool = False) -> Verified:
    """Check an uploaded store before it becomes an image.

    Checks: ``zarr.json`` is the OME-Zarr image group of ``body`` (see
    :func:`~arkitekt_server.mikro._groups.check_group`); each level's ``n/zarr.json``
    describes a zarr v3 array of the level's shape, dtype, chunks and dims (t, c, z, y, x),
    with codecs whose decoded sizes can be bounded; the store holds exactly one key per chunk
    under its canonical name and nothing else (no symlinks, no leftovers, no missing chunk:
    fill-value chunks must be written too); every chunk declares exactly its level's raw chunk
    size (checked before anything is decoded); the last chunk of each level decodes.

    Args:
        location: the store.
        body: the upload it must hold.
        legacy: accept a store from before pyramids instead (one (c, t, z, y, x) array at the
            root; adopting old stores), when its ``zarr.json`` is an array's.

    Returns:
        What was verified, with the SHA-256 of every ``zarr.json`` (kept with the image).

    Raises:
        StoreInvalidError: naming the first problem found (and the chunk key, for a chunk).

    """
    expected = upload_verified(body)
    if legacy and _is_array(location):
        expected = Verified(expected.shape, expected.chunks, expected.dtype)
    specs = expected.arrays()
    found = _listed_chunks(location, specs)
    root = None if expected.levels is None else _group_hash(location, body)
    hashes = [meta_sha256(read_meta_bytes(location, f"{s.prefix}zarr.json")) for s in specs]
    if expected.levels is None:
        verified = Verified(expected.shape, expected.chunks, expected.dtype, hashes[0])
    else:
        levels = tuple(
            Level(level.chunks, digest)
            for level, digest in zip(expected.levels, hashes, strict=True)
        )
        verified = Verified(expected.shape, expected.chunks, expected.dtype, root, levels)
    specs = verified.arrays()
    pipelines = [
        checked_pipeline(read_meta_bytes(location, f"{s.prefix}zarr.json"), verified, s)
        for s in specs
    ]
    try:
        if location.concurrency > 1 and len(found) > 1:  # a request each: overlap them
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(location.concurrency) as pool:
                checks = [
                    pool.submit(_check_chunk, location, k, n, pipelines[i]) for k, n, i in found
                ]
                for check in checks:
                    check.result()  # the first problem in key order (the rest are dropped)
        else:
            for key, size, index in found:
                _check_chunk(location, key, size, pipelines[index])
    except ChunkRefusedError as error:
        raise StoreInvalidError(str(error)) from None
    except OSError as error:
        raise StoreInvalidError(f"a chunk cannot be read: {error}") from None
    for level, spec in enumerate(specs):
        try:
            array = open_bounded(location, verified, level)
            counts = spec.counts
            last = tuple(slice((n - 1) * c, None) for n, c in zip(counts, spec.chunks, strict=True))
            array[last]
        except StoreInvalidError:
            raise
        except Exception as error:
            raise StoreInvalidError(f"the store cannot be read: {error}") from None
    return verified


def _is_array(location: Location) -> bool:
    meta = read_meta(location)
    return isinstance(meta, dict) and meta.get("node_type") == "array"
