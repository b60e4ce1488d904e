"""The image page and its slices: pixels after the contrast mapping, bounds of every parameter,
who may see them, the lineage; the gallery's paging, search and shape column."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import xarray as xr
from PIL import Image as PILImage

from arkitekt import App, easy
from arkitekt.mikro import create_dataset, from_xarray
from arkitekt_server import EmbeddedServer
from arkitekt_server.mikro._browser import CSP
from arkitekt_server.mikro._storage import Layout
from tests.helpers import bearer_token

SHAPE = (2, 5, 40, 60)  # c, z, y, x


def _stack(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, SHAPE, dtype=np.uint16)


def _mapped(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """The documented contrast mapping, written out here on its own."""
    scaled = (plane.astype(np.float64) - low) / (high - low)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(PILImage.open(io.BytesIO(response.content)))


def _headers(app: App) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer_token(app)}"}


@pytest.mark.sqlite_only("reads and bounds of the store: no query differs by backend")
def test_a_slice_is_the_stored_plane_after_the_contrast_mapping(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    data = _stack()
    with connect() as app:
        image = from_xarray(xr.DataArray(data, dims=["c", "z", "y", "x"]), name="slices")
        with httpx.Client(
            base_url=f"{server.url}/mikro/images/{image.id}", headers=_headers(app)
        ) as http:
            whole = http.get("slice.png", params={"c": 1, "z": 3, "low": 100, "high": 3000.5})
            assert whole.headers["x-mikro-level"] == "0"
            assert whole.headers["x-mikro-step"] == "1"
            assert np.array_equal(_png(whole), _mapped(data[1, 3], 100, 3000.5))

            # A region larger than the view: every 2nd pixel of it, so it fits 20 x 20.
            region = {"x": 10, "y": 5, "w": 40, "h": 30, "width": 20, "height": 20}
            part = http.get("slice.png", params={"c": 0, "z": 4, "low": 0, "high": 4000, **region})
            assert part.headers["x-mikro-step"] == "2"
            expected = _mapped(data[0, 4, 5:35:2, 10:50:2], 0, 4000)
            assert np.array_equal(_png(part), expected)

            # Auto contrast: the window is the 0.5th..99.5th percentile of the plane.
            auto = http.get("slice.png", params={"z": 2})
            low, high = (float(v) for v in auto.headers["x-mikro-window"].split())
            want = np.percentile(data[0, 2].astype(np.float64), [0.5, 99.5])
            assert np.allclose([low, high], want, rtol=1e-5)
            pixels = _png(auto)
            assert pixels.shape == (40, 60)
            assert pixels.min() == 0
            assert pixels.max() == 255
            assert (np.abs(pixels.astype(int) - _mapped(data[0, 2], *want)) <= 1).all()


BAD = [
    ({"z": 5}, "z=5 is out of range: this image has 5 plane(s)"),
    ({"c": 2}, "c=2 is out of range"),
    ({"t": 1}, "t=1 is out of range"),
    ({"x": 60}, "x=60 is out of range"),
    ({"y": 10, "h": 31}, "the region ends beyond the image: y+h=41, but it has 40 rows"),
    ({"x": 50, "w": 11}, "x+w=61, but it has 60 columns"),
    ({"low": 5}, "give both low and high"),
    ({"low": 5, "high": 5}, "low (5.0) must be less than high (5.0)"),
    ({"low": "nan", "high": 1}, "low"),
    ({"low": 0, "high": "inf"}, "high"),
    ({"low": 0, "high": "1e309"}, "high"),
    ({"c": -1}, "c"),
    ({"z": "one"}, "z"),
    ({"z": 1 << 41}, "z"),
    ({"w": 0}, "w"),
    ({"width": 0}, "width"),
    ({"width": 2049}, "width"),
    ({"height": 100_000}, "height"),
]


@pytest.mark.sqlite_only("reads and bounds of the store: no query differs by backend")
def test_every_slice_parameter_is_bounded_with_a_clear_422(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    with connect() as app:
        image = from_xarray(xr.DataArray(_stack(), dims=["c", "z", "y", "x"]), name="bounds")
        url = f"{server.url}/mikro/images/{image.id}/slice.png"
        with httpx.Client(headers=_headers(app)) as http:
            for params, detail in BAD:
                response = http.get(url, params=params)
                assert response.status_code == 422, (params, response.status_code)
                assert detail in response.text, (params, response.text)
            assert http.get(url, params={"width": 2048, "height": 1}).status_code == 200
            assert http.get(url, params={"x": 50, "w": 10, "y": 39, "h": 1}).status_code == 200


def test_private_images_of_another_app_are_never_reachable(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    data = xr.DataArray(_stack(), dims=["c", "z", "y", "x"])
    with connect() as owner, connect() as other:
        hidden = from_xarray(data, name="hidden-page", private=True, mikro=owner.mikro)
        shared = from_xarray(data, name="shared-page", mikro=owner.mikro)
        mine, theirs = _headers(owner), _headers(other)
    missing = str(uuid.uuid4())
    for path in ("view", "slice.png", "thumbnail.png"):
        url = f"{server.url}/mikro/images/{{}}/{path}"
        assert httpx.get(url.format(hidden.id), headers=mine).status_code == 200, path
        refused = httpx.get(url.format(hidden.id), headers=theirs)
        unknown = httpx.get(url.format(missing), headers=theirs)
        assert refused.status_code == unknown.status_code == 404, path
        assert refused.content == unknown.content  # not a word more than for no image at all
        if path == "view":  # a page for the browser: HTML under the pages' CSP
            assert refused.headers["content-type"].startswith("text/html")
            assert refused.headers["content-security-policy"] == CSP
            assert "<h1>Image not found</h1>" in refused.text
            assert hidden.id not in refused.text
        else:  # the API stays JSON
            assert refused.json() == unknown.json()
        assert httpx.get(url.format(hidden.id)).status_code == 404  # tokenless: shared only
        assert httpx.get(url.format(shared.id)).status_code == 200, path
        assert httpx.get(url.format(shared.id), headers=theirs).status_code == 200, path
        bad = httpx.get(url.format(shared.id), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        rebinding = httpx.get(url.format(shared.id), headers={"Host": "evil.example"})
        assert rebinding.status_code == 400
    gallery = httpx.get(f"{server.url}/mikro/", params={"name": "hidden-page"}, headers=theirs)
    assert hidden.id not in gallery.text


@pytest.mark.sqlite_only("refused before any query")
def test_pages_and_slices_need_a_token_off_single_user_mode(
    server_factory: Callable[..., EmbeddedServer],
) -> None:
    strict = server_factory(auto_approve=False)
    missing = str(uuid.uuid4())
    for path in (f"/mikro/images/{missing}/slice.png", "/mikro/static/viewer.js"):
        response = httpx.get(strict.url + path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    # pages send the browser to the operator's sign-in form
    for path in ("/mikro/", f"/mikro/images/{missing}/view"):
        response = httpx.get(strict.url + path)
        assert response.status_code == 303, path
        assert httpx.URL(strict.url + path).join(response.headers["location"]).path == (
            "/f/signin/"
        )


def test_the_page_shows_metadata_and_lineage_escaped_under_a_strict_csp(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    data = xr.DataArray(_stack(), dims=["c", "z", "y", "x"])
    with connect() as app:
        dataset = create_dataset("<i>set</i>")
        origin = from_xarray(data, name="origin<1>", tags=["raw"])
        image = from_xarray(
            data,
            name="<script>alert(1)</script>",
            tags=["<t>", "seg"],
            dataset=dataset,
            origins=[origin.id],
            channel_names=["DAPI", "<GFP>"],
            pixel_size={"x": 0.5, "y": 0.5, "z": 2.0},
        )
        child = from_xarray(data, name="child", origins=[image.id])
        headers = _headers(app)
    with connect():  # another app derives a private image from it
        secret = from_xarray(data, name="secret-child", origins=[image.id], private=True)
    page = httpx.get(f"{server.url}/mikro/images/{image.id}/view", headers=headers)
    assert page.status_code == 200
    text = page.text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    shown = ["&lt;i&gt;set&lt;/i&gt;", "&lt;t&gt;", "seg", "DAPI", "&lt;GFP&gt;", "uint16"]
    shown += ["2 c x 5 z x 40 y x 60 x", "x 0.5 µm", "z 2 µm", image.owner]
    for part in shown:
        assert part in text, part
    assert f"href='../{origin.id}/view'>origin&lt;1&gt;</a>" in text
    assert f"href='../{child.id}/view'>child</a>" in text
    assert secret.id not in text
    assert "secret-child" not in text
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)
    assert scripts == [""]  # one script, from the static route, no inline code
    assert "src='../../static/viewer.js'" in text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe" not in csp
    script = httpx.get(f"{server.url}/mikro/static/viewer.js", headers=headers)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "slice.png" in script.text
    assert "eval(" not in script.text
    assert httpx.get(f"{server.url}/mikro/static/other.js", headers=headers).status_code == 422
    # The origin's page lists the image as derived from it.
    back = httpx.get(f"{server.url}/mikro/images/{origin.id}/view", headers=headers).text
    assert f"href='../{image.id}/view'>" in back


def test_the_gallery_pages_searches_and_reads_shapes(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    run = uuid.uuid4().hex[:8]
    data = xr.DataArray(np.zeros((2, 3, 4, 5), dtype=np.uint8), dims=["c", "z", "y", "x"])
    with connect() as app:
        stored = [
            from_xarray(data, name=f"{run}-cell-{i}", tags=[f"{run}-even" if i % 2 == 0 else "odd"])
            for i in range(5)
        ]
        headers = _headers(app)
    gallery = f"{server.url}/mikro/"
    first = httpx.get(gallery, params={"name": f"{run}-CELL", "limit": 2}, headers=headers)
    assert first.status_code == 200
    assert "5 image(s); showing 1-2 of 5" in first.text
    assert "page 1 of 3" in first.text
    assert stored[4].id in first.text  # newest first
    assert stored[3].id in first.text
    assert stored[0].id not in first.text
    assert "2 c x 3 z x 4 y x 5 x" in first.text
    assert f"href='images/{stored[4].id}/view'" in first.text
    older = re.search(r"<a rel='next' href='([^']+)'>older</a>", first.text)
    assert older is not None
    second = httpx.get(gallery + older.group(1).replace("&amp;", "&"), headers=headers)
    assert "showing 3-4 of 5" in second.text
    assert stored[2].id in second.text
    assert stored[1].id in second.text
    tagged = httpx.get(gallery, params={"tag": f"{run}-even"}, headers=headers)
    assert "3 image(s)" in tagged.text
    assert all(stored[i].id in tagged.text for i in (0, 2, 4))
    assert stored[1].id not in tagged.text
    both = httpx.get(
        gallery, params={"tag": f"{run}-even", "name": f"{run}-cell-2"}, headers=headers
    )
    assert "1 image(s)" in both.text
    for params in ({"name": "x" * 501}, {"tag": "x" * 101}, {"name": "a\0b"}, {"limit": 501},
                   {"offset": -1}):  # fmt: skip
        assert httpx.get(gallery, params=params, headers=headers).status_code == 422, params


def test_a_slice_of_an_image_in_the_bucket(s3_server: EmbeddedServer, tmp_path: Path) -> None:
    data = _stack(3)
    app = easy(f"s3-view-{uuid.uuid4().hex[:8]}", url=s3_server.url, headless=True,
               cache_dir=tmp_path / "cache")  # fmt: skip
    with app:
        image = from_xarray(xr.DataArray(data, dims=["c", "z", "y", "x"]), name="in-bucket")
        assert image.storage == "s3"
        url = f"{s3_server.url}/mikro/images/{image.id}/slice.png"
        params = {"c": 1, "z": 4, "low": 10, "high": 3990}
        answer = httpx.get(url, params=params, headers=_headers(app))
    assert np.array_equal(_png(answer), _mapped(data[1, 4], 10, 3990))


@pytest.mark.sqlite_only("reads and bounds of the store: no query differs by backend")
def test_a_damaged_store_is_a_422_never_a_500(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    with connect() as app:
        changed = from_xarray(xr.DataArray(_stack(), dims=["c", "z", "y", "x"]), name="changed")
        garbled = from_xarray(xr.DataArray(_stack(), dims=["c", "z", "y", "x"]), name="garbled")
        corrupt = from_xarray(xr.DataArray(_stack(), dims=["c", "z", "y", "x"]), name="corrupt")
        headers = _headers(app)
    stores = Layout(server.settings.data_dir)
    meta = stores.store(changed.id) / "zarr.json"
    meta.write_bytes(meta.read_bytes() + b" ")
    chunk = next(p for p in (stores.store(garbled.id) / "0" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"\xff" * chunk.stat().st_size)  # a header declaring nonsense
    chunk = next(p for p in (stores.store(corrupt.id) / "0" / "c").rglob("*") if p.is_file())
    data = chunk.read_bytes()  # the header stays (its sizes are right); the payload is garbage
    chunk.write_bytes(data[:16] + bytes(b ^ 0x5A for b in data[16:]))
    cases = ((changed, "not the one verified"), (garbled, "chunk"), (corrupt, "does not decode"))
    for image, detail in cases:
        url = f"{server.url}/mikro/images/{image.id}"
        answers = [httpx.get(f"{url}/slice.png", params={"c": c, "z": z}, headers=headers)
                   for c in range(2) for z in range(5)]  # fmt: skip
        assert {answer.status_code for answer in answers} <= {200, 422}
        refused = [answer for answer in answers if answer.status_code == 422]
        assert refused, image.name
        assert "cannot be rendered" in refused[0].text
        assert detail in refused[0].text
        assert httpx.get(f"{url}/view", headers=headers).status_code == 200
        assert httpx.get(f"{url}/thumbnail.png", headers=headers).status_code in (200, 422)
