"""Bounded reads of a store (disk or bucket, through a :class:`Location`).

Its documents are checked against what was verified, every chunk before zarr decodes it.

Everything here is blocking file work: call it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.protocol.text import echo
from arkitekt_server.mikro._chunks import (
    META_MAX_BYTES,
    ChunkRefusedError,
    Pipeline,
    max_encoded_bytes,
)
from arkitekt_server.mikro._groups import ArraySpec, Verified
from arkitekt_server.mikro._locations import Location, StoreInvalidError

__all__ = [
    "BoundedStore",
    "check_document",
    "checked_pipeline",
    "meta_sha256",
    "open_bounded",
    "parse_meta",
    "read_meta",
    "read_meta_bytes",
]


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


def parse_meta(data: bytes, key: str = "zarr.json") -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StoreInvalidError(f"the store has no valid {key}: {error}") from None


def read_meta(location: Location, key: str = "zarr.json") -> Any:
    """A store's ``zarr.json`` (or ``key``), bounded in size, parsed.

    Raises:
        StoreInvalidError: it is missing, too large, or not JSON (nested too deeply included).

    """
    return parse_meta(read_meta_bytes(location, key), key)


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
    meta = parse_meta(data, name)
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
