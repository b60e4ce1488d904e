"""An app uploading a slow dask-backed array in its own process, for the Ctrl+C test: the
server in ``FAKTS_URL``, the datalayer in ``UPLOAD_DATALAYER``. Prints ``interrupted`` when
Ctrl+C ended the upload."""

from __future__ import annotations

import os
import time

import dask.array as da
import numpy as np
import xarray as xr

from arkitekt import easy
from arkitekt.mikro import from_xarray


def slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.1)
    return block


source = np.arange(200 * 16 * 16, dtype=np.uint16).reshape(200, 16, 16)
array = da.from_array(source, chunks=(1, 16, 16)).map_blocks(slow, dtype=np.uint16)
try:
    with easy(os.environ["UPLOAD_IDENTIFIER"]):
        from_xarray(
            xr.DataArray(array, dims=["z", "y", "x"]),
            name="interrupted by ctrl-c",
            datalayer=os.environ["UPLOAD_DATALAYER"],  # type: ignore[arg-type]
        )
except KeyboardInterrupt:
    print("interrupted", flush=True)
