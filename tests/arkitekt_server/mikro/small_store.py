"""The small image store the mikro server tests upload, tamper with and verify."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from arkitekt.mikro._upload import codec
from arkitekt.protocol.ome import DISK_DIMS, disk_order, group_document, level_shape

__all__ = ["CHUNKS", "SHAPE", "image_keys", "store_keys"]

SHAPE = [1, 1, 2, 8, 8]
CHUNKS = [1, 1, 1, 8, 4]  # 4 chunks of 64 bytes (uint16); one pyramid level (8 px < 256 px)


def image_keys(
    shape: list[int],
    chunks: list[int],
    data: np.ndarray[Any, Any],
    compressor: Any = None,
    level_chunks: list[list[int]] | None = None,
) -> dict[str, bytes]:
    """Every key of a valid OME-Zarr image of ``data`` ((c, t, z, y, x)), as the client writes
    it: the group's ``zarr.json``, and for each level ``n`` ``n/zarr.json`` and the chunks
    ``n/c/...`` (mikro's codec unless ``compressor`` is given; ``level_chunks``: the chunks of
    each level, by default ``chunks`` for one level)."""
    store: dict[str, Any] = {}
    for level, level_chunk in enumerate(level_chunks or [chunks]):
        step = 1 << level
        array = zarr.create_array(
            store,
            name=str(level),
            shape=disk_order(level_shape(shape, level)),
            dtype=data.dtype,
            chunks=disk_order(level_chunk),
            compressors=[compressor or codec(data.dtype.itemsize)],
            dimension_names=DISK_DIMS,
            config={"write_empty_chunks": True},
        )
        array[:] = data[..., ::step, ::step].swapaxes(0, 1)
    keys = {key: value.to_bytes() for key, value in store.items()}
    ranges = [(0.0, 1.0, float(data.min()), float(data.max()))] * shape[0]
    keys["zarr.json"] = group_document(shape, {}, [], ranges, len(level_chunks or [chunks]))
    return keys


def store_keys(compressor: Any = None) -> dict[str, bytes]:
    """Every key of a valid store of a ``SHAPE`` uint16 image (see :func:`image_keys`)."""
    data = np.arange(128, dtype=np.uint16).reshape(SHAPE)
    return image_keys(SHAPE, CHUNKS, data, compressor)
