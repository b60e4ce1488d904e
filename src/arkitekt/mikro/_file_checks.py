"""What a microscope file must be before its pixels are read: whole, not a bomb, self-contained.

Every check reads headers and metadata only. Reading the pixels goes through
:func:`guarded`, which turns a failure to read or decode a block into
:class:`UnreadableFileError` naming the file and the block.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arkitekt.errors import InvalidImageError

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "MAX_BLOCK_BYTES",
    "UnreadableFileError",
    "check_blocks",
    "check_folder",
    "check_tiff",
    "guarded",
]

MAX_BLOCK_BYTES = 256 << 20
"""The largest block (a TIFF plane, an OME-Zarr chunk) ``from_file`` reads at once."""


class UnreadableFileError(InvalidImageError):
    """A block of the file could not be read or decoded (the file is damaged)."""


def check_folder(folder: Path) -> None:
    """Refuse an OME-Zarr folder that holds links or special files.

    A chunk linked to a file elsewhere would import that file's bytes as pixels.

    Raises:
        InvalidImageError: a symbolic link, a FIFO, a device, ... anywhere inside.

    """
    for root, directories, files in os.walk(folder, followlinks=False):
        for name in (*directories, *files):
            path = Path(root) / name
            linked = path.is_symlink() or (path.is_file() and path.lstat().st_nlink > 1)
            if linked or not (path.is_dir() or path.is_file()):
                raise InvalidImageError(
                    f"{folder.name}: {path.relative_to(folder)} is a link or a special file; "
                    "import a folder that holds its own files only"
                )


def check_blocks(name: str, array: xr.DataArray, max_bytes: int | None) -> None:
    """Refuse blocks too large to read at once and images larger than ``max_bytes``.

    Raises:
        InvalidImageError: a block of more than :data:`MAX_BLOCK_BYTES`, or more than
            ``max_bytes`` in all.

    """
    itemsize = array.dtype.itemsize
    total = math.prod(array.shape) * itemsize
    if max_bytes is not None and total > max_bytes:
        raise InvalidImageError(
            f"{name}: holds {total / 2**30:,.1f} GiB, more than max_bytes "
            f"({max_bytes / 2**30:,.1f} GiB); pass a larger max_bytes if that is meant"
        )
    block = math.prod(max(sizes) for sizes in (array.chunks or ())) * itemsize
    if block > MAX_BLOCK_BYTES:
        raise InvalidImageError(
            f"{name}: its planes (or chunks) hold {block / 2**20:,.0f} MiB each, more than "
            f"from_file reads at once ({MAX_BLOCK_BYTES >> 20} MiB); store it tiled (an "
            "OME-Zarr with smaller chunks) and import that"
        )


def check_tiff(path: Path, array: xr.DataArray) -> None:
    """Refuse a truncated TIFF before its pixels are read (its page headers only).

    Raises:
        InvalidImageError: a page's pixels end beyond the end of the file, or the file has
            fewer pages than its shape needs.

    """
    import tifffile

    size = path.stat().st_size
    planes = math.prod(n for dim, n in array.sizes.items() if dim not in ("Y", "X", "S"))
    with tifffile.TiffFile(path) as tiff:
        pages = 0
        for pages, page in enumerate(tiff.pages, start=1):
            spans = zip(page.dataoffsets, page.databytecounts, strict=True)
            ends = [offset + count for offset, count in spans]
            if ends and max(ends) > size:
                raise InvalidImageError(
                    f"{path.name}: cannot be read (truncated: page {pages} needs {max(ends)} "
                    f"bytes, the file has {size})"
                )
    if pages < planes:  # (a multi-scene file has more pages than one scene needs)
        raise InvalidImageError(
            f"{path.name}: cannot be read (truncated: {pages} of {planes} planes are there)"
        )


def guarded(name: str, array: xr.DataArray) -> xr.DataArray:
    """``array`` whose blocks raise :class:`UnreadableFileError` when the file fails them."""
    import dask.array as da

    source = array.data

    def read(block_info: Any = None) -> Any:
        location = block_info[None]["chunk-location"]
        try:
            return source.blocks[location].compute(scheduler="synchronous")
        except Exception as error:
            raise UnreadableFileError(
                f"{name}: block {location} cannot be read ({type(error).__name__}: "
                f"{str(error)[:200]})"
            ) from error

    wrapped = da.map_blocks(  # type: ignore[no-untyped-call]
        read, chunks=source.chunks, dtype=source.dtype, meta=source._meta
    )
    return array.copy(data=wrapped)
