"""The read path of an image's pixels: which datalayer, which store, the lazy array.

An image in the server's bucket is read from there (``s3``, :mod:`arkitekt.mikro._s3`); else
from the server's disk (``local``) when this machine may use its path, else
through the server (``http``) with one :class:`~arkitekt.mikro._stores.HttpStore`, whose
``zarr.json`` is known in advance (prefetched by :func:`prefetch`, or written by the upload)
or fetched once when the data is first opened.

xarray and zarr are imported when pixels are first read, not when mikro is imported.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arkitekt.errors import ImageNotFoundError, LocalPathError, MikroError
from arkitekt.protocol.mikro import DIMS, Datalayer
from arkitekt.transport import MAX_BODY

if TYPE_CHECKING:
    import httpx
    import xarray as xr

    from arkitekt._scope import AppSlot
    from arkitekt.mikro._checked import CheckedStore
    from arkitekt.mikro._models import Image
    from arkitekt.mikro._s3 import BucketStore
    from arkitekt.mikro._stores import ClientGetter, HttpStore

__all__ = ["BucketReads", "open_data", "prefetch", "read_layer", "read_store"]


def read_layer(forced: Datalayer | None, image: Image) -> Datalayer:
    """The datalayer ``image`` is read through (``forced``, else the best one usable).

    The bucket for an image in one, else ``local`` where usable, else ``http``.

    Raises:
        LocalPathError: ``local`` is forced but the image is on no disk this machine can read.
        MikroError: ``s3`` is forced for an image that is not in a bucket.

    """
    if forced == "http":
        return "http"
    if image.storage == "s3" and forced in (None, "s3"):
        return "s3"
    if forced == "s3":
        raise MikroError(
            f"image {image.id!r} is not in the server's bucket; read it with datalayer 'http'"
        )
    local = image.local_path is not None and os.path.isdir(image.local_path)
    if forced == "local" and not local:
        raise LocalPathError(
            f"image {image.id!r} is not on a disk this machine can read (or the server's "
            "local path was refused, see the log); read it with datalayer 'http'"
        )
    return "local" if local else "http"


def read_store(
    image: Image, *, app_slot: AppSlot, client: ClientGetter, timeout: float
) -> HttpStore:
    """The one store ``image`` is read through over http, its ``zarr.json`` known.

    Blocks the calling thread while ``zarr.json`` is fetched (when it was not prefetched).

    Raises:
        MikroError: called on the app's event loop without a prefetched ``zarr.json`` (the
            fetch would block the loop).
        ImageNotFoundError: the server has no store for the image.

    """
    from arkitekt.mikro._stores import HttpStore, max_chunk_bytes

    store = HttpStore(
        image.store,
        app_slot=app_slot,
        client=client,
        timeout=timeout,
        cache={"zarr.json": image._zarr_json} if image._zarr_json else None,
        max_chunk_bytes=max_chunk_bytes(image.chunks, image.dtype),
    )
    if store.cached("zarr.json") is None:
        bridge = app_slot.scope.bridge
        if bridge.is_current():
            raise MikroError(
                "opening image data over http from the app's event loop would block it; "
                "use `image = await aget_image(id)` first, or open it off the loop"
            )
        if bridge.call(store.get, "zarr.json") is None:  # the store keeps what it read
            raise ImageNotFoundError(f"image {image.id!r} has no store on the server")
    return store


async def prefetch(image: Image, client: httpx.AsyncClient) -> None:
    """Fetch the ``zarr.json`` of ``image`` (on the app's loop), so reading needs no request.

    A refusal is not an error here: opening the data asks again and reports it.
    """
    from arkitekt.mikro._stores import META_MAX_BYTES

    response = await client.get(image.store + "zarr.json", extensions={MAX_BODY: META_MAX_BYTES})
    if response.status_code == 200:
        image._zarr_json = response.content


class BucketReads:
    """The bucket stores of the images an app read lately, reused while their credentials last.

    Opening an image's data through a new store costs a request for read credentials (the
    server asks the object store for them), a new obstore client (its TLS setup, its
    connections) and a read of the level's ``zarr.json``: about 20 ms, 5 % of reading 512 MiB
    back from a local S3 server. A kept store is handed out again only while its credentials
    stay valid for longer than obstore renews them before (never beyond the server's grant).
    The store is the image's :class:`~arkitekt.mikro._checked.CheckedStore`: the levels'
    ``zarr.json`` it checked are not read again.

    Args:
        size: how many images' stores are kept (the least recently opened go first).

    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._stores: OrderedDict[tuple[str, str], tuple[BucketStore, CheckedStore]] = OrderedDict()
        self._lock = threading.Lock()  # data is opened from any thread

    def open(self, endpoint: str, image: Image, bucket: Callable[[], BucketStore]) -> CheckedStore:
        """The checked store of ``image`` at ``endpoint``: a kept one, else one on ``bucket()``."""
        from arkitekt.mikro._checked import CheckedStore
        from arkitekt.mikro._s3 import RENEW_BEFORE

        key = (endpoint, image.id)
        with self._lock:
            kept = self._stores.get(key)
            if kept is not None:
                if kept[0].access.expires_at - dt.datetime.now(dt.UTC) > RENEW_BEFORE:
                    self._stores.move_to_end(key)
                    return kept[1]
                del self._stores[key]
        store = bucket()  # requests: outside the lock
        checked = CheckedStore(store, image)
        with self._lock:
            self._stores[key] = (store, checked)
            self._stores.move_to_end(key)
            while len(self._stores) > self._size:
                self._stores.popitem(last=False)
        return checked


def open_data(image: Image, store: Any, level: int = 0) -> xr.DataArray:
    """Pyramid level ``level`` of ``image`` in ``store`` as a lazy (c, t, z, y, x) array.

    Nothing is read until values are asked for; then zarr reads the chunks the selection
    touches straight into the result (:class:`~arkitekt.mikro._pixels.ZarrPixels`); the
    level's axes as stored (t, c, z, y, x) are transposed lazily.
    ``.chunk(dict(zip(image.dims, image.chunks)))`` gives a dask-backed view (one block per
    stored chunk) for out-of-core computation.

    The store is read through a :class:`~arkitekt.mikro._checked.CheckedStore` (``store``
    itself if it is one): its metadata must match the image's record and each chunk is
    bounded by it.

    Raises:
        MikroError: the store's ``zarr.json`` does not describe the recorded array.

    """
    import xarray as xr
    import zarr
    from xarray.core.indexing import LazilyIndexedArray

    from arkitekt.mikro._checked import CheckedStore
    from arkitekt.mikro._ome import level_path, stored_axes
    from arkitekt.mikro._pixels import ZarrPixels

    path = level_path(image, level)  # level n of the OME-Zarr group, (t, c, z, y, x)
    checked = store if isinstance(store, CheckedStore) else CheckedStore(store, image)
    array = zarr.open_array(checked, mode="r", zarr_format=3, path=path)
    return xr.DataArray(
        LazilyIndexedArray(ZarrPixels(array, stored_axes(image))),  # transposed in there
        dims=DIMS,
        name=image.name,
        attrs={
            "mikro_id": image.id,
            "channel_names": list(image.channel_names),
            "pixel_size": image.pixel_size.model_dump(exclude_none=True),
        },
    )
