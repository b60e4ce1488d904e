"""The read path over http: one store per read, its ``zarr.json`` fetched at most once, and
only the chunks a selection touches read, when its values are asked for.

The ``recording_server`` fixture plays the server: it serves a real zarr v3 store written
into ``tmp_path`` and records every request.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arkitekt import App
from arkitekt.mikro import ImageNotFoundError, aget_image, get_image, search_images
from arkitekt.protocol.mikro import ImageRecord

STORE = "/mikro/images/i1/store/"


def _serve_image(server: Any, tmp_path: Path) -> np.ndarray:
    """Answer ``i1``'s record, a page listing it, and its store; return its pixels."""
    import zarr

    pixels = np.arange(24, dtype=np.uint8).reshape(1, 1, 2, 3, 4)
    array = zarr.create_array(
        tmp_path / "z", shape=pixels.shape, chunks=(1, 1, 1, 3, 4), dtype="u1"
    )
    array[...] = pixels
    record = ImageRecord(
        id="i1",
        name="n",
        shape=pixels.shape,  # type: ignore[arg-type]
        chunks=(1, 1, 1, 3, 4),
        dtype="uint8",
        created_at=dt.datetime.now(dt.UTC),
        owner="o",
        store=server.url + STORE,
    ).model_dump(mode="json")
    server.answers["/mikro/images/i1"] = (200, record)
    server.answers["/mikro/images/"] = (
        200,
        {"items": [record], "total": 1, "offset": 0, "limit": 50},
    )
    for path in (tmp_path / "z").rglob("*"):
        if path.is_file():
            key = path.relative_to(tmp_path / "z").as_posix()
            server.answers[STORE + key] = (200, path.read_bytes())
    return pixels


def _metadata_reads(server: Any) -> int:
    return server.seen.count(("GET", STORE + "zarr.json"))


def test_an_image_found_by_search_reads_its_metadata_once(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    pixels = _serve_image(recording_server, tmp_path)
    with recorded_app:
        (image,) = search_images().items  # a page is not prefetched
        assert _metadata_reads(recording_server) == 0
        assert np.array_equal(image.data.values, pixels)
        assert np.array_equal(image.data.sel(z=1).values, pixels[:, :, 1])
    assert _metadata_reads(recording_server) == 1


def test_a_fetched_image_reads_with_its_prefetched_metadata(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    pixels = _serve_image(recording_server, tmp_path)
    with recorded_app:
        image = get_image("i1")
        assert _metadata_reads(recording_server) == 1
        assert np.array_equal(image.data.values, pixels)
    assert _metadata_reads(recording_server) == 1


def test_an_image_whose_store_is_gone_fails_when_opened(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    _serve_image(recording_server, tmp_path)
    recording_server.answers[STORE + "zarr.json"] = (404, {"detail": "no such store"})
    with recorded_app:
        (image,) = search_images().items
        with pytest.raises(ImageNotFoundError, match="image 'i1' has no store on the server"):
            image.data  # noqa: B018


def _chunk_reads(server: Any) -> list[str]:
    return [path[len(STORE) :] for method, path in server.seen if path.startswith(STORE + "c/")]


def test_data_reads_nothing_until_values_and_then_only_the_chunks_selected(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    pixels = _serve_image(recording_server, tmp_path)  # two chunks: z=0 and z=1
    with recorded_app:
        image = get_image("i1")
        data = image.data
        plane = data.isel(z=1).sel(c=0, t=0)
        assert plane.shape == (3, 4)
        assert _chunk_reads(recording_server) == []  # opened and selected: nothing read
        assert np.array_equal(plane.values, pixels[0, 0, 1])
        assert _chunk_reads(recording_server) == ["c/0/0/1/0/0"]
        assert np.array_equal(data.values, pixels)  # one read of the whole array
        assert sorted(_chunk_reads(recording_server)) == ["c/0/0/0/0/0"] + ["c/0/0/1/0/0"] * 2


def test_a_dask_view_has_one_block_per_chunk_and_computes_lazily(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    import dask.array as da

    pixels = _serve_image(recording_server, tmp_path)
    with recorded_app:
        image = get_image("i1")
        lazy = image.data.chunk(dict(zip(image.dims, image.chunks, strict=True)))
        assert isinstance(lazy.data, da.Array)
        assert lazy.data.chunks == ((1,), (1,), (1, 1), (3,), (4,))
        total = lazy.sum()
        assert _chunk_reads(recording_server) == []
        assert int(total) == int(pixels.sum())
        assert len(_chunk_reads(recording_server)) == 2


@pytest.mark.anyio
async def test_values_load_on_the_apps_loop_with_load_async(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    pixels = _serve_image(recording_server, tmp_path)
    async with recorded_app:
        image = await aget_image("i1")
        plane = await image.data.isel(z=0).load_async()
        assert np.array_equal(plane.values, pixels[:, :, 0])
        assert _chunk_reads(recording_server) == ["c/0/0/0/0/0"]


@pytest.mark.sqlite_only("reading pixels does not touch the database")
def test_a_pyramid_level_reads_orthogonally_and_presents_the_api_order(
    connect: Any,
) -> None:
    import xarray as xr

    from arkitekt.mikro import from_xarray

    pixels = np.arange(2 * 3 * 4 * 5, dtype="uint16").reshape(2, 3, 4, 5)  # c, z, y, x
    with connect():
        image = from_xarray(xr.DataArray(pixels, dims=["c", "z", "y", "x"]), name="orthogonal")
        data = image.data
        # stored as t, c, z, y, x: presented as c, t, z, y, x without xarray transposing it
        # (a transposed lazy array reads point by point)
        assert type(data.variable._data).__name__ == "LazilyIndexedArray"
        assert data.dims == ("c", "t", "z", "y", "x")
        np.testing.assert_array_equal(data.values, pixels[:, None])
        np.testing.assert_array_equal(data.isel(c=1, z=slice(0, 2)).values, pixels[1, None, :2])
        np.testing.assert_array_equal(
            data.isel(x=[0, 3], y=2).values, pixels[:, None, :, 2][..., [0, 3]]
        )
