"""The classic example: no URL in the code; the backend is discovered (FAKTS_URL or default).

Run it against a server: ``arkitekt server --auto-approve`` in one terminal, then
``python examples/classic.py`` (or ``make demo``, which does both).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from arkitekt import easy, whoami
from arkitekt.mikro import from_xarray, get_image, search_images

app = easy("my-app-name")  # no URL: discovered on the first call

with app:  # the scope opens; nothing is contacted yet
    data = np.random.default_rng(0).poisson(100, size=(256, 256, 8)).astype(np.uint16)
    image = from_xarray(
        xr.DataArray(data, dims=["x", "y", "z"]), name="my-image", tags=["raw", "demo"]
    )  # first call: discover -> approve -> claim -> token -> upload
    me = whoami()
    print(f"connected as {me.identifier}@{me.version} (client {me.client_id})")
    print(f"stored {image.name!r}: id={image.id} dims={image.dims} shape={image.shape}")

    again = get_image(image.id)
    stored = again.data.sel(c=0, t=0).values  # lazy, dask-backed; (z, y, x) now
    assert (stored == data.transpose(2, 1, 0)).all(), "the pixels came back changed"
    print(f"read back {again.name!r}: {stored.shape} {stored.dtype}, values identical")

    found = search_images(tag="demo")
    print(f"images tagged 'demo': {[i.name for i in found.items]}")
