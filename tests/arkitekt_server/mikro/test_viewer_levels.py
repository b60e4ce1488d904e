"""The levels of a stored image as the viewer reads them: the smallest pyramid level that covers
the view is rendered, its pixels are that level's, and a store with a level changed since it
was verified is refused (422), never rendered."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import xarray as xr
from PIL import Image as PILImage

from arkitekt import App
from arkitekt.mikro import from_xarray
from arkitekt_server import EmbeddedServer
from arkitekt_server.mikro._levels import Level, pick_level
from arkitekt_server.mikro._storage import Layout
from tests.helpers import bearer_token

pytestmark = pytest.mark.sqlite_only("reading levels is the same on both backends")

Y, X = 600, 800  # levels: 600 x 800, 300 x 400, 150 x 200 (fits a 256 px tile)


def _image(connect: Callable[..., App]) -> tuple[str, dict[str, str], np.ndarray]:
    data = np.random.default_rng(3).integers(0, 60000, (1, Y, X), dtype=np.uint16)
    with connect() as app:
        image = from_xarray(xr.DataArray(data, dims=["z", "y", "x"]), name="levels")
        assert [shape[3:] for shape in image.levels] == [(600, 800), (300, 400), (150, 200)]
        return image.id, {"Authorization": f"Bearer {bearer_token(app)}"}, data[0]


def _slice(
    server: EmbeddedServer, image: str, headers: dict[str, str], **params: int
) -> httpx.Response:
    url = f"{server.url}/mikro/images/{image}/slice.png"
    return httpx.get(url, params={"low": 0, "high": 60000, **params}, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("width", "height", "level"), [(800, 600, 0), (400, 300, 1), (200, 150, 2), (100, 75, 2)]
)
def test_the_smallest_level_covering_the_view_is_rendered_with_its_pixels(
    server: EmbeddedServer, connect: Callable[..., App], width: int, height: int, level: int
) -> None:
    image, headers, plane = _image(connect)
    answer = _slice(server, image, headers, width=width, height=height)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Mikro-Level"] == str(level)
    step = int(answer.headers["X-Mikro-Step"])
    drawn = np.asarray(PILImage.open(io.BytesIO(answer.content)))
    expected = plane[:: 2**level, :: 2**level][::step, ::step]  # the level is a stride of 0
    mapped = np.floor(255 * np.clip(expected.astype(np.float64) / 60000, 0, 1)).astype(np.uint8)
    np.testing.assert_array_equal(drawn, mapped)


def test_a_store_with_a_level_changed_since_it_was_verified_is_refused(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    image, headers, _ = _image(connect)
    document = Layout(server.settings.data_dir).store(image) / "2" / "zarr.json"
    document.write_bytes(document.read_bytes() + b" ")
    for width, height in ((100, 75), (800, 600)):  # the changed level, and level 0 with it
        refused = _slice(server, image, headers, width=width, height=height)
        assert refused.status_code == 422
        assert "cannot be rendered" in refused.text


def test_pick_level_prefers_the_smallest_covering_level() -> None:
    levels = [Level(None, "tczyx", (1, 1, 1, 600 // 2**n, 800 // 2**n)) for n in range(3)]
    assert pick_level(levels, (600, 800), (600, 800))[0] == 0
    assert pick_level(levels, (600, 800), (300, 400))[0] == 1
    assert pick_level(levels, (600, 800), (299, 399))[0] == 1
    assert pick_level(levels, (600, 800), (150, 200))[0] == 2
    assert pick_level(levels, (100, 100), (100, 100))[0] == 0  # a small region: full detail
