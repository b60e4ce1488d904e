"""The models API functions return: :class:`Image`, :class:`Dataset`, :class:`ImagePage`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, PrivateAttr

from arkitekt.errors import MikroError
from arkitekt.protocol.mikro import DatasetRecord, ImageRecord

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Dataset", "Image", "ImagePage"]


class Image(ImageRecord):
    """A stored image: its metadata, and its pixels through :attr:`data`.

    Attributes:
        id: the server's id; pass it around (e.g. to another app) and fetch the image back
            with :func:`~arkitekt.mikro.get_image`.
        name: a human-readable name.
        shape: the array's shape in (c, t, z, y, x) order.
        dims: always ``("c", "t", "z", "y", "x")``.
        dtype: the numpy dtype name, e.g. ``"uint16"``.
        chunks: the zarr chunk shape of level 0, in (c, t, z, y, x) order.
        level_chunks: the chunk shape of each pyramid level, level 0 first (empty for an
            image stored before pyramids).
        created_at: when the upload finished (UTC).
        store: the URL of its store, an OME-Zarr 0.5 image group (read through the server).
        local_path: the store's directory when the server's disk is reachable (else
            ``None``): hand it to any OME-Zarr reader.
        tags: labels to search by.
        dataset: the id of its dataset, or ``None``.
        origins: ids of the images it was derived from (lineage).
        channel_names: names of the channels (one per ``c``), or empty.
        pixel_size: the physical size of a pixel along x, y, z (and t).
        metadata: free-form JSON.
        private: visible only to the app that stored it.
        owner: the identifier of the app that stored it.

    Example:
        >>> from arkitekt.mikro import from_xarray, get_image
        >>> data = np.ones((2, 8, 8), dtype="uint8")
        >>> with app:
        ...     stored = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name="ones")
        ...     image = get_image(stored.id)
        ...     int(image.data.sel(c=0, t=0).max().compute())
        1

    """

    _reader: Any = PrivateAttr(default=None)
    _data: Any = PrivateAttr(default=None)
    _levels: dict[int, Any] = PrivateAttr(default_factory=dict)
    _zarr_json: bytes | None = PrivateAttr(default=None)

    @property
    def levels(self) -> list[tuple[int, int, int, int, int]]:
        """The (c, t, z, y, x) shape of every pyramid level, level 0 (full resolution) first.

        Each level holds every second pixel of y and x of the one before (level ``n``: the
        level-0 pixels at ``(2**n * i, 2**n * j)``), down to a level of at most 256 px along
        y and x; an image that small has one level.
        """
        from arkitekt.mikro._ome import level_count
        from arkitekt.protocol.ome import level_shape

        return [level_shape(self.shape, level) for level in range(level_count(self))]

    def level(self, n: int) -> xr.DataArray:
        """Pyramid level ``n`` as a lazy, dask-backed ``xr.DataArray`` with dims (c, t, z, y, x).

        ``level(0)`` is :attr:`data`; its shape is ``levels[n]``. Nothing is read until values
        are computed.

        Raises:
            InvalidImageError: no such level.
            MikroError: the image was not returned by mikro (built by hand or unpickled).

        """
        from arkitekt.mikro._ome import level_path

        level_path(self, n)  # the level exists
        if n == 0:
            return self.data
        if n not in self._levels:
            self._levels[n] = self._open(n)
        return self._levels[n]  # type: ignore[no-any-return]

    def _open(self, level: int) -> xr.DataArray:
        if self._reader is None:
            raise MikroError(
                f"image {self.id!r} has no connection to a server; fetch it with "
                "get_image(id) inside `with app:`"
            )
        return self._reader(self, level)  # type: ignore[no-any-return]

    @property
    def data(self) -> xr.DataArray:
        """The pixels as a lazy ``xr.DataArray`` with dims (c, t, z, y, x).

        Nothing is read until values are asked for (``.values``, ``.load()``, ``await
        .load_async()``); then zarr reads only the chunks the selection touches, straight into
        the result. For out-of-core computation take the dask-backed view:
        ``image.data.chunk(dict(zip(image.dims, image.chunks)))``. Reading through the server
        (the ``http`` datalayer) needs the app that fetched the image to be open; in async
        code use ``await image.data.load_async()`` or compute off the event loop, e.g.
        ``await anyio.to_thread.run_sync(lambda: image.data.values)``.

        Raises:
            MikroError: the image was not returned by mikro (built by hand or unpickled).

        """
        if self._data is None:
            self._data = self._open(0)
        return self._data  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        shape = "x".join(str(size) for size in self.shape)
        return f"<Image {self.name!r} {shape} {self.dtype} id={self.id}>"

    __str__ = __repr__


class Dataset(DatasetRecord):
    """A named group of images (:func:`~arkitekt.mikro.create_dataset`)."""


class ImagePage(BaseModel):
    """One page of :func:`~arkitekt.mikro.search_images` results.

    Attributes:
        items: the images of this page, newest first.
        total: how many images match in all.
        offset: the index of the first item among all matches.
        limit: the page size asked for.

    """

    items: list[Image]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        """The ``offset`` of the next page, or ``None`` on the last page."""
        following = self.offset + len(self.items)
        return following if following < self.total and self.items else None
