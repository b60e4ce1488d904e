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
        agent_app.app_slot.scope.bridge.call(agent_app.rekuest.astart)
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


def test_a_structure_result_is_fetched_by_the_explicit_callers_app(
    connect: Callable[..., App],
) -> None:
    pixels = np.ones((4, 4), dtype="float32")
    agent_app, caller_app, other_app = connect(), connect(), connect()
    agent_app.rekuest.registry = registry
    with agent_app, caller_app:
        agent_app.rekuest.start()  # the sync twin of astart
        image = from_xarray(xr.DataArray(pixels, dims=["y", "x"]), name="explicit")

        def plain_thread() -> Image:  # no app is active here
            mask: Image = call("m_threshold", image=image, level=0.5, rekuest=caller_app.rekuest)
            return mask

        box: list[object] = []
        worker = threading.Thread(target=lambda: box.append(_capture(plain_thread)))
        worker.start()
        worker.join(30)
        assert isinstance(box[0], Image), box
        with other_app:  # another app active: the result still belongs to the caller's
            inside = call("m_threshold", image=image, level=0.5, rekuest=caller_app.rekuest)
            assert isinstance(inside, Image)
            assert inside.data.values.sum() == 16


def _capture(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as error:  # handed to the test thread
        return error
