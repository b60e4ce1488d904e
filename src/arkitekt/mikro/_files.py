"""Importing microscope files: ``from_file`` stores an OME-TIFF, TIFF or OME-Zarr file.

The file is opened with bioio (the ``files`` extra: ``pip install 'arkitekt-lab[files]'``) and
read lazily, one plane at a time, while :func:`~arkitekt.mikro.afrom_xarray` writes it: a file
larger than memory is never loaded whole. What the file says about itself is carried over:
channel names, the physical pixel size (converted to µm) and the time between frames (s), from
OME metadata; a plain TIFF says neither (give ``channel_names`` and ``pixel_size``).

Example:
    >>> import pathlib, tempfile, tifffile
    >>> from arkitekt.mikro import from_file
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cells.ome.tif"
    >>> tifffile.imwrite(path, np.zeros((2, 8, 8), "uint16"), ome=True,
    ...                  metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]},
    ...                            "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    >>> with app:
    ...     image = from_file(path)
    >>> image.name, image.channel_names, image.pixel_size.x
    ('cells.ome.tif', ['DAPI', 'GFP'], 0.5)

"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from arkitekt._inject import Provide, inject
from arkitekt._twins import loopsafe, syncify
from arkitekt.errors import InvalidImageError, MikroError, UploadError
from arkitekt.mikro._api import afrom_xarray, explicit
from arkitekt.mikro._file_checks import (
    UnreadableFileError,
    check_blocks,
    check_folder,
    check_tiff,
    guarded,
)
from arkitekt.mikro._file_metadata import ome_tiff_details, ome_zarr_details
from arkitekt.mikro._models import Dataset, Image
from arkitekt.protocol.distribution import pip_hint
from arkitekt.protocol.mikro import Datalayer, PixelSize

if TYPE_CHECKING:
    import xarray as xr

    from arkitekt.mikro._service import Mikro

__all__ = ["FORMATS", "afrom_file", "from_file", "read_file"]

FORMATS = "OME-TIFF (.ome.tif, .ome.tiff), TIFF (.tif, .tiff) and OME-Zarr (.zarr, .ome.zarr)"
"""The formats :func:`from_file` reads, for messages."""

MAX_BYTES = 256 << 30
"""``from_file`` refuses a file that holds more than this (unless given a larger
``max_bytes``): a file of a few MiB can declare terabytes of empty planes."""


@dataclass(frozen=True)
class FileImage:
    """What a microscope file holds, opened lazily.

    Attributes:
        array: the pixels as a dask-backed ``xr.DataArray`` with dims from c, t, z, y, x.
        channel_names: the channels' names, or ``None`` when the file names none.
        pixel_size: the physical pixel size the file states (µm; ``t`` in s).
        reader: the bioio reader that opened it.

    """

    array: xr.DataArray
    channel_names: list[str] | None
    pixel_size: PixelSize
    reader: str


def _bioio() -> Any:
    """The class bioio opens files with (``BioImage``), or an error naming the ``files`` extra.

    Raises:
        MikroError: bioio or one of its readers is not installed.

    """
    try:
        from bioio import BioImage
    except ImportError as error:
        raise _no_files_extra(error) from None
    return BioImage


def _no_files_extra(error: ImportError) -> MikroError:
    missing = f" ({error.name} is not installed)" if error.name else ""
    return MikroError(
        f"reading microscope files needs the files extra{missing}: {pip_hint('files')}"
    )


def _readers(path: Path) -> list[Any]:
    """The bioio readers to try for ``path``, most specific first."""
    try:
        import bioio_ome_tiff
        import bioio_ome_zarr
        import bioio_tifffile
    except ImportError as error:
        raise _no_files_extra(error) from None
    # bioio-ome-tiff passes an argument ome-types ignores; nothing a user can act on
    warnings.filterwarnings(
        "ignore", "As of version 0.4.0, the parser argument is ignored", DeprecationWarning
    )
    name = path.name.lower()
    if name.endswith((".zarr", ".zarr/")) or (path / "zarr.json").is_file():
        return [bioio_ome_zarr.Reader]
    if name.endswith((".ome.tif", ".ome.tiff")):  # never read as a plain TIFF: a broken
        return [bioio_ome_tiff.Reader]  # OME-TIFF would lose its metadata, or its planes
    if name.endswith((".tif", ".tiff")):  # a TIFF may still carry OME metadata
        return [bioio_ome_tiff.Reader if _is_ome(path) else bioio_tifffile.Reader]
    raise InvalidImageError(f"{path.name}: not a format from_file reads; it reads {FORMATS}")


def _is_ome(path: Path) -> bool:
    """Whether a TIFF carries OME metadata (its first page's description; not its pixels)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            return bool(tiff.is_ome)
    except (OSError, ValueError, tifffile.TiffFileError):
        return False  # not even a TIFF: the plain reader says why


def read_file(path: str | os.PathLike[str], scene: int | str = 0) -> FileImage:
    """Open a microscope file lazily (blocking: reads its metadata, not its pixels).

    Args:
        path: the file (an OME-Zarr is a folder).
        scene: the scene (series) to read: its index or its name.

    Raises:
        InvalidImageError: no such file (checked first, with or without the ``files`` extra),
            a format bioio cannot read, a broken file, or no such scene.
        MikroError: the ``files`` extra is not installed.

    """
    where = Path(path)
    if not where.exists():
        raise InvalidImageError(f"{where}: no such file (nothing exists at that path)")
    open_image = _bioio()
    if where.is_symlink():
        where = where.resolve()
    if where.is_dir():
        check_folder(where)
    errors: list[str] = []
    for reader in _readers(where):
        short = reader.__module__.split(".")[0]
        try:
            # TIFF readers read one plane per block; an OME-Zarr's blocks are its chunks
            planes: dict[str, Any] = {}
            if short != "bioio_ome_zarr":
                planes["chunk_dims"] = ["Y", "X"]
            image = open_image(where, reader=reader, **planes)
        except Exception as error:  # bioio and its readers raise many kinds; one message
            errors.append(f"{short}: {str(error)[:300]}")
            continue
        scenes = list(image.scenes)
        try:
            image.set_scene(scene)
        except (IndexError, ValueError, TypeError):
            raise InvalidImageError(
                f"{where.name}: no scene {scene!r}; it has {len(scenes)}: {scenes[:10]}"
            ) from None
        try:
            array = image.xarray_dask_data
        except Exception as error:
            errors.append(f"{short}: {str(error)[:300]}")
            continue
        if short != "bioio_ome_zarr":
            check_tiff(where, array)
        return _file_image(image, array, short, where)
    raise InvalidImageError(f"{where.name}: cannot be read ({'; '.join(errors)})")


def _file_image(image: Any, array: xr.DataArray, reader: str, where: Path) -> FileImage:
    if "S" in array.dims:  # RGB(A) samples: the channels of a colour image
        if array.sizes["C"] != 1:
            raise InvalidImageError(
                f"an image with {array.sizes['C']} channels of {array.sizes['S']} samples each "
                "cannot be stored; split it into one image per channel"
            )
        array = array.isel(C=0, drop=True).rename({"S": "C"})
    array = array.rename({dim: str(dim).lower() for dim in array.dims})
    array = array.drop_vars(list(array.coords))  # bioio's coordinates are not the image's
    if reader == "bioio_ome_tiff":
        names, size = ome_tiff_details(image)
    elif reader == "bioio_ome_zarr":
        names, size = ome_zarr_details(where)
    else:  # a plain TIFF: its default names and 1.0 sizes are bioio's, not the file's
        names, size = None, PixelSize()
    if names is not None and len(names) != array.sizes.get("c", 1):
        names = None
    return FileImage(array, names, size, reader)


@loopsafe
@inject
async def afrom_file(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    scene: int | str = 0,
    tags: Sequence[str] | None = None,
    dataset: str | Dataset | None = None,
    origins: Sequence[str | Image] | None = None,
    channel_names: Sequence[str] | None = None,
    pixel_size: PixelSize | Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
    private: bool = False,
    datalayer: Datalayer | None = None,
    levels: int | None = None,
    max_bytes: int | None = MAX_BYTES,
    mikro: Mikro = Provide("mikro"),
    rath: Mikro | None = None,
) -> Image:
    """Store a microscope file (OME-TIFF, TIFF, OME-Zarr) as an image, without loading it whole.

    Pixels are read plane by plane while they are written, with the same progress bar and
    guarantees as :func:`~arkitekt.mikro.afrom_xarray` (nothing is stored when it fails).

    Args:
        path: the file (an OME-Zarr is a folder).
        name: the image's name (default: the file's name).
        scene: the scene (series) of a multi-scene file: its index or name.
        tags: labels to search by.
        dataset: the dataset (or its id) the image belongs to.
        origins: images (or ids) it was derived from.
        channel_names: one name per channel, instead of the file's.
        pixel_size: the physical pixel size, instead of the file's (µm; ``t`` in s).
        metadata: free-form JSON (at most 1 MiB); ``source`` (file name, reader, scene) is
            added unless given.
        private: visible only to this app.
        datalayer: ``"local"``, ``"http"`` or ``"s3"`` instead of the app's/server's choice.
        levels: store at most this many pyramid levels (see
            :func:`~arkitekt.mikro.afrom_xarray`).
        max_bytes: refuse a file holding more pixel bytes than this (default 256 GiB; ``None``:
            no limit): a small file can declare terabytes of empty planes.
        mikro: the image service (default: the active app's).
        rath: the same, under its classic name (``rath=app.mikro.rath``).

    Raises:
        InvalidImageError: no such file, a format it cannot read, a broken or truncated file,
            links out of an OME-Zarr folder, planes over 256 MiB each, more than ``max_bytes``,
            or bad arguments; nothing is stored.
        MikroError: the ``files`` extra is not installed.
        UploadError: the upload failed; nothing was stored and it can be retried.

    """
    mikro = explicit(mikro, rath)
    found = await anyio.to_thread.run_sync(read_file, path, scene)
    label = Path(path).name
    check_blocks(label, found.array, max_bytes)
    source = {"file": label, "reader": found.reader, "scene": scene}
    try:
        return await _store(found, label, source, name, tags, dataset, origins, channel_names,
                            pixel_size, metadata, private, datalayer, levels, mikro)  # fmt: skip
    except UploadError as error:
        if isinstance(error.__cause__, UnreadableFileError):  # the file, not the upload, failed
            raise UnreadableFileError(f"{error.__cause__}; nothing was stored") from error
        raise


async def _store(
    found: FileImage,
    label: str,
    source: dict[str, Any],
    name: str | None,
    tags: Sequence[str] | None,
    dataset: str | Dataset | None,
    origins: Sequence[str | Image] | None,
    channel_names: Sequence[str] | None,
    pixel_size: PixelSize | Mapping[str, float] | None,
    metadata: Mapping[str, Any] | None,
    private: bool,
    datalayer: Datalayer | None,
    levels: int | None,
    mikro: Mikro,
) -> Image:
    return await afrom_xarray(
        guarded(label, found.array),
        name if name is not None else label,
        tags=tags,
        dataset=dataset,
        origins=origins,
        channel_names=channel_names if channel_names is not None else found.channel_names,
        pixel_size=pixel_size if pixel_size is not None else found.pixel_size,
        metadata={"source": source, **(metadata or {})},
        private=private,
        datalayer=datalayer,
        levels=levels,
        mikro=mikro,
    )


from_file = syncify(afrom_file)
