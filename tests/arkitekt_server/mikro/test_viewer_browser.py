"""The gallery and an image's page in a real browser (Debian's chromium, ``tests.browser``): the
viewer draws a non-blank slice, moving the z slider draws another, the page runs under its
Content-Security-Policy without a violation, and a private image of another app is not
reachable. Screenshots go to the test's ``tmp_path``.

Skipped only outside CI when chromium or playwright is missing; under CI it must run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from arkitekt import App
from arkitekt.mikro import from_xarray
from arkitekt_server import EmbeddedServer
from tests.browser import chromium
from tests.helpers import bearer_token

pytestmark = pytest.mark.sqlite_only("the pages' queries are tested on both backends elsewhere")

_CANVAS = """() => {
    const canvas = document.getElementById("canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const grey = [];
    for (let i = 0; i < pixels.length; i += 4) grey.push(pixels[i]);
    return grey;
}"""


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _planes() -> xr.DataArray:
    """Four planes, each a different pattern (so every plane is non-blank and none alike)."""
    y, x = np.mgrid[0:64, 0:96]
    planes = [x * 600, y * 900, (x + y) % 16 * 4000, ((x // 8 + y // 8) % 2) * 60000]
    return xr.DataArray(np.stack(planes).astype(np.uint16), dims=["z", "y", "x"])


def _drawn(page: Any, count: int) -> np.ndarray:
    page.wait_for_function(
        f"() => Number(document.getElementById('viewer').dataset.drawn) >= {count}"
    )
    return np.asarray(page.evaluate(_CANVAS), dtype=np.uint8)


def _watch(page: Any) -> list[str]:
    """The page's script errors, CSP violations and refused requests (but the browser's own
    ``/favicon.ico``, which the server has not)."""
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)  # refused loads are named by URL below

    def response(answer: Any) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            problems.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", response)
    return problems


def test_the_viewer_draws_slices_and_the_z_slider_moves_through_them(
    server: EmbeddedServer, connect: Callable[..., App], browser: Any, tmp_path: Path
) -> None:
    with connect():
        image = from_xarray(_planes(), name="browser-planes", tags=["browser"])
    context = browser.new_context(viewport={"width": 1000, "height": 1200})
    page = context.new_page()
    problems = _watch(page)
    page.goto(f"{server.url}/mikro/?name=browser-planes")  # tokenless: single-user loopback
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
    assert "64 y x 96 x" in page.content()
    page.click(f"a.name[href='images/{image.id}/view']")
    page.wait_for_url(f"**/mikro/images/{image.id}/view")
    assert page.locator("h1").inner_text() == "browser-planes"

    first = _drawn(page, 1)
    page.screenshot(path=str(tmp_path / "z0.png"), full_page=True)
    assert first.std() > 10, "the viewer drew a blank slice"
    assert (first > 0).mean() > 0.3

    page.locator("#z").focus()
    page.keyboard.press("ArrowRight")
    second = _drawn(page, 2)
    page.screenshot(path=str(tmp_path / "z1.png"), full_page=True)
    assert page.locator("#z-value").inner_text() == "1"
    assert second.std() > 10
    assert (first != second).mean() > 0.3, "moving z did not change the slice"

    page.click("#zoom-in")
    zoomed = _drawn(page, 3)
    assert page.locator("#zoom").inner_text() == "2x"
    assert not np.array_equal(zoomed, second)
    assert "level 0, region 48 x 32 px" in page.locator("#status").inner_text()
    assert problems == []
    assert (tmp_path / "z1.png").stat().st_size > 0
    context.close()


def test_a_private_image_of_another_app_is_not_reachable_in_the_browser(
    server: EmbeddedServer, connect: Callable[..., App], browser: Any, tmp_path: Path
) -> None:
    with connect() as owner:
        hidden = from_xarray(_planes(), name="browser-private", private=True)
        mine = bearer_token(owner)
    with connect() as other:
        theirs = bearer_token(other)

    def visit(token: str | None, name: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        context = browser.new_context(extra_http_headers=headers)
        page = context.new_page()
        response = page.goto(f"{server.url}/mikro/images/{hidden.id}/view")
        page.screenshot(path=str(tmp_path / f"{name}.png"))
        return response.status, page

    for token, name in ((theirs, "other-app"), (None, "tokenless")):
        status, page = visit(token, name)
        assert status == 404, name
        assert "browser-private" not in page.content()
        assert page.evaluate("fetch('slice.png').then(r => r.status)") == 404
        gallery = page.goto(f"{server.url}/mikro/?name=browser-private")
        assert gallery is not None
        assert hidden.id not in page.content()
        page.context.close()
    # Its own app sees it, and the viewer draws it.
    status, page = visit(mine, "owner")
    assert status == 200
    assert _drawn(page, 1).std() > 10
    page.context.close()
