"""Which app a call uses: explicit clients, threads, async code, closed apps, other apps' images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from arkitekt import App
from arkitekt.errors import AppClosedError, ArkitektError
from arkitekt.mikro import (
    ImageNotFoundError,
    PermissionDeniedError,
    adelete_image,
    afrom_xarray,
    aget_image,
    alist_datasets,
    asearch_images,
    delete_image,
    from_xarray,
    get_image,
    search_images,
)
from arkitekt_server import EmbeddedServer
from tests.helpers import wait_until


def _array() -> xr.DataArray:
    return xr.DataArray(np.arange(12, dtype=np.uint8).reshape(3, 4), dims=["y", "x"])


def test_explicit_client_beats_the_active_app(connect: Callable[..., App]) -> None:
    first, second = connect(), connect()
    with first, second:
        mine = from_xarray(_array(), name="explicit", mikro=first.mikro)
        active = from_xarray(_array(), name="active")
    assert mine.owner == first.manifest.identifier
    assert active.owner == second.manifest.identifier


def test_explicit_client_works_from_a_plain_thread(connect: Callable[..., App]) -> None:
    app = connect()
    results: list[Any] = []

    def work() -> None:  # a plain thread: no app is active here
        try:
            image = from_xarray(_array(), name="from-thread", mikro=app.mikro)
            results.append(get_image(image.id, mikro=app.mikro).data.values)
        except BaseException as error:
            results.append(error)

    with app:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(30)
    assert len(results) == 1
    assert np.array_equal(results[0][0, 0, 0], _array().values)


def test_run_in_thread_sees_the_app(connect: Callable[..., App]) -> None:
    with connect() as app:
        image = app.run_in_thread(from_xarray, _array(), name="worker").result(30)
        assert get_image(image.id).name == "worker"


def test_every_call_fails_once_the_app_has_closed(connect: Callable[..., App]) -> None:
    app = connect()
    with app:
        image = from_xarray(_array(), name="before-exit")
    with pytest.raises(AppClosedError):
        from_xarray(_array(), name="after-exit", mikro=app.mikro)
    with pytest.raises(ArkitektError):
        get_image(image.id, mikro=app.mikro)
    with pytest.raises(ArkitektError):
        search_images(mikro=app.mikro)
    with pytest.raises(ArkitektError):
        delete_image(image.id, mikro=app.mikro)


@pytest.mark.anyio
@pytest.mark.parametrize("datalayer", ["http", "s3"])
async def test_async_use(layer_connect: Callable[..., App]) -> None:
    app = layer_connect()
    async with app:
        image = await afrom_xarray(_array(), name="async", tags=["async"])
        again = await aget_image(image.id)
        # Reading through the server needs the loop: compute off it.
        values = await anyio.to_thread.run_sync(lambda: again.data.values)
        assert np.array_equal(values[0, 0, 0], _array().values)
        page = await asearch_images(tag="async")
        assert image.id in [item.id for item in page.items]
        assert isinstance(await alist_datasets(), list)
        await adelete_image(image)
        with pytest.raises(ImageNotFoundError):
            await aget_image(image.id)


@pytest.mark.anyio
async def test_async_twin_from_another_loop_with_a_sync_app(connect: Callable[..., App]) -> None:
    # `with app:` runs the app's loop in a thread; awaiting from this loop hops over to it.
    with connect() as app:
        image = await afrom_xarray(_array(), name="other-loop")
        assert (await aget_image(image.id, mikro=app.mikro)).name == "other-loop"


def test_private_images_are_invisible_to_other_apps(connect: Callable[..., App]) -> None:
    owner, other = connect(), connect()
    with owner, other:
        secret = from_xarray(_array(), name="secret", private=True, mikro=owner.mikro)
        shared = from_xarray(_array(), name="shared", mikro=owner.mikro)
        assert get_image(secret.id, mikro=owner.mikro).private
        with pytest.raises(ImageNotFoundError):
            get_image(secret.id, mikro=other.mikro)
        found = {i.id for i in search_images("secret", limit=1000, mikro=other.mikro).items}
        assert secret.id not in found
        with pytest.raises(ImageNotFoundError):
            from_xarray(_array(), name="derived", origins=[secret], mikro=other.mikro)
        # Shared images are readable by every app of the deployment, changeable by the owner.
        read = get_image(shared.id, mikro=other.mikro)
        assert np.array_equal(read.data.values[0, 0, 0], _array().values)
        with pytest.raises(PermissionDeniedError):
            delete_image(shared.id, mikro=other.mikro)
        with pytest.raises(ImageNotFoundError):
            delete_image(secret.id, mikro=other.mikro)
        delete_image(shared.id, mikro=owner.mikro)


def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.2)
    return block


@pytest.mark.anyio
async def test_cancelled_upload_leaves_nothing_and_can_be_retried(
    layer_connect: Callable[..., App], leftovers: Callable[[], set[str]], unique: str
) -> None:
    source = np.arange(40 * 16 * 16, dtype=np.uint16).reshape(40, 16, 16)
    slow = da.from_array(source, chunks=(1, 16, 16)).map_blocks(_slow, dtype=np.uint16)
    async with layer_connect():
        with anyio.move_on_after(0.5) as timer:
            await afrom_xarray(xr.DataArray(slow, dims=["z", "y", "x"]), name=unique)
        assert timer.cancelled_caught
        assert leftovers() == set()  # the grant was aborted, its directory (or keys) removed
        assert (await asearch_images(unique)).total == 0
        image = await afrom_xarray(xr.DataArray(source, dims=["z", "y", "x"]), name=unique)
        assert (await asearch_images(unique)).total == 1
        assert image.shape == (1, 1, 40, 16, 16)


SCRIPT = Path(__file__).with_name("upload_process.py")


def test_ctrl_c_mid_upload_aborts_the_grant_before_the_app_closes(
    layer_server: EmbeddedServer, leftovers: Callable[[], set[str]], tmp_path: Path, datalayer: str
) -> None:
    env = {
        **os.environ,
        "FAKTS_URL": layer_server.url,
        "ARKITEKT_HEADLESS": "true",
        "ARKITEKT_CACHE_DIR": str(tmp_path / "cache"),
        "UPLOAD_IDENTIFIER": f"ctrl-c-{datalayer}-{tmp_path.name}",
        "UPLOAD_DATALAYER": datalayer,
    }
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:

        def writing() -> bool:  # the upload started writing chunks
            assert process.poll() is None, process.communicate()
            if datalayer == "s3":
                return any("/c/" in key for key in leftovers())
            return any(p.is_file() for d in leftovers() for p in Path(d).rglob("0/c/*/*/*/*/*"))

        wait_until(writing, 30)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "interrupted" in out
    assert leftovers() == set()  # aborted on the server before the app closed its client
