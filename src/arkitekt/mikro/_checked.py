"""Reads checked against the image's record, whatever store the pixels come from.

Each level array's ``zarr.json`` in the store (the bucket's, the server's, a disk's) must
describe the level the server's record names (shape, chunks, dtype), and every chunk must
declare exactly its level's chunk size before zarr decodes it.

The record is what the server verified at upload; the store is what is there now (an uploader's
credentials may rewrite a bucket's keys for a while after the upload finished). So a read never
allocates more than the chunks of the recorded array it asked for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.errors import MikroError
from arkitekt.protocol.chunks import HEADER_BYTES, META_MAX_BYTES, ChunkError, Pipeline
from arkitekt.protocol.mikro import DTYPES
from arkitekt.protocol.ome import disk_order, level_shape
from arkitekt.protocol.text import echo

if TYPE_CHECKING:
    from arkitekt.protocol.mikro import ImageRecord

__all__ = ["CheckedStore"]


class CheckedStore(WrapperStore[Store]):
    """A read-only view of ``store`` checked against ``image`` (see the module docstring).

    Each level's ``<n>/zarr.json`` (a store from before pyramids: the root's) is read once,
    checked and kept (a later change of it is not seen); every chunk is checked by its level's
    codecs' :class:`~arkitekt.protocol.chunks.Pipeline` before it is returned. The group's own
    ``zarr.json`` is passed on within its size bound.

    Raises:
        MikroError: (from reads) naming the image and what does not match its record.

    """

    def __init__(self, store: Store, image: ImageRecord) -> None:
        super().__init__(store)
        self.image = image
        self._arrays = _arrays(image)
        self._meta: dict[str, bytes] = {}
        self._pipelines: dict[str, Pipeline] = {}

    def _wrap(self, store: Store) -> CheckedStore:
        checked = type(self)(store, self.image)
        checked._meta, checked._pipelines = self._meta, self._pipelines
        return checked

    def with_read_only(self, read_only: bool = False) -> CheckedStore:
        """The same store with another write permission."""
        return self._wrap(self._store.with_read_only(read_only))

    def _refuse(self, what: str) -> MikroError:
        return MikroError(
            f"the store of image {self.image.id!r} does not hold what its record says: {what}; "
            "it is not read (was it changed after the upload?)"
        )

    def _check_meta(self, prefix: str, data: bytes) -> Pipeline:
        image = self.image
        shape, chunks = self._arrays[prefix]
        if len(data) > META_MAX_BYTES or image.dtype not in DTYPES:
            raise self._refuse(f"zarr.json is over {META_MAX_BYTES} bytes or the dtype unknown")
        try:
            meta = json.loads(data)
            found = {
                "shape": meta["shape"],
                "chunks": meta["chunk_grid"]["configuration"]["chunk_shape"],
                "dtype": meta["data_type"],
            }
        except (ValueError, RecursionError, TypeError, KeyError, AttributeError) as error:
            raise self._refuse(f"zarr.json is malformed ({echo(error)})") from None
        expected = {"shape": shape, "chunks": chunks, "dtype": image.dtype}
        for field, value in expected.items():
            if found[field] != value:
                raise self._refuse(
                    f"{prefix}zarr.json: {field} is {echo(found[field])}, the record says {value}"
                )
        import numpy as np

        raw = math.prod(chunks) * np.dtype(image.dtype).itemsize
        try:
            return Pipeline.from_metadata(meta, raw)
        except ChunkError as error:
            raise self._refuse(str(error)) from None

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """One key: a level's ``zarr.json`` checked once and kept, a chunk checked first."""
        prototype = prototype or default_buffer_prototype()
        if key.endswith("zarr.json") and key[: -len("zarr.json")] in self._arrays:
            prefix = key[: -len("zarr.json")]
            if prefix not in self._meta:
                found = await self._store.get(key, prototype)
                if found is None:
                    return None
                data = found.to_bytes()
                self._pipelines[prefix] = self._check_meta(prefix, data)
                self._meta[prefix] = data
            return prototype.buffer.from_bytes(self._meta[prefix])
        if key == "zarr.json":  # the image group's attributes (no chunk is sized by them)
            found = await self._store.get(key, prototype)
            if found is not None and len(found) > META_MAX_BYTES:
                raise self._refuse(f"zarr.json is over {META_MAX_BYTES} bytes")
            return found
        prefix = key.split("/", 1)[0] + "/" if self.image.level_chunks else ""
        pipeline = self._pipelines.get(prefix)
        if pipeline is None:
            raise self._refuse(f"{key!r} was asked for before its array's zarr.json was read")
        found = await self._store.get(key, prototype)  # whole: its header is checked
        if found is None:
            return None
        try:
            if pipeline.header_suffices:  # blosc or raw: the header, without copying the chunk
                head = found.as_numpy_array()[:HEADER_BYTES].tobytes()
                pipeline.check_header(key, head, len(found))
            else:
                pipeline.check_chunk(key, found.to_bytes())
        except ChunkError as error:
            raise self._refuse(str(error)) from None
        if byte_range is not None:  # not asked for by these arrays (no sharding)
            raise self._refuse(f"a partial read of {key!r} was asked for")
        return found

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Several keys, each as :meth:`get` reads it."""
        from arkitekt.mikro._stores import gather_gets

        return await gather_gets(self, prototype, key_ranges)

    def __repr__(self) -> str:
        return f"CheckedStore({self._store!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, CheckedStore) and other._store == self._store

    def __hash__(self) -> int:
        return hash(self._store)


def _arrays(image: ImageRecord) -> dict[str, tuple[list[int], list[int]]]:
    """The key prefix of each array of the image's store with its shape and chunks as stored.

    ``<n>/`` for level ``n`` (t, c, z, y, x), or ``""`` for a store from before pyramids (one
    array at the root, (c, t, z, y, x)).
    """
    if not image.level_chunks:
        return {"": (list(image.shape), list(image.chunks))}
    return {
        f"{level}/": (disk_order(level_shape(image.shape, level)), disk_order(chunks))
        for level, chunks in enumerate(image.level_chunks)
    }
