"""The small image store the mikro server tests upload, tamper with and verify."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from arkitekt.mikro._upload import codec

__all__ = ["CHUNKS", "SHAPE", "store_keys"]

SHAPE = [1, 1, 2, 8, 8]
CHUNKS = [1, 1, 1, 8, 4]  # 4 chunks of 64 bytes (uint16)


def store_keys(compressor: Any = None) -> dict[str, bytes]:
    """Every key of a valid zarr v3 store of a ``SHAPE`` uint16 image, as the client writes it
    (mikro's codec unless ``compressor`` is given)."""
    store: dict[str, Any] = {}
    array = zarr.create_array(
        store,
        shape=SHAPE,
        dtype="uint16",
        chunks=CHUNKS,
        compressors=[compressor or codec(2)],
        dimension_names=["c", "t", "z", "y", "x"],
        config={"write_empty_chunks": True},
    )
    array[:] = np.arange(128, dtype=np.uint16).reshape(SHAPE)
    return {key: value.to_bytes() for key, value in store.items()}
