"""The mikro service object (``app.mikro``): talks to the server's image API.

API functions (:mod:`arkitekt.mikro._api`) are thin wrappers around the ``a*`` methods here;
every method runs on the app's event loop and resolves the transport per call.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import httpx

from arkitekt._scope import AppSlot
from arkitekt._service import Service
from arkitekt._settings import Settings
from arkitekt.errors import (
    ImageNotFoundError,
    LocalPathError,
    MikroError,
    UploadError,
)
from arkitekt.fakts import Fakts
from arkitekt.mikro._answers import BOUNDED, DatasetList, PageAnswer, detail, parse, raise_for
from arkitekt.mikro._checks import check_page
from arkitekt.mikro._localdisk import LocalDisk
from arkitekt.mikro._models import Dataset, Image, ImagePage
from arkitekt.mikro._normalize import Prepared
from arkitekt.mikro._upload import UploadProgress, UploadsInProgress, write_array
from arkitekt.protocol.mikro import (
    DIMS,
    Datalayer,
    DatasetIn,
    ImageFields,
    ImageRecord,
    UploadGrant,
    UploadRequest,
)
from arkitekt.transport._wire import MAX_BODY

if TYPE_CHECKING:
    import xarray as xr

    from arkitekt.transport import Transport

__all__ = ["Mikro"]

log = logging.getLogger("arkitekt.mikro")


class Mikro(Service):
    """The image service of an app.

    Attributes:
        datalayer: force a datalayer for uploads and reads (``"local"`` or ``"http"``); ``None``
            (default) uses the server's choice (``local`` when the client runs on the server's
            machine, else ``http``) where a ``local`` grant could be used safely (see
            :mod:`arkitekt.mikro._localdisk`), else ``http``. Set it before ``with app:``.

    """

    def __init__(
        self, app_slot: AppSlot, transport: Callable[[], Any], fakts: Fakts, settings: Settings
    ) -> None:
        super().__init__(app_slot)
        self._transport = transport
        self.fakts = fakts
        self.settings = settings
        self.datalayer: Datalayer | None = None
        self._uploads = object()  # the scope's key of the uploads in progress
        self._disk_of: tuple[tuple[str, str | None], LocalDisk] | None = None

    async def _guard(self) -> UploadsInProgress:
        return UploadsInProgress(self.settings.timeout)

    # -- plumbing --------------------------------------------------------------------------
    async def _connect(self) -> tuple[Transport, str]:
        transport: Transport = await self._transport()
        group = await transport.agroup("mikro")
        endpoint = str(group.get("endpoint_url", ""))
        if not endpoint:
            raise MikroError("the server's 'mikro' configuration has no endpoint_url")
        return transport, endpoint if endpoint.endswith("/") else endpoint + "/"

    async def _disk(self) -> LocalDisk:
        """Where ``local`` paths of this server may be, on this machine (see localdisk)."""
        transport, endpoint = await self._connect()
        group = await transport.agroup("mikro")
        raw = group.get("local_root")
        key = (endpoint, raw if isinstance(raw, str) else None)
        if self._disk_of is None or self._disk_of[0] != key:  # once per configuration
            disk = await anyio.to_thread.run_sync(LocalDisk.of, group, endpoint)
            self._disk_of = (key, disk)
        return self._disk_of[1]

    async def _client(self) -> httpx.AsyncClient:
        transport: Transport = await self._transport()
        return transport.client

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport, endpoint = await self._connect()
        response = await transport.client.request(
            method, endpoint + path, extensions=BOUNDED, **kwargs
        )
        raise_for(response)
        return response

    async def _images(
        self, records: Sequence[ImageRecord], disk: LocalDisk, zarr_json: bytes | None = None
    ) -> list[Image]:
        """The images of ``records``, each ``local_path`` checked (off the loop, in one go)."""

        def check() -> tuple[list[str | None], list[tuple[str, LocalPathError]]]:
            paths: list[str | None] = []
            refused: list[tuple[str, LocalPathError]] = []
            for record in records:
                path = None
                if record.local_path is not None:
                    try:
                        path = str(disk.check(record.local_path, fresh=False))
                    except LocalPathError as error:
                        refused.append((record.id, error))
                paths.append(path)
            return paths, refused

        if any(record.local_path is not None for record in records):
            paths, refused = await anyio.to_thread.run_sync(check)
        else:
            paths, refused = [None] * len(records), []
        if refused:  # one line per answer, however many images it lists
            first, error = refused[0]
            log.warning(
                "%d image(s) of this answer have a local path that was refused, read through "
                "http instead (image %s: %s)",
                len(refused),
                first,
                error,
            )
        return [
            self._image(record, path, zarr_json)
            for record, path in zip(records, paths, strict=True)
        ]

    def _image(self, record: ImageRecord, local_path: str | None, zarr_json: bytes | None) -> Image:
        fields = record.model_dump()
        fields["local_path"] = local_path
        image = Image.model_validate(fields)
        image._reader = self._open_data
        image._zarr_json = zarr_json
        return image

    def _read_layer(self, image: Image) -> Datalayer:
        if self.datalayer == "http":
            return "http"
        local = image.local_path is not None and os.path.isdir(image.local_path)
        if self.datalayer == "local" and not local:
            raise LocalPathError(
                f"image {image.id!r} is not on a disk this machine can read (or the server's "
                "local path was refused, see the log); read it with datalayer 'http'"
            )
        return "local" if local else "http"

    def _open_data(self, image: Image) -> xr.DataArray:
        import dask.array as da
        import xarray as xr
        import zarr
        from zarr.storage import LocalStore

        from arkitekt.mikro._stores import HttpStore, max_chunk_bytes

        store: Any
        if self._read_layer(image) == "local":
            assert image.local_path is not None
            store = LocalStore(image.local_path, read_only=True)
        else:
            cache = {"zarr.json": image._zarr_json} if image._zarr_json else None
            chunk_bytes = max_chunk_bytes(image.chunks, image.dtype)
            store = HttpStore(
                image.store,
                app_slot=self.app_slot,
                client=self._client,
                timeout=self.settings.timeout,
                cache=cache,
                max_chunk_bytes=chunk_bytes,
            )
            if cache is None:
                scope = self.app_slot.scope
                if scope.bridge.is_current():
                    raise MikroError(
                        "opening image data over http from the app's event loop would block it; "
                        "use `image = await aget_image(id)` first, or open it off the loop"
                    )
                meta = scope.bridge.call(store.get, "zarr.json")
                if meta is None:
                    raise ImageNotFoundError(f"image {image.id!r} has no store on the server")
                store = HttpStore(
                    image.store,
                    app_slot=self.app_slot,
                    client=self._client,
                    timeout=self.settings.timeout,
                    cache={"zarr.json": meta.to_bytes()},
                    max_chunk_bytes=chunk_bytes,
                )
        array = zarr.open_array(store, mode="r", zarr_format=3)
        name = f"mikro-{image.id}"
        blocks = _read_blocks(tuple(array.chunks), tuple(array.shape), array.dtype.itemsize)
        lazy = da.from_array(array, chunks=blocks, lock=False, name=name)  # type: ignore[no-untyped-call]
        return xr.DataArray(
            lazy,
            dims=DIMS,
            name=image.name,
            attrs={
                "mikro_id": image.id,
                "channel_names": list(image.channel_names),
                "pixel_size": image.pixel_size.model_dump(exclude_none=True),
            },
        )

    async def _prefetch(self, image: Image) -> None:
        """``zarr.json`` of a store read over http, so ``.data`` opens without a request."""
        from arkitekt.mikro._stores import META_MAX_BYTES

        if self.datalayer == "local" or (self.datalayer is None and image.local_path is not None):
            return  # read from disk (a forced `local` without a usable path fails at `.data`)
        client = await self._client()
        response = await client.get(
            image.store + "zarr.json", extensions={MAX_BODY: META_MAX_BYTES}
        )
        if response.status_code == 200:
            image._zarr_json = response.content

    # -- images ----------------------------------------------------------------------------
    async def aupload(
        self, prepared: Prepared, fields: ImageFields, *, datalayer: Datalayer | None = None
    ) -> Image:
        """Upload a prepared array with its metadata; see :func:`arkitekt.mikro.afrom_xarray`.

        Raises:
            InvalidImageError: the server refused the metadata (nothing was uploaded).
            ImageNotFoundError: the dataset or an origin does not exist.
            UploadError: writing or verifying the pixels failed (nothing is left behind).

        """
        disk = await self._disk()
        # the server's choice only where a `local` grant could be used: else ask for http
        fallback = None if disk.root is not None else "http"
        request = UploadRequest(
            **fields.model_dump(),
            shape=prepared.shape,
            chunks=prepared.chunks,
            dtype=prepared.dtype,
            datalayer=datalayer or self.datalayer or fallback,
        )
        transport, endpoint = await self._connect()
        client = transport.client
        # opened after the transport, so the app closes it first: its exit waits for this
        # upload's abort while the HTTP client still works (Ctrl+C in `with app:` included)
        uploads = await self.app_slot.scope.resource(self._uploads, "mikro uploads", self._guard)
        with uploads.running():
            response = await client.post(
                endpoint + "uploads/", json=request.model_dump(mode="json"), extensions=BOUNDED
            )
            raise_for(response)
            grant = parse(response, UploadGrant, "an upload grant")
            try:
                store = self._upload_store(grant, disk)
                concurrency = self.settings.mikro.upload_concurrency
                enabled = self.settings.mikro.progress
                with UploadProgress(fields.name, prepared.nbytes, enabled=enabled) as progress:
                    await write_array(prepared, store, concurrency=concurrency, progress=progress)
                response = await client.post(
                    endpoint + f"uploads/{grant.id}/finish/", extensions=BOUNDED
                )
                raise_for(response, UploadError)
            except BaseException as error:
                with anyio.CancelScope(shield=True):
                    aborted = await _abort(client, endpoint, grant.id)
                if isinstance(error, LocalPathError):
                    raise LocalPathError(f"{error}; {aborted}") from None
                if isinstance(error, Exception) and not isinstance(error, UploadError):
                    raise UploadError(
                        f"uploading {fields.name!r} failed, {aborted}: "
                        f"{type(error).__name__}: {error}"
                    ) from error
                if isinstance(error, UploadError):
                    raise UploadError(f"{error} ({aborted})") from error
                raise
        record = parse(response, ImageRecord, "an image record")
        zarr_json = store.cached("zarr.json") if hasattr(store, "cached") else None
        (image,) = await self._images([record], disk, zarr_json)
        return image

    def _upload_store(self, grant: UploadGrant, disk: LocalDisk) -> Any:
        from arkitekt.mikro._stores import HttpStore

        if grant.datalayer == "local":
            from zarr.storage import LocalStore

            return LocalStore(disk.check(grant.path, fresh=True))
        if grant.url is None:
            raise UploadError("the server's http upload grant has no url")
        return HttpStore(
            grant.url,
            app_slot=self.app_slot,
            client=self._client,
            timeout=self.settings.timeout,
            read_only=False,
            fresh=True,
        )

    async def aget(self, image_id: str) -> Image:
        """Fetch an image's record by id.

        Raises:
            ImageNotFoundError: no such image, or not visible to this app.

        """
        response = await self._request("GET", f"images/{_segment(image_id)}")
        record = parse(response, ImageRecord, "an image record")
        (image,) = await self._images([record], await self._disk())
        await self._prefetch(image)
        return image

    async def asearch(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        dataset: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ImagePage:
        """One page of the images visible to this app, newest first."""
        limit, offset = check_page(limit, offset)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for key, value in (("name", name), ("tag", tag), ("dataset", dataset)):
            if value is not None:
                params[key] = value
        response = await self._request("GET", "images/", params=params)
        page = parse(response, PageAnswer, "a page of images")
        disk = await self._disk()
        return ImagePage(
            items=await self._images(page.items, disk),
            total=page.total,
            offset=page.offset,
            limit=page.limit,
        )

    async def adelete(self, image_id: str) -> None:
        """Delete an image and its pixels (only the app that stored it may)."""
        await self._request("DELETE", f"images/{_segment(image_id)}")

    # -- datasets --------------------------------------------------------------------------
    async def acreate_dataset(self, name: str, description: str = "") -> Dataset:
        """Create a dataset."""
        body = DatasetIn(name=name, description=description).model_dump()
        response = await self._request("POST", "datasets/", json=body)
        return parse(response, Dataset, "a dataset")

    async def alist_datasets(self) -> list[Dataset]:
        """Every dataset of the deployment, newest first."""
        response = await self._request("GET", "datasets/")
        return parse(response, DatasetList, "a list of datasets").root


_READ_BLOCK_BYTES = 32 << 20


def _read_blocks(chunks: tuple[int, ...], shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Blocks (for dask) of whole zarr chunks, grown along z, t, c up to about 32 MiB.

    Fewer, larger blocks let zarr fetch and decode their chunks concurrently in one call.
    """
    blocks = list(chunks)
    for axis in (2, 1, 0):
        while blocks[axis] < shape[axis]:
            grown = min(shape[axis], blocks[axis] + chunks[axis])
            if math.prod(blocks) // blocks[axis] * grown * itemsize > _READ_BLOCK_BYTES:
                return tuple(blocks)
            blocks[axis] = grown
    return tuple(blocks)


def _segment(value: str) -> str:
    if not value or "/" in value or value in {".", ".."}:
        raise ImageNotFoundError(f"{value!r} is not an image id")
    return quote(value, safe="")  # "?" or "#" in an id must not become a query or fragment


async def _abort(client: httpx.AsyncClient, endpoint: str, grant_id: str) -> str:
    """Abort a grant on the server; what became of the upload, for the error message."""
    try:
        answer = await client.delete(endpoint + f"uploads/{grant_id}/")
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        if answer.status_code in (204, 404):  # 404: nothing of it is left either
            return "nothing was stored"
        problem = f"HTTP {answer.status_code}: {detail(answer)}"
    log.warning("could not abort upload grant %s: %s", grant_id, problem)
    return (
        f"the server did not confirm the abort of upload {grant_id} ({problem}); it removes "
        "the upload when its grant expires"
    )
