"""The mikro service object (``app.mikro``): the image API's HTTP calls, one method each.

API functions (:mod:`arkitekt.mikro._api`) are thin wrappers around the ``a*`` methods here;
every method runs on the app's event loop and resolves the transport per call. The read path
of pixels is in :mod:`arkitekt.mikro._read`, an upload grant's life in
:mod:`arkitekt.mikro._grant`, the mapping of answers to errors in :mod:`arkitekt.mikro._answers`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import httpx

from arkitekt._scope import AppSlot
from arkitekt._service import Service
from arkitekt._settings import Settings
from arkitekt.errors import ImageNotFoundError, LocalPathError, MikroError, UploadError
from arkitekt.fakts import Fakts
from arkitekt.mikro._answers import BOUNDED, DatasetList, PageAnswer, parse, raise_for
from arkitekt.mikro._checks import check_page
from arkitekt.mikro._grant import run_grant
from arkitekt.mikro._localdisk import LocalDisk
from arkitekt.mikro._models import Dataset, Image, ImagePage
from arkitekt.mikro._normalize import Prepared
from arkitekt.mikro._read import BucketReads, open_data, prefetch, read_layer, read_store
from arkitekt.mikro._upload import UploadProgress, UploadsInProgress, write_array
from arkitekt.protocol.mikro import (
    Datalayer,
    DatasetIn,
    ImageFields,
    ImageRecord,
    S3Access,
    UploadGrant,
    UploadRequest,
)

if TYPE_CHECKING:
    import xarray as xr

    from arkitekt.transport import Transport

__all__ = ["Mikro"]

log = logging.getLogger("arkitekt.mikro")


class Mikro(Service):
    """The image service of an app.

    Attributes:
        datalayer: force a datalayer for uploads and reads (``"local"``, ``"http"`` or
            ``"s3"``); ``None`` (default) uses the server's choice: ``s3`` when the server
            stores images in a bucket (pixels go straight to it, with credentials scoped to
            the image); else ``local`` when the client runs on the server's machine where a
            ``local`` grant could be used safely (the server is this machine and the path lies
            inside the local root it advertises), else ``http``. A ``local`` path that is not
            safe is refused with :class:`~arkitekt.errors.LocalPathError`. Set it before
            ``with app:``.

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
        self._bucket_reads = BucketReads()

    @property
    def rath(self) -> Mikro:
        """The service itself, under the classic client's name.

        ``from_xarray(..., rath=app.mikro.rath)`` is ``from_xarray(..., mikro=app.mikro)``.
        """
        return self

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
        return read_layer(self.datalayer, image)

    def _bucket_store(self, access: S3Access, renew_url: str, max_chunk_bytes: int = 0) -> Any:
        """A zarr store on the keys ``access`` reaches; renewed at ``renew_url`` (POST)."""
        from arkitekt.mikro._s3 import bucket_store
        from arkitekt.mikro._stores import max_chunk_bytes as bound

        async def fetch() -> S3Access:
            client = await self._client()
            response = await client.post(renew_url, extensions=BOUNDED)
            raise_for(response)
            return parse(response, S3Access, "credentials for the bucket")

        def renew() -> S3Access:
            bridge = self.app_slot.scope.bridge
            if bridge.is_current():
                raise MikroError(
                    "the bucket's credentials expired while the app's event loop was blocked; "
                    "read image data off the loop"
                )
            return bridge.call(fetch)

        limit = max_chunk_bytes or bound((1,), "uint8")
        return bucket_store(access, renew, max_chunk_bytes=limit)

    async def _read_access(self, image: Image) -> S3Access:
        response = await self._request("POST", f"images/{_segment(image.id)}/access/")
        return parse(response, S3Access, "credentials for the bucket")

    def _open_data(self, image: Image, level: int = 0) -> xr.DataArray:
        store: Any
        layer = self._read_layer(image)
        if layer == "s3":
            bridge = self.app_slot.scope.bridge
            if bridge.is_current():
                raise MikroError(
                    "opening image data from the app's event loop would block it; open it off "
                    "the loop, e.g. `await anyio.to_thread.run_sync(lambda: image.data.values)`"
                )
            _, endpoint = bridge.call(self._connect)

            def bucket() -> Any:
                access = bridge.call(self._read_access, image)
                renew = endpoint + f"images/{_segment(image.id)}/access/"
                return self._bucket_store(access, renew, _largest_chunk(image))

            return open_data(image, self._bucket_reads.open(endpoint, image, bucket), level)
        if layer == "local":
            from zarr.storage import LocalStore

            assert image.local_path is not None  # read_layer chose local: the path is a dir
            store = LocalStore(image.local_path, read_only=True)
        else:
            store = read_store(
                image, app_slot=self.app_slot, client=self._client, timeout=self.settings.timeout
            )
        return open_data(image, store, level)

    async def _prefetch(self, image: Image) -> None:
        if self.datalayer == "local" or (self.datalayer is None and image.local_path is not None):
            return  # read from disk (a forced `local` without a usable path fails at `.data`)
        if image.storage == "s3" and self.datalayer != "http":
            return  # read from the bucket
        await prefetch(image, await self._client())

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
        # the server's choice where it is s3 or a `local` grant could be used: else ask for http
        transport, endpoint = await self._connect()
        advertised = (await transport.agroup("mikro")).get("datalayer")
        fallback = None if disk.root is not None or advertised == "s3" else "http"
        request = UploadRequest(
            **fields.model_dump(),
            shape=prepared.shape,
            chunks=prepared.chunks,
            level_chunks=list(prepared.level_chunks),
            dtype=prepared.dtype,
            datalayer=datalayer or self.datalayer or fallback,
        )
        # opened after the transport, so the app closes it first: its exit waits for this
        # upload's abort while the HTTP client still works (Ctrl+C in `with app:` included)
        uploads = await self.app_slot.scope.resource(self._uploads, "mikro uploads", self._guard)

        async def write(store: Any) -> None:
            concurrency = self.settings.mikro.upload_concurrency
            enabled = self.settings.mikro.progress
            with UploadProgress(fields.name, prepared.nbytes, enabled=enabled) as progress:
                await write_array(
                    prepared, fields, store, concurrency=concurrency, progress=progress
                )

        with uploads.running():
            record, store = await run_grant(
                transport.client,
                endpoint,
                request,
                store_for=lambda grant: self._upload_store(grant, disk, endpoint),
                write=write,
            )
        zarr_json = store.cached("zarr.json") if hasattr(store, "cached") else None
        (image,) = await self._images([record], disk, zarr_json)
        return image

    def _upload_store(self, grant: UploadGrant, disk: LocalDisk, endpoint: str) -> Any:
        from arkitekt.mikro._stores import HttpStore

        if grant.datalayer == "s3":
            if grant.s3 is None or not grant.s3.writable:
                raise UploadError("the server's s3 upload grant has no write credentials")
            return self._bucket_store(
                grant.s3, endpoint + f"uploads/{_segment(grant.id)}/credentials/"
            )
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


def _largest_chunk(image: Image) -> int:
    """The largest encoded chunk of any level of ``image``."""
    from arkitekt.mikro._stores import max_chunk_bytes

    return max(
        max_chunk_bytes(chunks, image.dtype) for chunks in image.level_chunks or [image.chunks]
    )


def _segment(value: str) -> str:
    if not value or "/" in value or value in {".", ".."}:
        raise ImageNotFoundError(f"{value!r} is not an image id")
    return quote(value, safe="")  # "?" or "#" in an id must not become a query or fragment
