from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import xarray as xr

from arkitekt import App
from arkitekt.mikro import Image, from_xarray
from arkitekt.rekuest import Registry, call, iterate, progress

registry = Registry()
threads: list[str] = []


@registry.register
def m_threshold(image: Image, level: float = 0.5) -> Image:
    """Threshold an image into a mask (stored as a new image)."""
    threads.append(threading.current_thread().name)
    progress(50)
    mask = (image.data > level).astype("uint8")
    return from_xarray(mask, name=f"{image.name} > {level}", origins=[image])


@registry.register
def m_sizes(images: list[Image]) -> Iterator[int]:
    """Yield the pixel count of each image."""
    for image in images:
        yield int(image.data.size)


def test_images_travel_as_ids_and_a_worker_thread_stores_one(
    connect: Callable[..., App],
) -> None:
    pixels = np.arange(16, dtype="float32").reshape(4, 4) / 16
    agent_app = connect()
    agent_app.rekuest.registry = registry
    with agent_app:
        agent_app.runtime.scope.bridge.call(agent_app.rekuest.astart)
        with connect():
            image = from_xarray(xr.DataArray(pixels, dims=["y", "x"]), name="input")
            mask = call("m_threshold", image=image, level=0.5)
            assert isinstance(mask, Image)  # fetched back on arrival
            assert mask.id != image.id
            assert mask.name == "input > 0.5"
            values = mask.data.values.squeeze()
            np.testing.assert_array_equal(values, (pixels > 0.5).astype("uint8"))
            assert list(iterate("m_sizes", images=[image, mask])) == [16, 16]
    assert threads
    assert threads[0] != threading.main_thread().name
