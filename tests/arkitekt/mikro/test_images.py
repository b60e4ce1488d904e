"""Images through the API against the real server: round trips, metadata, bad input, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from arkitekt import App, NoActiveAppError
from arkitekt.mikro import (
    Image,
    ImageNotFoundError,
    InvalidImageError,
    PixelSize,
    UploadError,
    create_dataset,
    delete_image,
    from_xarray,
    get_image,
    list_datasets,
    search_images,
)
from arkitekt_server import EmbeddedServer
from tests.arkitekt.mikro.buckets import bucket_keys


def _array(shape: tuple[int, ...] = (20, 30, 4), dims: str = "xyz", dtype: str = "uint16") -> Any:
    data = (np.arange(int(np.prod(shape)), dtype="int64").reshape(shape) % 5000).astype(dtype)
    return xr.DataArray(data, dims=list(dims))


def test_round_trip_keeps_values_dims_dtype_and_metadata(
    connect: Callable[..., App], unique: str
) -> None:
    array = _array((20, 30, 4), "xyz", "float32")
    with connect() as app:
        dataset = create_dataset(f"ds-{unique}", "a dataset")
        origin = from_xarray(_array((3, 3), "yx"), name=f"{unique}-origin")
        image = from_xarray(
            array,
            name=unique,
            tags=["raw", "test"],
            dataset=dataset,
            origins=[origin],
            channel_names=["dapi"],
            pixel_size={"x": 0.2, "y": 0.2, "z": 1.5},
            metadata={"microscope": "widefield", "exposure_ms": [10, 20]},
        )
        assert isinstance(image, Image)
        again = get_image(image.id)
        assert again.model_dump() == image.model_dump()
        assert again.name == unique
        assert again.shape == (1, 1, 4, 30, 20)
        assert again.dims == ("c", "t", "z", "y", "x")
        assert again.dtype == "float32"
        assert again.tags == ["raw", "test"]
        assert again.dataset == dataset.id
        assert again.origins == [origin.id]
        assert again.channel_names == ["dapi"]
        assert again.pixel_size == PixelSize(x=0.2, y=0.2, z=1.5)
        assert again.metadata == {"microscope": "widefield", "exposure_ms": [10, 20]}
        assert again.owner == app.manifest.identifier
        assert not again.private
        data = again.data
        assert data.dims == ("c", "t", "z", "y", "x")
        assert data.dtype == np.float32
        blocks = dict(zip(again.dims, again.chunks, strict=True))
        assert isinstance(data.chunk(blocks).data, da.Array)  # the out-of-core view
        expected = array.transpose("z", "y", "x").values
        assert np.array_equal(data.sel(c=0, t=0).values, expected)
        assert data.attrs["channel_names"] == ["dapi"]
        assert dataset.id in [d.id for d in list_datasets()]
        assert [i.id for i in search_images(dataset=dataset).items] == [image.id]


def test_missing_dims_are_added_and_order_is_normalised(connect: Callable[..., App]) -> None:
    array = _array((5, 6, 7), "ytx", "int8")
    with connect():
        image = from_xarray(array, name="ytx")
        assert image.shape == (1, 6, 1, 5, 7)
        values = get_image(image.id).data.values
    assert np.array_equal(values[0, :, 0], array.transpose("t", "y", "x").values)


def test_every_datalayer_round_trips(
    layer_connect: Callable[..., App], datalayer: str, unique: str
) -> None:
    app = layer_connect()
    array = _array((64, 48, 3, 2), "xyzc", "uint16")
    with app:
        image = from_xarray(array, name=unique)
        read = get_image(image.id)
        assert app.mikro._read_layer(read) == datalayer
        assert np.array_equal(read.data.values[:, 0], array.transpose("c", "z", "y", "x").values)
        if datalayer == "http":
            assert read.data.attrs["mikro_id"] == image.id


def test_explicit_datalayer_argument_beats_the_apps_choice(connect: Callable[..., App]) -> None:
    app = connect()
    app.mikro.datalayer = "local"
    with app:
        image = from_xarray(_array(), name="via-http", datalayer="http")
        assert np.array_equal(get_image(image.id).data.values[0, 0], _array().T.values)


def test_dask_backed_array_streams_block_by_block(layer_connect: Callable[..., App]) -> None:
    source = np.random.default_rng(1).integers(0, 60000, (3, 50, 70), dtype=np.uint16)
    lazy = da.from_array(source, chunks=(2, 17, 70))  # irregular blocks
    with layer_connect():
        image = from_xarray(xr.DataArray(lazy, dims=["z", "y", "x"]), name="lazy")
        assert np.array_equal(get_image(image.id).data.values[0, 0], source)


def _boom(block: np.ndarray) -> np.ndarray:
    if block.min() == 0:
        raise RuntimeError("camera disconnected")
    return block


def test_failed_upload_leaves_nothing_and_can_be_retried(
    layer_connect: Callable[..., App], leftovers: Callable[[], set[str]], unique: str
) -> None:
    source = np.arange(8 * 32 * 32, dtype=np.uint16).reshape(8, 32, 32)
    failing = da.from_array(source, chunks=(1, 32, 32)).map_blocks(_boom, dtype=np.uint16)
    with layer_connect():
        with pytest.raises(UploadError, match="camera disconnected"):
            from_xarray(xr.DataArray(failing, dims=["z", "y", "x"]), name=unique)
        assert search_images(unique).total == 0
        assert leftovers() == set()
        image = from_xarray(xr.DataArray(source, dims=["z", "y", "x"]), name=unique)
        assert search_images(unique).total == 1
        assert np.array_equal(image.data.values[0, 0], source)


BAD_INPUTS: list[tuple[str, Any, dict[str, Any], str]] = [
    ("ndarray", np.zeros((4, 4)), {}, "needs an xarray.DataArray"),
    ("list", [[1, 2]], {}, "needs an xarray.DataArray"),
    ("unknown dim", xr.DataArray(np.zeros((4, 4)), dims=["y", "q"]), {}, "unknown dim"),
    ("no x", xr.DataArray(np.zeros((4, 4)), dims=["y", "z"]), {}, "'x' and 'y'"),
    ("zero axis", xr.DataArray(np.zeros((0, 4)), dims=["y", "x"]), {}, "size 0"),
    ("complex", xr.DataArray(np.zeros((4, 4), complex), dims=["y", "x"]), {}, "dtype"),
    ("object", xr.DataArray(np.zeros((4, 4), object), dims=["y", "x"]), {}, "dtype"),
    ("string", xr.DataArray(np.full((4, 4), "a"), dims=["y", "x"]), {}, "dtype"),
    ("datetime", xr.DataArray(np.zeros((2, 2), "M8[s]"), dims=["y", "x"]), {}, "dtype"),
    ("empty name", _array(), {"name": ""}, "non-empty name"),
    ("blank name", _array(), {"name": "   "}, "non-empty name"),
    ("name not str", _array(), {"name": 3}, "non-empty name"),
    ("channel names", _array(), {"channel_names": ["a", "b"]}, "channel name"),
    ("metadata", _array(), {"metadata": {"f": object()}}, "JSON"),
    ("nan metadata", _array(), {"metadata": {"f": float("nan")}}, "JSON"),
    ("tags str", _array(), {"tags": "raw"}, "list of strings"),
    ("blank tag", _array(), {"tags": [" "]}, "tags"),
    ("pixel size", _array(), {"pixel_size": {"x": -1}}, "pixel_size"),
    ("datalayer", _array(), {"datalayer": "ftp"}, "datalayer"),
]


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_fails_clearly_before_anything_is_uploaded(
    connect: Callable[..., App],
    new_uploads: Callable[[], set[Path]],
    array: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    kwargs = {"name": "bad", **kwargs}
    with connect():
        before = search_images().total
        with pytest.raises(InvalidImageError, match=message):
            from_xarray(array, **kwargs)
        assert search_images().total == before
    assert new_uploads() == set()


def test_unknown_dataset_or_origin_is_refused_before_upload(
    connect: Callable[..., App], new_uploads: Callable[[], set[Path]]
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    with connect():
        with pytest.raises(ImageNotFoundError, match="dataset"):
            from_xarray(_array(), name="x", dataset=missing)
        with pytest.raises(ImageNotFoundError, match="image"):
            from_xarray(_array(), name="x", origins=[missing])
    assert new_uploads() == set()


def test_bad_dataset_and_origin_ids_are_named_in_the_error(
    connect: Callable[..., App], unique: str, new_uploads: Callable[[], set[Path]]
) -> None:
    with connect():
        origin = from_xarray(_array((2, 2), "yx"), name=f"{unique}-origin")
        with pytest.raises(ImageNotFoundError, match="no such dataset 'nope'"):
            from_xarray(_array(), name="x", dataset="nope")
        with pytest.raises(ImageNotFoundError, match=r"origins\[1\]: no such image 'nope'"):
            from_xarray(_array(), name="x", origins=[origin, "nope"])
    assert new_uploads() == set()


def test_dataset_and_origin_ids_are_stored_in_canonical_form(
    connect: Callable[..., App], unique: str
) -> None:
    with connect():
        dataset = create_dataset(f"ds-{unique}")
        origin = from_xarray(_array((2, 2), "yx"), name=f"{unique}-origin")
        image = from_xarray(
            _array((2, 2), "yx"),
            name=f"{unique}-derived",
            dataset=dataset.id.upper(),
            origins=[origin.id.upper()],
        )
        assert image.dataset == dataset.id
        assert image.origins == [origin.id]
        assert [i.id for i in search_images(dataset=dataset.id).items] == [image.id]
        assert [i.id for i in search_images(dataset=dataset.id.upper()).items] == [image.id]


def test_search_paginates_and_filters(connect: Callable[..., App], unique: str) -> None:
    with connect():
        stored = [
            from_xarray(_array((2, 2), "yx"), name=f"{unique}-{i}", tags=[unique]) for i in range(5)
        ]
        from_xarray(_array((2, 2), "yx"), name=f"{unique}-other")
        seen: list[str] = []
        page = search_images(tag=unique, limit=2)
        sizes = []
        while True:
            sizes.append(len(page.items))
            seen += [image.id for image in page.items]
            assert page.total == 5
            if page.next_offset is None:
                break
            page = search_images(tag=unique, limit=2, offset=page.next_offset)
        assert sizes == [2, 2, 1]
        assert seen == [image.id for image in reversed(stored)]  # newest first, no repeats
        assert search_images(f"{unique}-OTHER").total == 1  # name part, case-insensitive
        assert search_images(f"{unique}-", tag=unique).total == 5
        assert search_images("%").total == 0  # wildcards are literal
        with pytest.raises(InvalidImageError):
            search_images(limit=0)


def test_delete_removes_the_image_and_its_store(connect: Callable[..., App]) -> None:
    with connect():
        image = from_xarray(_array(), name="to-delete")
        assert image.local_path is not None
        store = Path(image.local_path)
        assert (store / "zarr.json").is_file()
        delete_image(image)
        assert not store.exists()
        with pytest.raises(ImageNotFoundError):
            get_image(image.id)
        with pytest.raises(ImageNotFoundError):
            delete_image(image.id)
        with pytest.raises(ImageNotFoundError):
            get_image("not-an-id")


@pytest.mark.parametrize("datalayer", ["s3"])
def test_delete_removes_the_image_and_its_keys_in_the_bucket(
    s3_server: EmbeddedServer, layer_connect: Callable[..., App]
) -> None:
    with layer_connect():
        image = from_xarray(_array(), name="to-delete")
        assert image.storage == "s3"
        assert image.local_path is None
        prefix = f"arkitekt/images/{image.id}/"
        assert f"{prefix}zarr.json" in bucket_keys(s3_server, prefix)
        delete_image(image)
        assert bucket_keys(s3_server, prefix) == []
        with pytest.raises(ImageNotFoundError):
            get_image(image.id)


def test_calls_without_an_app_fail_at_once() -> None:
    with pytest.raises(NoActiveAppError, match=r"from_xarray\(\)"):
        from_xarray(_array(), name="nowhere")
    with pytest.raises(NoActiveAppError):
        get_image("x")


def test_image_built_by_hand_has_no_data() -> None:
    image = Image(
        id="x",
        name="n",
        shape=(1, 1, 1, 1, 1),
        chunks=(1, 1, 1, 1, 1),
        dtype="uint8",
        created_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        owner="me",
        store="http://127.0.0.1:9/",
    )
    with pytest.raises(Exception, match="fetch it with get_image"):
        _ = image.data
    assert "id=x" in repr(image)
