"""Thumbnails and the ``/mikro/`` page: content, and who may see them without a token."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import xarray as xr
from PIL import Image as PILImage

from arkitekt import App
from arkitekt.mikro import from_xarray
from arkitekt_server import EmbeddedServer
from tests.helpers import bearer_token


def _stack() -> xr.DataArray:
    data = np.zeros((2, 3, 40, 60), dtype=np.uint16)  # c, z, y, x
    data[0, 2, 10, 20] = 1000  # bright spot in the first channel, on the last plane
    data[1, 0, 30, 50] = 5000  # the second channel is not projected
    return xr.DataArray(data, dims=["c", "z", "y", "x"])


def test_thumbnail_is_the_max_projection_of_the_first_channel(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    with connect() as app:
        image = from_xarray(_stack(), name="spots")
        headers = {"Authorization": f"Bearer {bearer_token(app)}"}
        url = f"{server.url}/mikro/images/{image.id}/thumbnail.png"
        response = httpx.get(url, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        png = np.asarray(PILImage.open(io.BytesIO(response.content)))
        assert png.shape == (40, 60)
        assert png[10, 20] == 255
        assert png[30, 50] == 0
        assert png.sum() == 255
        assert httpx.get(url, headers=headers).content == response.content  # cached


def test_page_lists_names_and_tags_escaped_and_hides_private_images(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    with connect() as app:
        shown = from_xarray(_stack(), name="<b>bold</b>", tags=["<raw>"])
        hidden = from_xarray(_stack(), name="hidden-from-browser", private=True)
        token = bearer_token(app)
    page = httpx.get(f"{server.url}/mikro/")  # tokenless: loopback + auto_approve server
    assert page.status_code == 200
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "<b>bold</b>" not in page.text
    assert "&lt;raw&gt;" in page.text
    assert f"images/{shown.id}/thumbnail.png" in page.text
    assert hidden.id not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert httpx.get(f"{server.url}/mikro/images/{hidden.id}/thumbnail.png").status_code == 404
    # With the owner's token the private image is listed.
    owned = httpx.get(f"{server.url}/mikro/", headers={"Authorization": f"Bearer {token}"})
    assert hidden.id in owned.text


def test_tokenless_view_needs_a_loopback_host_header(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    with connect():
        image = from_xarray(_stack(), name="rebinding")
    for host in ("evil.example", "evil.example:8000", "10.0.0.1"):
        for path in ("/mikro/", f"/mikro/images/{image.id}/thumbnail.png"):
            response = httpx.get(server.url + path, headers={"Host": host})
            assert response.status_code == 400, (host, path)  # the server's Host check
    for host in ("localhost", "127.0.0.1:1234", "[::1]:80"):
        assert httpx.get(server.url + "/mikro/", headers={"Host": host}).status_code == 200
    bad = httpx.get(server.url + "/mikro/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_tokenless_view_is_off_without_auto_approve(
    server_factory: Callable[..., EmbeddedServer],
) -> None:
    strict = server_factory(auto_approve=False)
    response = httpx.get(f"{strict.url}/mikro/")
    assert response.status_code == 303  # to the operator's sign-in form
    assert response.headers["location"] == "../f/signin/"
    missing = "00000000-0000-4000-8000-000000000000"
    assert httpx.get(f"{strict.url}/mikro/images/{missing}/thumbnail.png").status_code == 401
