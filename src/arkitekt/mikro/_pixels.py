"""An image's zarr array as an xarray backend array: lazy, read straight into one buffer.

``Image.data`` wraps :class:`ZarrPixels` in xarray's ``LazilyIndexedArray``, the way
``xr.open_zarr(..., chunks=None)`` does: indexing (``.isel``, ``.sel``) only narrows the
selection, and computing values (``.values``, ``.load()``, ``await .load_async()``) is one
read of exactly the chunks the selection touches, decoded into the result: by
:mod:`arkitekt.mikro._chunk_reads` for slices of arrays in mikro's codec (each whole chunk
decoded in place, in parallel), else by zarr. dask would compute one block per task and then
copy them all into the result once more.

Importing this module imports xarray (the read path imports it when data is first opened).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xarray.backends import BackendArray
from xarray.core import indexing

from arkitekt.mikro._chunk_reads import plan, read

__all__ = ["ZarrPixels"]


class ZarrPixels(BackendArray):
    """A read-only zarr array (sync or async) behind xarray's explicit indexers.

    Its axes may be presented in another order than stored. The transposition happens here,
    on the indexers and on each result (a view), not in xarray: a transposed lazily indexed
    array would turn every read into vectorized (point-by-point) indexing. Selections reach
    zarr as orthogonal indexing in the stored order.

    Args:
        array: an opened ``zarr.Array``.
        order: the stored axis of each presented axis (presented axis ``i`` is stored axis
            ``order[i]``); default: as stored.

    """

    __slots__ = ("_array", "_order", "dtype", "shape")

    def __init__(self, array: Any, order: tuple[int, ...] | None = None) -> None:
        self._array = array
        self._order = order if order is not None else tuple(range(array.ndim))
        self.shape: tuple[int, ...] = tuple(int(array.shape[axis]) for axis in self._order)
        self.dtype: np.dtype[Any] = array.dtype

    def _stored(self, key: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        """The stored-order key of a presented-order one, and the axes to drop after.

        Integers become one-long slices, so that every axis survives the transposition.
        """
        stored: list[Any] = [slice(None)] * len(self._order)
        dropped = []
        for axis, part in enumerate(key):
            if isinstance(part, int | np.integer):
                part = slice(int(part), int(part) + 1)
                dropped.append(axis)
            stored[self._order[axis]] = part
        return tuple(stored), tuple(dropped)

    def _presented(self, data: Any, dropped: tuple[int, ...]) -> Any:
        data = np.transpose(np.asarray(data), self._order)
        return data.squeeze(axis=dropped) if dropped else data

    def _read(self, key: tuple[Any, ...]) -> Any:
        from zarr.core.sync import sync

        stored, dropped = self._stored(key)
        selection = plan(self._array._async_array, stored)
        if selection is None:
            return self._presented(self._array.oindex[stored], dropped)
        return self._presented(sync(read(self._array._async_array, selection)), dropped)

    async def _aread(self, key: tuple[Any, ...]) -> Any:
        stored, dropped = self._stored(key)
        array = self._array._async_array
        selection = plan(array, stored)
        if selection is None:
            return self._presented(await array.oindex.getitem(stored), dropped)
        return self._presented(await read(array, selection), dropped)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read
        )

    async def async_getitem(self, key: indexing.ExplicitIndexer) -> Any:
        """As ``__getitem__``, awaited (``await image.data.load_async()``)."""
        return await indexing.async_explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._aread
        )
