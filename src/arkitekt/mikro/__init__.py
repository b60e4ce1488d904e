"""mikro: store and read microscopy images through the active app.

Example:
    >>> from arkitekt.mikro import from_xarray, get_image
    >>> data = np.zeros((4, 3, 2))
    >>> with app:
    ...     image = from_xarray(xr.DataArray(data, dims=["x", "y", "z"]), name="blank")
    ...     get_image(image.id).data.sel(c=0, t=0).values.shape  # stored as (c, t, z, y, x)
    (2, 3, 4)

Importing it imports neither the service (:class:`Mikro`, loaded on first use) nor xarray,
zarr, dask or numpy (loaded when an image is stored or its pixels are read).

"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from arkitekt.errors import (
    ImageNotFoundError,
    InvalidImageError,
    LocalPathError,
    MikroError,
    PermissionDeniedError,
    UploadError,
)
from arkitekt.mikro._api import (
    acreate_dataset,
    adelete_image,
    afrom_xarray,
    aget_image,
    alist_datasets,
    asearch_images,
    create_dataset,
    delete_image,
    from_xarray,
    get_image,
    list_datasets,
    search_images,
)
from arkitekt.mikro._files import afrom_file, from_file
from arkitekt.mikro._models import Dataset, Image, ImagePage
from arkitekt.protocol.mikro import PixelSize

if TYPE_CHECKING:
    from arkitekt.mikro._service import Mikro

__all__ = [
    "Dataset",
    "Image",
    "ImageNotFoundError",
    "ImagePage",
    "InvalidImageError",
    "LocalPathError",
    "Mikro",
    "MikroError",
    "PermissionDeniedError",
    "PixelSize",
    "UploadError",
    "acreate_dataset",
    "adelete_image",
    "afrom_file",
    "afrom_xarray",
    "aget_image",
    "alist_datasets",
    "asearch_images",
    "create_dataset",
    "delete_image",
    "from_file",
    "from_xarray",
    "get_image",
    "list_datasets",
    "search_images",
]


def _lazy(name: str) -> Any:
    if name == "Mikro":  # PEP 562: the service module imports the app's settings and fakts
        from arkitekt.mikro._service import Mikro

        globals()["Mikro"] = Mikro
        return Mikro
    raise AttributeError(f"module 'arkitekt.mikro' has no attribute {name!r}", name=name)


if not TYPE_CHECKING:  # a typed __getattr__ would make every misspelt name pass mypy
    __getattr__ = _lazy


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
