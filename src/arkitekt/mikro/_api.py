"""The image API: each function has an async twin (``afrom_xarray``) and a blocking one.

Inside ``with app:`` (or ``async with app:``) they use the active app; pass ``mikro=app.mikro``
to use a particular app from any thread while it is open.

Example:
    >>> from arkitekt.mikro import from_xarray, get_image
    >>> data = np.arange(24).reshape(2, 3, 4)
    >>> with app:
    ...     image = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name="stack")
    ...     again = get_image(image.id)
    ...     int(again.data.sel(c=0, t=0).max().compute())
    23

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arkitekt._inject import Provide, inject
from arkitekt._twins import loopsafe, syncify
from arkitekt.errors import InvalidImageError, MikroError
from arkitekt.mikro._checks import (
    DATASET_NAME_CHARS,
    DESCRIPTION_CHARS,
    MAX_ORIGINS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    NAME_CHARS,
    check_bool,
    check_datalayer,
    check_id,
    check_ids,
    check_int,
    check_metadata,
    check_page,
    check_pixel_size,
    check_text,
    check_texts,
)
from arkitekt.mikro._models import Dataset, Image, ImagePage
from arkitekt.mikro._normalize import prepare
from arkitekt.protocol.mikro import MAX_LEVELS, Datalayer, ImageFields, PixelSize

if TYPE_CHECKING:
    from arkitekt.mikro._service import Mikro  # the service is built by the app, not here

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


def _fields(
    name: Any,
    *,
    tags: Any,
    dataset: Any,
    origins: Any,
    channel_names: Any,
    channels: int,
    pixel_size: Any,
    metadata: Any,
    private: Any,
) -> ImageFields:
    """Check every descriptive argument of :func:`afrom_xarray` (nothing is sent before)."""
    names = check_texts(
        [] if channel_names is None else channel_names,
        "channel_names",
        max_items=None,
        max_chars=NAME_CHARS,
    )
    if names and len(names) != channels:
        raise InvalidImageError(
            f"channel_names: {len(names)} channel name(s) given for {channels} channel(s) "
            "(the size of 'c'); give one name per channel"
        )
    return ImageFields(
        name=check_text(name, "name", max_chars=NAME_CHARS),
        tags=check_texts(
            [] if tags is None else tags, "tags", max_items=MAX_TAGS, max_chars=MAX_TAG_CHARS
        ),
        dataset=check_id(dataset, "dataset", (Dataset,)) if dataset is not None else None,
        origins=check_ids(
            [] if origins is None else origins, "origins", (Image,), max_items=MAX_ORIGINS
        ),
        channel_names=names,
        pixel_size=check_pixel_size(pixel_size),
        metadata=check_metadata(metadata),
        private=check_bool(private, "private"),
    )


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
    levels: int | None = None,
    mikro: Mikro = Provide("mikro"),
    rath: Mikro | None = None,
) -> Image:
    """Store an ``xr.DataArray`` (numpy- or dask-backed) as an image.

    The array is normalised to dims (c, t, z, y, x): ``x`` and ``y`` are required, missing
    ``c``, ``t``, ``z`` get size 1. Pixels are written as an OME-Zarr image (zarr v3, blosc
    lz4, with its pyramid) into the datalayer the server grants; the image exists once the
    server has verified the store. dask-backed arrays are computed and written block by block.

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
        datalayer: ``"local"``, ``"http"`` or ``"s3"`` instead of the app's/server's choice.
        levels: store at most this many pyramid levels (``None``: every level down to one
            256 px tile; ``1``: full resolution only, for an image nobody will browse: a
            third less to compute, write and keep).
        mikro: the image service (default: the active app's).
        rath: the same, under its classic name (``rath=app.mikro.rath``).

    Returns:
        The stored image; its ``.data`` reads the pixels back lazily.

    Raises:
        InvalidImageError: bad input (before anything is uploaded).
        ImageNotFoundError: the dataset or an origin does not exist.
        UploadError: the upload failed; nothing was stored and it can be retried.
        NoActiveAppError: no app is active and no ``mikro`` was given.

    """
    mikro = explicit(mikro, rath)
    layer = check_datalayer(datalayer)
    if levels is not None:
        check_int(levels, "levels", 1, MAX_LEVELS)
    prepared = prepare(array, levels)
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
    return await mikro.aupload(prepared, fields, datalayer=layer)


@loopsafe
@inject
async def aget_image(
    image_id: str | Image, *, mikro: Mikro = Provide("mikro"), rath: Mikro | None = None
) -> Image:
    """Fetch an image by id.

    Args:
        image_id: the image's id (or an image, to refresh it).
        mikro: the image service (default: the active app's).
        rath: the same, under its classic name (``rath=app.mikro.rath``).

    Raises:
        ImageNotFoundError: no such image, or it is not visible to this app.

    """
    mikro = explicit(mikro, rath)
    return await mikro.aget(check_id(image_id, "image_id", (Image,)))


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
    rath: Mikro | None = None,
) -> ImagePage:
    """Search the images visible to this app, newest first, one page at a time.

    Args:
        name: part of the name (case-insensitive).
        tag: a tag the image carries.
        dataset: the dataset (or its id) it belongs to.
        limit: page size (1..1000).
        offset: how many matches to skip (use ``page.next_offset``).
        mikro: the image service (default: the active app's).
        rath: the same, under its classic name (``rath=app.mikro.rath``).

    Example:
        >>> from arkitekt.mikro import delete_image, from_xarray, search_images
        >>> tile = xr.DataArray(np.zeros((8, 8)), dims=["y", "x"])
        >>> with app:
        ...     stored = [from_xarray(tile, name=f"tile {n}", tags=["tiles"]) for n in range(3)]
        ...     page = search_images(tag="tiles", limit=2)
        ...     found = list(page.items)
        ...     while page.next_offset is not None:
        ...         page = search_images(tag="tiles", limit=2, offset=page.next_offset)
        ...         found += page.items
        ...     for image in stored:
        ...         delete_image(image)
        >>> sorted(image.name for image in found)
        ['tile 0', 'tile 1', 'tile 2']

    """
    mikro = explicit(mikro, rath)
    limit, offset = check_page(limit, offset)
    return await mikro.asearch(
        name=None if name is None else check_text(name, "name", max_chars=NAME_CHARS, blank=True),
        tag=None if tag is None else check_text(tag, "tag", max_chars=MAX_TAG_CHARS),
        dataset=None if dataset is None else check_id(dataset, "dataset", (Dataset,)),
        limit=limit,
        offset=offset,
    )


@loopsafe
@inject
async def adelete_image(
    image: str | Image, *, mikro: Mikro = Provide("mikro"), rath: Mikro | None = None
) -> None:
    """Delete an image and its pixels.

    Raises:
        ImageNotFoundError: no such image (or not visible to this app).
        PermissionDeniedError: another app stored it.

    """
    mikro = explicit(mikro, rath)
    await mikro.adelete(check_id(image, "image", (Image,)))


@loopsafe
@inject
async def acreate_dataset(
    name: str,
    description: str = "",
    *,
    mikro: Mikro = Provide("mikro"),
    rath: Mikro | None = None,
) -> Dataset:
    """Create a dataset (a named group of images) to pass as ``from_xarray(dataset=...)``.

    Args:
        name: a non-empty name (at most 500 characters, no control characters).
        description: free text (at most 10,000 characters; line breaks allowed).
        mikro: the image service (default: the active app's).
        rath: the same, under its classic name (``rath=app.mikro.rath``).

    Raises:
        MikroError: a bad name or description (nothing is sent; the message names which);
            :class:`~arkitekt.errors.InvalidImageError` (a subclass) if the server refuses them.

    """
    mikro = explicit(mikro, rath)
    try:
        name = check_text(name, "name", max_chars=DATASET_NAME_CHARS)
        description = check_text(
            description, "description", max_chars=DESCRIPTION_CHARS, blank=True, multiline=True
        )
    except InvalidImageError as error:  # the checks are the images' ones; no image is involved
        raise MikroError(f"create_dataset(): the dataset's {error}") from None
    return await mikro.acreate_dataset(name, description)


@loopsafe
@inject
async def alist_datasets(
    *, mikro: Mikro = Provide("mikro"), rath: Mikro | None = None
) -> list[Dataset]:
    """Every dataset of the deployment, newest first."""
    mikro = explicit(mikro, rath)
    return await mikro.alist_datasets()


from_xarray = syncify(afrom_xarray)
get_image = syncify(aget_image)
search_images = syncify(asearch_images)
delete_image = syncify(adelete_image)
create_dataset = syncify(acreate_dataset)
list_datasets = syncify(alist_datasets)


def explicit(mikro: Mikro, rath: Mikro | None) -> Mikro:
    """The service a call uses; ``rath`` is the classic name of the explicit ``mikro``.

    The call already runs in the scope of the app whose service it was given (under either
    name), so ``mikro`` is that service: ``rath``, if given, must be the same one.

    Raises:
        TypeError: ``rath`` is not the image service of the app the call runs for.

    """
    if rath is None or rath is mikro:
        return mikro
    raise TypeError(
        "rath= takes the image service of the app the call is for: rath=app.mikro.rath (the "
        f"same as mikro=app.mikro), not {type(rath).__name__}"
    )
