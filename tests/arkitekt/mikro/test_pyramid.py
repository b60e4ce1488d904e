"""Every stored image is an OME-Zarr 0.5 image with a pyramid: levels, round trips at every
level, the same layout on every datalayer, and other tools reading it unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from arkitekt import App
from arkitekt.mikro import Image, InvalidImageError, UploadError, from_xarray, get_image
from arkitekt.protocol.mikro import DTYPES
from arkitekt.protocol.ome import level_count, level_shapes
from arkitekt_server import EmbeddedServer
from tests.arkitekt.mikro.buckets import bucket_keys, server_bucket


def _reference(data: np.ndarray[Any, Any], levels: int) -> list[np.ndarray[Any, Any]]:
    """The levels of ``data`` ((c, t, z, y, x)) by numpy: each halves the one before by taking
    every second pixel of y and x (the ``nearest`` reduction mikro documents)."""
    result = [data]
    for _ in range(1, levels):
        result.append(result[-1][..., ::2, ::2])
    return result


def _five(data: np.ndarray[Any, Any], dims: str) -> np.ndarray[Any, Any]:
    """``data`` with dims ``dims`` as (c, t, z, y, x), missing axes of size 1."""
    array = xr.DataArray(data, dims=list(dims))
    for dim in "ctzyx":
        if dim not in dims:
            array = array.expand_dims(dim)
    return np.asarray(array.transpose(*"ctzyx").values)


def _assert_levels(image: Image, expected: np.ndarray[Any, Any]) -> None:
    reference = _reference(expected, level_count(expected.shape))
    assert image.levels == [level.shape for level in reference]
    for n, level in enumerate(reference):
        values = image.level(n).values
        assert image.level(n).dims == ("c", "t", "z", "y", "x")
        assert values.dtype == expected.dtype
        assert np.array_equal(values, level, equal_nan=expected.dtype.kind == "f"), n


def test_levels_halve_y_and_x_until_one_tile() -> None:
    assert level_shapes((1, 1, 1, 256, 256)) == [(1, 1, 1, 256, 256)]
    assert level_shapes((2, 3, 4, 257, 5)) == [(2, 3, 4, 257, 5), (2, 3, 4, 129, 3)]
    assert level_shapes((1, 1, 1, 1000, 3)) == [
        (1, 1, 1, 1000, 3),
        (1, 1, 1, 500, 2),
        (1, 1, 1, 250, 1),
    ]
    assert level_count((1, 1, 1, 5, 7)) == 1
    assert level_count((1, 1, 1, 3, 70_000)) == 10  # 70,000 / 2**9 = 137


def _data(dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(7)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        data = rng.normal(100, 30, shape).astype(dtype)
        data.flat[[3, 5]] = [np.nan, np.inf]  # kept as they are; not in the display window
        return data
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


_PIXELS_ONLY = "pixels do not pass through the database"


@pytest.mark.sqlite_only(_PIXELS_ONLY)
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_dtype_round_trips_pixel_exact_at_every_level(
    connect: Callable[..., App], dtype: str
) -> None:
    data = _data(dtype, (2, 301, 259))  # odd sizes: levels of 151 x 130 and nothing more
    with connect():
        image = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name=f"pyramid-{dtype}")
        again = get_image(image.id)
        assert len(again.levels) == 2
        _assert_levels(again, _five(data, "zyx"))


CASES = [  # dims, shape, dask chunks (None: numpy)
    ("yx", (517, 263), None),
    ("yx", (517, 263), (75, 263)),  # blocks not aligned to 4 px: rechunked to 72 rows
    ("zyx", (3, 300, 1025), (1, 100, 300)),  # irregular last blocks
    ("cyx", (3, 40, 600), None),
    ("tczyx", (2, 3, 2, 270, 33), (1, 2, 1, 270, 33)),
    ("xy", (7, 5), None),  # one level (smaller than a tile)
    ("zyx", (7, 600, 600), (1, 600, 600)),  # lower levels' chunks hold several z blocks
    ("zyx", (16, 600, 600), (1, 600, 600)),  # ... and their buffers are used again
    ("zyx", (2, 600, 1200), (1, 150, 300)),  # ... several y/x blocks, a partial last chunk
]


@pytest.mark.sqlite_only(_PIXELS_ONLY)
@pytest.mark.parametrize(("dims", "shape", "chunks"), CASES, ids=[c[0] + str(c[1]) for c in CASES])
def test_two_to_five_dimensional_inputs_round_trip_at_every_level(
    connect: Callable[..., App],
    dims: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...] | None,
) -> None:
    data = np.random.default_rng(3).integers(0, 4000, shape, dtype=np.uint16)
    source: Any = data if chunks is None else da.from_array(data, chunks=chunks)
    with connect():
        image = from_xarray(xr.DataArray(source, dims=list(dims)), name="dims")
        _assert_levels(get_image(image.id), _five(data, dims))


@pytest.mark.parametrize(
    ("shape", "blocks"),
    [
        ((2, 5, 600, 1200), (1, 1, 150, 300)),  # y and x blocks, a partial last chunk along x
        ((1, 7, 600, 600), (1, 1, 600, 600)),  # z blocks, a partial last chunk along z
        ((1, 3, 517, 1031), (1, 1, 100, 300)),  # odd sizes, rechunked to aligned units
    ],
)
def test_every_lower_level_chunk_is_handed_out_once_and_complete(
    shape: tuple[int, ...], blocks: tuple[int, ...]
) -> None:
    # No server: the pyramid's bookkeeping alone, units in a shuffled order (concurrent
    # writes finish in any order), every chunk compared with numpy's levels.
    from arkitekt.mikro._normalize import prepare
    from arkitekt.mikro._pyramid import Pyramid
    from arkitekt.protocol.ome import disk_order

    data = np.random.default_rng(9).integers(0, 255, shape, dtype=np.uint8)
    source = da.from_array(data, chunks=blocks)
    prepared = prepare(xr.DataArray(source, dims=list("czyx")))
    assert prepared.level_chunks[1] != prepared.level_chunks[0]  # several units per chunk
    pyramid = Pyramid(prepared)
    regions = list(prepared.regions())
    np.random.default_rng(1).shuffle(regions)
    full = np.asarray(prepared.array.values)
    stored: list[np.ndarray[Any, Any]] = [
        np.zeros(tuple(disk_order(shape)), np.uint8) for shape in level_shapes(full.shape)
    ]
    written: list[tuple[int, tuple[slice, ...]]] = []
    for region in regions:
        targets = pyramid.plan(region)
        own = Pyramid.fill(region, full[region], targets)
        complete = pyramid.finish(region)
        for level, where, block in own + complete:
            assert block.flags.c_contiguous
            key = (level, tuple((part.start, part.stop) for part in where))
            assert key not in written, key  # no chunk is written twice
            written.append(key)
            stored[level][where] = block
        for _, _, block in complete:  # written: its buffer may fill another chunk
            pyramid.release(block)
    for level, expected in enumerate(_reference(full, len(stored))):
        assert np.array_equal(stored[level], expected.swapaxes(0, 1)), level


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("width", [8, 7, 2, 1])
def test_halved_takes_every_second_pixel_of_y_and_x(dtype: str, width: int) -> None:
    from arkitekt.mikro._pyramid import halved

    data = np.random.default_rng(3).integers(0, 100, (2, 1, 3, 5, width)).astype(dtype)
    views = {
        "whole": data,
        "rows cut": data[..., 1:, :],  # rows not adjacent in memory
        "columns cut": data[..., 1:] if width > 1 else data,  # rows start off a pair boundary
        "transposed": np.ascontiguousarray(data.swapaxes(3, 4)).swapaxes(3, 4),
    }
    for name, view in views.items():
        result = halved(view)
        assert result.flags.c_contiguous, name
        assert result.dtype == view.dtype, name
        assert np.array_equal(result, view[..., ::2, ::2], equal_nan=True), name
        # into a part of a larger buffer (a chunk several units fill): that part and no other
        shape = result.shape
        chunk = np.zeros((*shape[:-2], shape[-2] + 2, shape[-1] + 3), dtype)
        assert halved(view, chunk[..., 1:-1, 2:-1]) is not None
        assert np.array_equal(chunk[..., 1:-1, 2:-1], result, equal_nan=True), name
        chunk[..., 1:-1, 2:-1] = 0
        assert not chunk.any(), name


@pytest.mark.sqlite_only(_PIXELS_ONLY)
def test_lower_levels_chunks_hold_several_units_images(connect: Callable[..., App]) -> None:
    # Seven 720 KB blocks: each level's chunks grow towards a level-0 chunk's bytes, so the
    # lower levels are written as a few chunks filled by several blocks each.
    data = np.random.default_rng(5).integers(0, 4000, (7, 600, 600), dtype=np.uint16)
    source = da.from_array(data, chunks=(1, 600, 600))
    with connect():
        image = from_xarray(xr.DataArray(source, dims=["z", "y", "x"]), name="shared")
        assert image.local_path is not None
        chunks = [
            json.loads((Path(image.local_path) / str(n) / "zarr.json").read_text())["chunk_grid"][
                "configuration"
            ]["chunk_shape"]
            for n in range(len(image.levels))
        ]
        assert chunks == [[1, 1, 1, 600, 600], [1, 1, 4, 300, 300], [1, 1, 7, 150, 150]]
        shuffles = [
            json.loads((Path(image.local_path) / str(n) / "zarr.json").read_text())["codecs"][1][
                "configuration"
            ]["shuffle"]
            for n in range(len(image.levels))
        ]
        assert shuffles == ["bitshuffle", "shuffle", "shuffle"]  # lower levels: faster codec
        _assert_levels(get_image(image.id), _five(data, "zyx"))


@pytest.mark.sqlite_only(_PIXELS_ONLY)
@pytest.mark.parametrize(("levels", "stored"), [(1, 1), (2, 2), (64, 3)])
def test_levels_caps_the_pyramid(connect: Callable[..., App], levels: int, stored: int) -> None:
    import zarr
    from ome_zarr_models.v05.image import Image as OmeImage

    data = np.random.default_rng(2).integers(0, 4000, (3, 1000, 600), dtype=np.uint16)
    with connect():
        image = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name="cap", levels=levels)
        again = get_image(image.id)
        assert len(again.levels) == stored
        for n, expected in enumerate(_reference(_five(data, "zyx"), stored)):
            assert np.array_equal(again.level(n).values, expected), n
        assert image.local_path is not None
        root = Path(image.local_path)
        paths = [str(n) for n in range(stored)]
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == paths
        group = OmeImage.from_zarr(zarr.open_group(root, mode="r"))
        (multiscale,) = group.ome_attributes.multiscales
        assert [d.path for d in multiscale.datasets] == paths


@pytest.mark.parametrize("bad", [0, -1, 65, True, 1.0, "1"])
def test_levels_must_be_a_count_of_levels(connect: Callable[..., App], bad: Any) -> None:
    data = xr.DataArray(np.zeros((300, 300), np.uint8), dims=["y", "x"])
    with connect(), pytest.raises(InvalidImageError, match="levels must be"):
        from_xarray(data, name="cap", levels=bad)


@pytest.mark.sqlite_only(_PIXELS_ONLY)
def test_a_small_image_has_one_level_and_no_other(connect: Callable[..., App]) -> None:
    with connect():
        image = from_xarray(xr.DataArray(np.ones((5, 7), np.uint8), dims=["y", "x"]), name="tiny")
        assert image.levels == [(1, 1, 1, 5, 7)]
        assert image.level(0) is image.data
        for bad in (1, -1, True, "0"):
            with pytest.raises(InvalidImageError, match="has 1 level"):
                image.level(bad)  # type: ignore[arg-type]


def _store_copy(image: Image, server: EmbeddedServer, datalayer: str, into: Path) -> Path:
    """The image's store as a directory (the bucket's keys are downloaded)."""
    if datalayer != "s3":
        assert image.local_path is not None
        return Path(image.local_path)
    s3 = server.settings.s3
    assert s3 is not None
    client = server_bucket(server)
    prefix = f"{s3.prefix}images/{image.id}/"
    for key in bucket_keys(server, prefix):
        target = into / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    return into


def test_every_datalayer_stores_an_ome_zarr_that_other_tools_read_unchanged(
    layer_connect: Callable[..., App], layer_server: EmbeddedServer, datalayer: str, tmp_path: Path
) -> None:
    import bioio
    import bioio_ome_zarr
    import zarr
    from ome_zarr_models.v05.image import Image as OmeImage

    data = np.random.default_rng(5).integers(0, 1000, (2, 3, 520, 300), dtype=np.uint16)
    with layer_connect():
        image = from_xarray(
            xr.DataArray(data, dims=["c", "z", "y", "x"]),
            name="interop",
            channel_names=["dapi", "gfp"],
            pixel_size={"x": 0.25, "y": 0.25, "z": 2.0, "t": 5.0},
        )
    root = _store_copy(image, layer_server, datalayer, tmp_path / "copy")
    keys = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert [k for k in keys if k.endswith("zarr.json")] == [
        "0/zarr.json",
        "1/zarr.json",
        "2/zarr.json",
        "zarr.json",
    ]
    group = zarr.open_group(root, mode="r")
    validated = OmeImage.from_zarr(group)  # ome-zarr-models: the 0.5 specification
    (multiscale,) = validated.ome_attributes.multiscales
    assert [axis.name for axis in multiscale.axes] == ["t", "c", "z", "y", "x"]
    assert [d.path for d in multiscale.datasets] == ["0", "1", "2"]
    scales = [d.coordinateTransformations[0].scale for d in multiscale.datasets]
    assert scales == [[5.0, 1.0, 2.0, 0.25 * 2**n, 0.25 * 2**n] for n in range(3)]
    omero = json.loads((root / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["dapi", "gfp"]
    assert omero["channels"][0]["window"]["min"] == 0
    assert omero["channels"][0]["window"]["max"] == 65535

    read = bioio.BioImage(root, reader=bioio_ome_zarr.Reader)
    assert read.dims.order == "TCZYX"
    assert read.shape == (1, 2, 3, 520, 300)
    assert read.channel_names == ["dapi", "gfp"]
    assert tuple(read.physical_pixel_sizes) == (2.0, 0.25, 0.25)
    assert np.array_equal(read.get_image_data("CZYX", T=0), data)
    assert len(read.resolution_levels) == 3
    read.set_resolution_level(2)
    assert np.array_equal(read.get_image_data("CZYX", T=0), data[..., ::4, ::4])


def _boom_late(block: np.ndarray[Any, Any], block_info: Any = None) -> np.ndarray[Any, Any]:
    if block_info[None]["chunk-location"][0] == 3:  # after other units reached every level
        raise RuntimeError("camera disconnected")
    return block


def test_an_interrupted_pyramid_upload_leaves_nothing_visible(
    layer_connect: Callable[..., App], leftovers: Callable[[], set[str]], unique: str
) -> None:
    source = np.arange(6 * 300 * 300, dtype=np.uint16).reshape(6, 300, 300)
    lazy = da.from_array(source, chunks=(1, 300, 300))
    failing = lazy.map_blocks(_boom_late, dtype=np.uint16)
    with layer_connect():
        with pytest.raises(UploadError, match="camera disconnected"):
            from_xarray(xr.DataArray(failing, dims=["z", "y", "x"]), name=unique)
        from arkitekt.mikro import search_images

        assert search_images(unique).total == 0
        assert leftovers() == set()  # no half-written level of it is left either


@pytest.mark.sqlite_only(_PIXELS_ONLY)
def test_each_level_is_read_only_while_its_store_matches_the_record(
    connect: Callable[..., App],
) -> None:
    from arkitekt.errors import MikroError

    data = np.arange(600 * 20, dtype=np.uint16).reshape(600, 20)
    with connect():
        image = from_xarray(xr.DataArray(data, dims=["y", "x"]), name="tampered level")
        assert image.local_path is not None
        level = Path(image.local_path) / "1" / "zarr.json"
        meta = json.loads(level.read_text())
        meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 1, 1, 600, 20]
        level.write_text(json.dumps(meta))  # changed after the upload
        again = get_image(image.id)
        with pytest.raises(MikroError, match=r"1/zarr\.json: chunks is"):
            again.level(1).values  # noqa: B018
        assert np.array_equal(again.data.values[0, 0, 0], data)  # level 0 is untouched
