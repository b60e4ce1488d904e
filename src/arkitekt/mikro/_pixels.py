"""An image's zarr array as an xarray backend array: lazy, read by zarr straight into one buffer.

``Image.data`` wraps :class:`ZarrPixels` in xarray's ``LazilyIndexedArray``, the way
``xr.open_zarr(..., chunks=None)`` does: indexing (``.isel``, ``.sel``) only narrows the
selection, and computing values (``.values``, ``.load()``, ``await .load_async()``) is one
zarr read of exactly the chunks the selection touches, decoded into the result. dask would
compute one block per task and then copy them all into the result once more.

Importing this module imports xarray (the read path imports it when data is first opened).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

__all__ = ["ZarrPixels"]


class ZarrPixels(BackendArray):
    """A read-only zarr array (sync or async) behind xarray's explicit indexers.

    Args:
        array: an opened ``zarr.Array``.

    """

    __slots__ = ("_array", "dtype", "shape")

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype: np.dtype[Any] = array.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        array = self._array
        if isinstance(key, indexing.OuterIndexer):
            method = array.oindex.__getitem__
        elif isinstance(key, indexing.VectorizedIndexer):
            method = array.vindex.__getitem__
        else:
            method = array.__getitem__
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.VECTORIZED, method
        )

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> Any:
        """As ``__getitem__``, awaited (``await image.data.load_async()``)."""
        array = self._array._async_array
        if isinstance(key, indexing.OuterIndexer):
            method = array.oindex.getitem
        elif isinstance(key, indexing.VectorizedIndexer):
            method = array.vindex.getitem
        else:
            method = array.getitem
        return await indexing.async_explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.VECTORIZED, method
        )
