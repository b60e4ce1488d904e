"""Importing microscope files with ``from_file``: OME-TIFF, TIFF and OME-Zarr through bioio,
against the real server; pixels exact, metadata carried over, bad files refused clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

import arkitekt
from arkitekt import App
from arkitekt.mikro import InvalidImageError, from_file, search_images
from arkitekt.mikro._files import read_file
from arkitekt_server import EmbeddedServer

pytestmark = pytest.mark.sqlite_only("reading files is client-side; storage is tested elsewhere")
RNG = np.random.default_rng(7)


def _stack(shape: tuple[int, ...], dtype: str = "uint16") -> Any:
    return RNG.integers(0, 4000, size=shape).astype(dtype)


def _ome_tiff(path: Path, data: Any, axes: str, **metadata: Any) -> Path:
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes, **metadata})
    return path


def test_an_ome_tiff_round_trips_with_its_names_and_sizes(
    connect: Callable[..., App], tmp_path: Path, unique: str
) -> None:
    data = _stack((2, 3, 5, 32, 24))  # T C Z Y X
    path = _ome_tiff(
        tmp_path / f"{unique}.ome.tif",
        data,
        "TCZYX",
        Channel={"Name": ["DAPI", "GFP", "RFP"]},
        PhysicalSizeX=0.25,
        PhysicalSizeY=0.25,
        PhysicalSizeZ=1.5,
        TimeIncrement=30.0,
    )
    with connect():
        image = from_file(path, tags=["imported"])
        stored = image.data.values
    assert image.name == path.name
    assert image.channel_names == ["DAPI", "GFP", "RFP"]
    assert image.pixel_size.model_dump() == {"x": 0.25, "y": 0.25, "z": 1.5, "t": 30.0}
    assert image.metadata["source"] == {"file": path.name, "reader": "bioio_ome_tiff", "scene": 0}
    assert image.tags == ["imported"]
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, data.transpose(1, 0, 2, 3, 4))  # (c, t, z, y, x)


def test_pixel_sizes_in_nanometres_are_stored_in_micrometres(
    connect: Callable[..., App], tmp_path: Path, unique: str
) -> None:
    path = _ome_tiff(
        tmp_path / "nm.ome.tif",
        _stack((4, 16, 16)),
        "ZYX",
        PhysicalSizeX=65.0,
        PhysicalSizeXUnit="nm",
        PhysicalSizeY=65.0,
        PhysicalSizeYUnit="nm",
    )
    with connect():
        image = from_file(path, name=unique)
    assert image.name == unique
    assert image.pixel_size.x == pytest.approx(0.065)
    assert image.pixel_size.y == pytest.approx(0.065)


def test_a_plain_tiff_keeps_its_pixels_and_claims_no_physical_size(
    connect: Callable[..., App], tmp_path: Path
) -> None:
    data = _stack((6, 20, 30), "uint8")
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    with connect():
        image = from_file(path, channel_names=["bright field"])
        stored = image.data.values
    assert image.pixel_size.model_dump(exclude_none=True) == {}  # bioio's 1.0 is no fact
    assert image.channel_names == ["bright field"]
    assert image.metadata["source"]["reader"] == "bioio_tifffile"
    np.testing.assert_array_equal(stored[0, 0], data)


def test_a_file_may_be_stored_without_its_lower_levels(
    connect: Callable[..., App], tmp_path: Path
) -> None:
    data = _stack((2, 600, 300), "uint16")  # a pyramid of 3 levels by default
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, data)
    with connect():
        image = from_file(path, levels=1)
        assert image.levels == [(1, 1, 2, 600, 300)]
        np.testing.assert_array_equal(image.data.values[0, 0], data)


def test_an_rgb_tiff_becomes_three_channels(connect: Callable[..., App], tmp_path: Path) -> None:
    data = _stack((10, 12, 3), "uint8")
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    with connect():
        stored = from_file(path).data.values
    assert stored.shape == (3, 1, 1, 10, 12)
    np.testing.assert_array_equal(stored[:, 0, 0], data.transpose(2, 0, 1))


def _ome_zarr_v04(path: Path, data: Any, scale: list[float]) -> Path:
    """An OME-Zarr 0.4 image (zarr v2) written by hand: one level, axes t c z y x."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=(1, 1, 1, *data.shape[3:]))
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        *({"name": name, "type": "space", "unit": "micrometer"} for name in "zyx"),
    ]
    transform = [{"type": "scale", "scale": [1.0, 1.0, *scale]}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transform}],
        }
    ]
    group.attrs["omero"] = {"channels": [{"label": "nuclei"}, {"label": "membrane"}]}
    return path


def test_an_ome_zarr_round_trips_with_its_sizes(
    connect: Callable[..., App], tmp_path: Path
) -> None:
    data = _stack((1, 2, 3, 16, 20))
    path = _ome_zarr_v04(tmp_path / "cells.ome.zarr", data, [2.0, 0.5, 0.5])
    with connect():
        image = from_file(path)
        stored = image.data.values
    assert image.metadata["source"]["reader"] == "bioio_ome_zarr"
    assert (image.pixel_size.x, image.pixel_size.y, image.pixel_size.z) == (0.5, 0.5, 2.0)
    assert image.channel_names == ["nuclei", "membrane"]
    np.testing.assert_array_equal(stored, data.transpose(1, 0, 2, 3, 4))


def test_a_scene_is_chosen_by_index_and_a_missing_one_is_named(
    connect: Callable[..., App], tmp_path: Path
) -> None:
    first, second = _stack((8, 8)), _stack((12, 10))
    path = tmp_path / "two-series.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(first, metadata={"axes": "YX"})
        writer.write(second, metadata={"axes": "YX"})
    with connect():
        image = from_file(path, scene=1)
        np.testing.assert_array_equal(image.data.values[0, 0, 0], second)
        with pytest.raises(InvalidImageError, match=r"no scene 5; it has 2"):
            from_file(path, scene=5)


def test_the_file_is_read_plane_by_plane(tmp_path: Path) -> None:
    path = _ome_tiff(tmp_path / "big.ome.tif", _stack((2, 6, 64, 64)), "CZYX")
    found = read_file(path)
    assert found.array.dims == ("t", "c", "z", "y", "x")
    chunks = found.array.chunks
    assert chunks is not None
    assert max(chunks[2]) == 1  # one z plane per block: never the whole file in memory
    assert found.array.data.npartitions == 12


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.ome.tif", None, r"missing\.ome\.tif: no such file"),
        ("notes.png", b"\x89PNG\r\n", r"not a format from_file reads; it reads OME-TIFF"),
        ("broken.tif", b"II*\x00garbage", r"broken\.tif: cannot be read"),
    ],
)
def test_bad_files_fail_clearly_and_store_nothing(
    connect: Callable[..., App], tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with connect():
        before = search_images(name).total
        with pytest.raises(InvalidImageError, match=message):
            from_file(path)
        assert search_images(name).total == before


_WITHOUT_BIOIO = """
import sys
sys.modules["bioio"] = None  # what an install without the files extra looks like
from arkitekt import easy
from arkitekt.errors import MikroError
from arkitekt.mikro import from_file

url, cache, *paths = sys.argv[1:]
with easy("no-files-extra", url=url, headless=True, cache_dir=cache):
    for path in paths:
        try:
            from_file(path)
        except MikroError as error:
            print(type(error).__name__, error)
"""


def test_without_the_files_extra_from_file_says_how_to_install_it(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    present = _ome_tiff(tmp_path / "cells.ome.tif", _stack((4, 4)), "YX")
    missing = tmp_path / "missing.ome.tif"
    paths = [str(Path(arkitekt.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    args = [server.url, str(tmp_path / "cache"), str(present), str(missing)]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_BIOIO, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "MikroError reading microscope files needs the files extra (bioio is not installed): "
        "pip install 'arkitekt-lab[files]'",
        f"InvalidImageError {missing}: no such file (nothing exists at that path)",
    ]


def test_a_truncated_ome_tiff_stores_nothing(
    connect: Callable[..., App], tmp_path: Path, unique: str
) -> None:
    path = _ome_tiff(tmp_path / f"{unique}.ome.tif", _stack((8, 64, 64)), "ZYX")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # the last planes are gone
    with connect():
        with pytest.raises(InvalidImageError):
            from_file(path)
        assert search_images(unique).total == 0


def test_a_truncated_plain_tiff_stores_nothing(
    connect: Callable[..., App], tmp_path: Path, unique: str
) -> None:
    path = tmp_path / f"{unique}.tif"
    tifffile.imwrite(path, _stack((8, 64, 64), "uint8"))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with connect():
        with pytest.raises(InvalidImageError, match=rf"{unique}\.tif: cannot be read"):
            from_file(path)
        assert search_images(unique).total == 0


def test_the_source_metadata_can_be_extended(connect: Callable[..., App], tmp_path: Path) -> None:
    path = _ome_tiff(tmp_path / "meta.ome.tif", _stack((4, 4)), "YX")
    with connect():
        image = from_file(path, metadata={"stain": "DAPI"})
    assert image.metadata["stain"] == "DAPI"
    assert json.dumps(image.metadata["source"])  # plain JSON


def _declared_only(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]) -> Path:
    """An OME-Zarr 0.4 whose metadata declares ``shape`` and no chunk exists (all fill)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", shape=shape, chunks=chunks, dtype="uint8")
    axes = [
        {"name": n, "type": t}
        for n, t in zip("tczyx", ["time", "channel", *["space"] * 3], strict=True)
    ]
    transform = [{"type": "scale", "scale": [1.0] * 5}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transform}],
        }
    ]
    return path


@pytest.mark.parametrize(
    ("shape", "chunks", "message"),
    [
        ((1, 1, 1, 20000, 20000), (1, 1, 1, 20000, 20000), r"hold 381 MiB each, more than"),
        (
            (1, 1, 1, 10**6, 10**6),
            (1, 1, 1, 1000, 1000),
            r"holds 931.3 GiB, more than max_bytes \(256.0 GiB\)",
        ),
    ],
    ids=["one-huge-chunk", "terabytes-of-nothing"],
)
def test_declared_sizes_are_bounded_before_anything_is_read(
    connect: Callable[..., App],
    tmp_path: Path,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    message: str,
) -> None:
    path = _declared_only(tmp_path / "bomb.ome.zarr", shape, chunks)
    with connect():
        with pytest.raises(InvalidImageError, match=message):
            from_file(path)
        assert search_images("bomb.ome.zarr").total == 0


def test_an_ome_zarr_linking_to_a_file_elsewhere_is_refused(
    connect: Callable[..., App], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"AWS_SECRET_ACCESS_KEY=do-not-import-me")
    path = _ome_zarr_v04(tmp_path / "linked.ome.zarr", _stack((1, 1, 1, 4, 4)), [1.0, 1.0, 1.0])
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    chunk.unlink()
    chunk.symlink_to(secret)
    with connect():
        with pytest.raises(InvalidImageError, match=r"is a link or a special file"):
            from_file(path)
        assert search_images("linked.ome.zarr").total == 0


def test_ome_zarr_units_are_converted(connect: Callable[..., App], tmp_path: Path) -> None:
    path = _ome_zarr_v04(tmp_path / "nm.ome.zarr", _stack((1, 2, 2, 8, 8)), [500.0, 65.0, 65.0])
    attrs = zarr.open_group(str(path), mode="a", zarr_format=2).attrs
    multiscales = attrs["multiscales"]
    for axis in multiscales[0]["axes"][2:]:
        axis["unit"] = "nanometer"
    attrs["multiscales"] = multiscales
    with connect():
        image = from_file(path)
    assert image.pixel_size.x == pytest.approx(0.065)
    assert image.pixel_size.z == pytest.approx(0.5)


def test_a_size_that_is_no_number_is_left_out(connect: Callable[..., App], tmp_path: Path) -> None:
    path = _ome_tiff(
        tmp_path / "inf.ome.tif", _stack((4, 4)), "YX", PhysicalSizeX=1e308, PhysicalSizeXUnit="m"
    )
    with connect():
        image = from_file(path)
    assert image.pixel_size.x is None


def test_a_damaged_compressed_plane_fails_the_import_as_bad_input(
    connect: Callable[..., App], tmp_path: Path, unique: str
) -> None:
    path = tmp_path / f"{unique}.tif"
    tifffile.imwrite(path, _stack((5, 64, 64)), compression="zlib")  # 5: not RGB(A)
    with tifffile.TiffFile(path) as tiff:
        offset = tiff.pages[1].dataoffsets[0]  # type: ignore[union-attr]
    damaged = bytearray(path.read_bytes())
    damaged[offset : offset + 40] = b"\xff" * 40
    path.write_bytes(bytes(damaged))
    with connect():
        with pytest.raises(InvalidImageError, match=rf"{unique}\.tif: block .* cannot be read"):
            from_file(path)
        assert search_images(unique).total == 0
