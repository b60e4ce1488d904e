from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr

from arkitekt import App
from arkitekt.errors import DefinitionError
from arkitekt.mikro import Image, from_xarray
from arkitekt.rekuest import Registry, _structures, call, iterate, progress, register_structure

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


@dataclass
class _Sample:
    id: str


async def _aget_sample(id: str) -> _Sample:
    return _Sample(id)


@pytest.fixture
def fresh_structures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry as in a new process: empty, arkitekt's own structures not yet loaded."""
    monkeypatch.setattr(_structures, "_by_type", {})
    monkeypatch.setattr(_structures, "_by_identifier", {})
    monkeypatch.setattr(_structures, "_builtins_loaded", False)


@pytest.mark.usefixtures("fresh_structures")
def test_a_taken_identifier_is_a_definition_error() -> None:
    register_structure(_Sample, "@lab/sample", aexpand=_aget_sample)

    class Other(_Sample):
        pass

    with pytest.raises(DefinitionError, match="'@lab/sample' already belongs to _Sample"):
        register_structure(Other, "@lab/sample", aexpand=_aget_sample)


@pytest.mark.usefixtures("fresh_structures")
def test_a_user_structure_cannot_take_the_identifier_of_a_builtin_one() -> None:
    """Registered first thing in a process, a user type under ``@mikro/image`` is refused."""
    with pytest.raises(DefinitionError, match="'@mikro/image' already belongs to Image"):
        register_structure(_Sample, "@mikro/image", aexpand=_aget_sample)
    image = _structures.structure_for_type(Image)
    assert image is not None
    assert image.identifier == "@mikro/image"
    assert _structures.structure_for_type(_Sample) is None
