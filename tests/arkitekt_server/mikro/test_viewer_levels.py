"""The levels of a stored image as the viewer reads them: an OME-Zarr image group (levels in
t, c, z, y, x) is opened within the image's bounds, the smallest level covering the view is
picked, and a slice of it is rendered; a group that does not fit the image is refused."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PIL import Image as PILImage

from arkitekt_server.mikro._chunks import ChunkRefusedError
from arkitekt_server.mikro._levels import open_levels, pick_level
from arkitekt_server.mikro._slices import SliceRequest, render_slice
from arkitekt_server.mikro._storage import DiskLocation, StoreInvalidError, Verified

C, T, Z, Y, X = 2, 1, 3, 64, 80  # the image, in c, t, z, y, x


def _group(root: Path, *, levels: int = 3, dims: list[str] | None = None) -> list[np.ndarray]:
    """An OME-Zarr 0.5 image group like the one mikro stores: level i halves y and x i times,
    each level in t, c, z, y, x; returns the levels' arrays."""
    rng = np.random.default_rng(7)
    full = rng.integers(0, 60000, (T, C, Z, Y, X), dtype=np.uint16)
    group = zarr.open_group(root, mode="w", zarr_format=3)
    arrays = [full[..., :: 2**i, :: 2**i] for i in range(levels)]
    axes = dims or ["t", "c", "z", "y", "x"]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": a} for a in axes],
                "datasets": [{"path": str(i)} for i in range(levels)],
            }
        ],
    }
    for i, data in enumerate(arrays):
        array = group.create_array(
            str(i), shape=data.shape, chunks=(1, 1, 1, 16, 16), dtype="uint16",
            dimension_names=axes,
        )  # fmt: skip
        array[:] = data
    return arrays


def _verified() -> Verified:
    return Verified([C, T, Z, Y, X], [1, 1, 1, 16, 16], "uint16")


def _mapped(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (plane.astype(np.float64) - low) / (high - low)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def test_a_groups_levels_open_in_image_order_and_the_covering_one_is_picked(
    tmp_path: Path,
) -> None:
    arrays = _group(tmp_path)
    levels = open_levels(DiskLocation(tmp_path), _verified())
    assert [level.shape for level in levels] == [
        (C, T, Z, Y, X),
        (C, T, Z, 32, 40),
        (C, T, Z, 16, 20),
    ]
    # c and t come back in the image's order although the group stores t first
    block = levels[1].read(1, 0, 2, slice(0, 32), slice(0, 40))
    assert np.array_equal(block, arrays[1][0, 1, 2])
    assert pick_level(levels, (Y, X), (512, 512))[0] == 0
    assert pick_level(levels, (Y, X), (20, 20))[0] == 1  # 16 x 20 would not cover 20 rows
    assert pick_level(levels, (Y, X), (16, 16))[0] == 2
    assert pick_level(levels, (16, 20), (16, 20))[0] == 0  # zoomed in: full resolution
    assert pick_level(levels, (32, 40), (16, 16))[0] == 1


def test_a_slice_of_a_lower_level_is_that_levels_plane(tmp_path: Path) -> None:
    arrays = _group(tmp_path)
    levels = open_levels(DiskLocation(tmp_path), _verified())
    request = SliceRequest(1, 0, 2, (0, 0, Y, X), (20, 20), (1000.0, 50000.0))
    rendered = render_slice(levels, request)
    assert (rendered.level, rendered.step) == (1, 2)
    png = np.asarray(PILImage.open(io.BytesIO(rendered.png)))
    assert np.array_equal(png, _mapped(arrays[1][0, 1, 2, ::2, ::2], 1000, 50000))
    # A region of the full resolution, viewed at its size: level 0, pixel for pixel.
    zoomed = render_slice(levels, SliceRequest(0, 0, 1, (8, 24, 16, 20), (16, 20), (0.0, 1.0)))
    assert (zoomed.level, zoomed.step) == (0, 1)
    png = np.asarray(PILImage.open(io.BytesIO(zoomed.png)))
    assert np.array_equal(png, _mapped(arrays[0][0, 0, 1, 8:24, 24:44], 0, 1))


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta.__setitem__(key, value)


def _paths(*paths: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["attributes"]["ome"]["multiscales"][0]["datasets"] = [{"path": p} for p in paths]

    return change


REFUSED = [
    ("1/zarr.json", _set("data_type", "float64"), "dtype 'float64', not uint16"),
    ("1/zarr.json", _set("shape", [T, C, Z, 128, 40]), "larger than the level before it"),
    ("0/zarr.json", _set("shape", [T, C, Z, 32, 80]), "first level has shape"),
    ("1/zarr.json", _set("shape", [T, C, 9, 32, 40]), "t, c, z must be 1, 2, 3"),
    ("1/zarr.json", _set("dimension_names", ["c", "t", "z", "y", "x"]), "axes t, c, z, y, x"),
    ("1/zarr.json", _set("codecs", [{"name": "bytes"}, {"name": "lzma"}]), "not accepted"),
    (
        "1/zarr.json",
        _set(
            "chunk_grid",
            {"name": "regular", "configuration": {"chunk_shape": [1, 2, 3, 8192, 8192]}},
        ),
        "more than 67108864",
    ),
    ("zarr.json", _paths("0", "../stores/other"), "not a plain name"),
    ("zarr.json", _paths("0", "0"), "repeat a path"),
    ("zarr.json", _paths(*[str(i) for i in range(33)]), "1 to 32 levels"),
    ("zarr.json", _paths(), "1 to 32 levels"),
    ("zarr.json", _paths("0", "7"), "level '7' has no zarr.json"),
    ("zarr.json", lambda meta: meta["attributes"].pop("ome"), "no multiscales"),
]


@pytest.mark.parametrize(("key", "change", "detail"), REFUSED)
def test_a_group_that_does_not_fit_the_image_is_refused(
    tmp_path: Path, key: str, change: Callable[[dict[str, Any]], None], detail: str
) -> None:
    _group(tmp_path)
    _edit(tmp_path / key, change)
    with pytest.raises(StoreInvalidError, match="image group") as refused:
        open_levels(DiskLocation(tmp_path), _verified())
    assert detail in str(refused.value)


def test_a_chunk_of_a_level_is_bounded_before_it_is_decoded(
    tmp_path: Path, zstd_bomb: Callable[[int, int], bytes]
) -> None:
    _group(tmp_path)
    levels = open_levels(DiskLocation(tmp_path), _verified())
    (tmp_path / "1" / "c" / "0" / "0" / "0" / "0" / "0").write_bytes(zstd_bomb(1 << 30, 1 << 20))
    request = SliceRequest(0, 0, 0, (0, 0, Y, X), (20, 20), None)
    with pytest.raises(ChunkRefusedError, match="1/c/0/0/0/0/0"):
        render_slice(levels, request)
