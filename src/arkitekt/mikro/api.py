"""The image API: each function has an async twin (``afrom_xarray``) and a blocking one.

Inside ``with app:`` (or ``async with app:``) they use the active app; pass ``mikro=app.mikro``
to use a particular app from any thread while it is open.

Example:
    >>> with app:  # doctest: +SKIP
    ...     image = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name="stack")
    ...     again = get_image(image.id)
    ...     again.data.sel(c=0, t=0).max().compute()

"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from arkitekt.bridge import loopsafe, syncify
from arkitekt.inject import Provide, inject
from arkitekt.mikro.errors import InvalidImageError
from arkitekt.mikro.models import Dataset, Image, ImagePage
from arkitekt.mikro.normalize import prepare
from arkitekt.mikro.service import Mikro
from arkitekt.protocol.mikro import MAX_METADATA_BYTES, Datalayer, ImageFields, PixelSize

__all__ = [
    "acreate_dataset",
    "adelete_image",
    "afrom_xarray",
    "aget_image",
    "alist_datasets",
    "asearch_images",
    "create_dataset",
    "delete_image",
    "from_xarray",
    "get_image",
    "list_datasets",
    "search_images",
]


def _id(value: str | Image | Dataset, what: str) -> str:
    if isinstance(value, Image | Dataset):
        return value.id
    if isinstance(value, str) and value:
        return value
    raise InvalidImageError(f"{what} must be an id (str) or a model, not {value!r}")


def _fields(
    name: Any,
    *,
    tags: Sequence[str] | None,
    dataset: str | Dataset | None,
    origins: Sequence[str | Image] | None,
    channel_names: Sequence[str] | None,
    channels: int,
    pixel_size: PixelSize | Mapping[str, float] | None,
    metadata: Mapping[str, Any] | None,
    private: bool,
) -> ImageFields:
    if not isinstance(name, str) or not name.strip():
        raise InvalidImageError(f"an image needs a non-empty name, got {name!r}")
    if isinstance(tags, str):
        raise InvalidImageError("tags must be a list of strings, not one string")
    names = list(channel_names or [])
    if names and len(names) != channels:
        raise InvalidImageError(
            f"{len(names)} channel name(s) given for {channels} channel(s) (the size of 'c')"
        )
    meta = dict(metadata or {})
    try:
        size = len(json.dumps(meta, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidImageError(f"metadata must be JSON-serialisable: {error}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidImageError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    try:
        return ImageFields(
            name=name,
            tags=list(tags or []),
            dataset=_id(dataset, "dataset") if dataset is not None else None,
            origins=[_id(origin, "origin") for origin in origins or []],
            channel_names=names,
            pixel_size=pixel_size if isinstance(pixel_size, PixelSize) else dict(pixel_size or {}),
            metadata=meta,
            private=private,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        raise InvalidImageError(f"invalid image metadata: {problems}") from None


@loopsafe
@inject
async def afrom_xarray(
    array: Any,
    name: str,
    *,
    tags: Sequence[str] | None = None,
    dataset: str | Dataset | None = None,
    origins: Sequence[str | Image] | None = None,
    channel_names: Sequence[str] | None = None,
    pixel_size: PixelSize | Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
    private: bool = False,
    datalayer: Datalayer | None = None,
    mikro: Mikro = Provide("mikro"),
) -> Image:
    """Store an ``xr.DataArray`` (numpy- or dask-backed) as an image.

    The array is normalised to dims (c, t, z, y, x): ``x`` and ``y`` are required, missing
    ``c``, ``t``, ``z`` get size 1. Pixels are written as a zarr v3 array (blosc lz4,
    bitshuffle) into the datalayer the server grants; the image exists once the server has
    verified the store. dask-backed arrays are computed and written block by block.

    Args:
        array: the pixels, with dims named from c, t, z, y, x.
        name: a human-readable name (not unique).
        tags: labels to search by.
        dataset: the dataset (or its id) the image belongs to.
        origins: images (or ids) it was derived from.
        channel_names: one name per channel (the size of ``c``).
        pixel_size: physical pixel size: ``{"x": 0.1, "y": 0.1, "z": 0.5}`` (µm; ``t`` in s).
        metadata: free-form JSON (at most 1 MiB).
        private: visible only to this app (default: every app of the deployment can read it).
        datalayer: ``"local"`` or ``"http"`` instead of the app's/server's choice.
        mikro: the image service (default: the active app's).

    Returns:
        The stored image; its ``.data`` reads the pixels back lazily.

    Raises:
        InvalidImageError: bad input (before anything is uploaded).
        ImageNotFoundError: the dataset or an origin does not exist.
        UploadError: the upload failed; nothing was stored and it can be retried.
        NoActiveAppError: no app is active and no ``mikro`` was given.

    """
    prepared = prepare(array)
    fields = _fields(
        name,
        tags=tags,
        dataset=dataset,
        origins=origins,
        channel_names=channel_names,
        channels=prepared.shape[0],
        pixel_size=pixel_size,
        metadata=metadata,
        private=private,
    )
    if datalayer not in (None, "local", "http"):
        raise InvalidImageError(f"datalayer must be 'local' or 'http', not {datalayer!r}")
    return await mikro.aupload(prepared, fields, datalayer=datalayer)


@loopsafe
@inject
async def aget_image(image_id: str | Image, *, mikro: Mikro = Provide("mikro")) -> Image:
    """Fetch an image by id.

    Args:
        image_id: the image's id (or an image, to refresh it).
        mikro: the image service (default: the active app's).

    Raises:
        ImageNotFoundError: no such image, or it is not visible to this app.

    """
    return await mikro.aget(_id(image_id, "image_id"))


@loopsafe
@inject
async def asearch_images(
    name: str | None = None,
    *,
    tag: str | None = None,
    dataset: str | Dataset | None = None,
    limit: int = 50,
    offset: int = 0,
    mikro: Mikro = Provide("mikro"),
) -> ImagePage:
    """Search the images visible to this app, newest first, one page at a time.

    Args:
        name: part of the name (case-insensitive).
        tag: a tag the image carries.
        dataset: the dataset (or its id) it belongs to.
        limit: page size (1..1000).
        offset: how many matches to skip (use ``page.next_offset``).
        mikro: the image service (default: the active app's).

    Example:
        >>> page = search_images(tag="raw", limit=10)  # doctest: +SKIP
        >>> while page.next_offset is not None:  # doctest: +SKIP
        ...     page = search_images(tag="raw", limit=10, offset=page.next_offset)

    """
    return await mikro.asearch(
        name=name,
        tag=tag,
        dataset=_id(dataset, "dataset") if dataset is not None else None,
        limit=limit,
        offset=offset,
    )


@loopsafe
@inject
async def adelete_image(image: str | Image, *, mikro: Mikro = Provide("mikro")) -> None:
    """Delete an image and its pixels.

    Raises:
        ImageNotFoundError: no such image (or not visible to this app).
        PermissionDeniedError: another app stored it.

    """
    await mikro.adelete(_id(image, "image"))


@loopsafe
@inject
async def acreate_dataset(
    name: str, description: str = "", *, mikro: Mikro = Provide("mikro")
) -> Dataset:
    """Create a dataset (a named group of images) to pass as ``from_xarray(dataset=...)``."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidImageError(f"a dataset needs a non-empty name, got {name!r}")
    return await mikro.acreate_dataset(name, description)


@loopsafe
@inject
async def alist_datasets(*, mikro: Mikro = Provide("mikro")) -> list[Dataset]:
    """Every dataset of the deployment, newest first."""
    return await mikro.alist_datasets()


from_xarray = syncify(afrom_xarray)
get_image = syncify(aget_image)
search_images = syncify(asearch_images)
delete_image = syncify(adelete_image)
create_dataset = syncify(acreate_dataset)
list_datasets = syncify(alist_datasets)
