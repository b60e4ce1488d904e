"""The read path over http: one store per read, its ``zarr.json`` fetched at most once.

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
from arkitekt.mikro import ImageNotFoundError, get_image, search_images
from arkitekt.mikro._read import read_blocks
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


@pytest.mark.parametrize(
    ("chunks", "shape", "itemsize", "blocks"),
    [
        ((1, 1, 1, 512, 512), (2, 3, 40, 512, 512), 2, (1, 1, 40, 512, 512)),  # 20 MiB fits
        ((1, 1, 1, 2048, 2048), (1, 1, 10, 2048, 2048), 4, (1, 1, 2, 2048, 2048)),
        ((1, 1, 4, 8, 8), (3, 5, 8, 8, 8), 1, (3, 5, 8, 8, 8)),  # small: one block
    ],
)
def test_read_blocks_are_whole_chunks_grown_along_z_t_c(
    chunks: tuple[int, ...], shape: tuple[int, ...], itemsize: int, blocks: tuple[int, ...]
) -> None:
    assert read_blocks(chunks, shape, itemsize) == blocks
