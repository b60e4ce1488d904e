"""Stores: where uploads and images live on disk, and their verification (disk or bucket).

Bounded reads are in :mod:`arkitekt_server.mikro._bounded` (re-exported here).

A store is an OME-Zarr image group (:mod:`arkitekt_server.mikro._groups`). Layout under
``<data_dir>/mikro``: ``uploads/<grant id>/`` (a store being written),
``stores/<image id>/`` (finished stores; an image keeps its grant's id), ``records/<id>.json``
(each store's image record, to adopt stores after a lost database), ``thumbs/<id>.png``,
``trash/`` (stores being deleted) and ``quarantine/`` (stores an operator set aside).
Everything here is blocking file work: call it in a worker thread.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

from arkitekt.protocol.mikro import UploadRequest
from arkitekt.protocol.text import echo
from arkitekt_server.mikro._bounded import (
    BoundedStore,
    check_document,
    checked_pipeline,
    meta_sha256,
    open_bounded,
    parse_meta,
    read_meta,
    read_meta_bytes,
)
from arkitekt_server.mikro._chunks import (
    HEADER_BYTES,
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
    check_group(parse_meta(data), body)
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
