"""A browser on another machine: the operator signs in with the operator secret (``/f/signin/``)
and then sees the gallery and the pages of the images that are not private, never a private one;
a wrong secret, a form from another origin or a forged cookie sees nothing.

The sign-in is the same as the approval page's (a session cookie, HttpOnly, SameSite=Strict, path
``/``). The requests come from loopback (tests contact nothing else) to a server that does not
auto-approve, where loopback alone opens nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from arkitekt import easy
from arkitekt._cli import build
from arkitekt.mikro import Image, from_xarray
from arkitekt_server import EmbeddedServer
from arkitekt_server._operator import OPERATOR_COOKIE, operator_secret
from tests.browser import chromium
from tests.helpers import database_args

pytestmark = pytest.mark.sqlite_only("sessions and cookies: no query differs by backend")


@pytest.fixture
def strict(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return server_factory(auto_approve=False)


@pytest.fixture
def images(strict: EmbeddedServer, tmp_path: Path) -> tuple[Image, Image]:
    """A shared and a private image, stored by an app with a static token (nobody approves)."""
    created = CliRunner().invoke(
        build(), ["token", "create", "--identifier", "lab-app", *database_args(strict)]
    )
    assert created.exit_code == 0, created.output
    y, x = np.mgrid[0:48, 0:64]
    data = xr.DataArray((x * 900 + y * 300).astype(np.uint16), dims=["y", "x"])
    token = created.stdout.strip()
    with easy("lab-app", url=strict.url, token=token, headless=True, cache_dir=tmp_path):
        shared = from_xarray(data, name="operator-shared")
        hidden = from_xarray(data, name="operator-private", private=True)
    return shared, hidden


@contextlib.contextmanager
def _signed_in(server: EmbeddedServer, secret: str | None = None) -> Iterator[httpx.Client]:
    """A client that posted the sign-in form (with the operator secret unless given)."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        secret = operator_secret(server.settings) if secret is None else secret
        client.post("/f/signin/", data={"secret": secret})
        yield client


def test_the_signed_in_operator_sees_what_is_not_private(
    strict: EmbeddedServer, images: tuple[Image, Image]
) -> None:
    shared, hidden = images
    form = httpx.get(f"{strict.url}/f/signin/")
    assert form.status_code == 200
    assert "name='secret'" in form.text
    assert "content-security-policy" in form.headers
    with _signed_in(strict) as browser:
        cookie = next(c for c in browser.cookies.jar if c.name == OPERATOR_COOKIE)
        assert cookie.path == "/"
        assert cookie.has_nonstandard_attr("HttpOnly")
        gallery = browser.get("/mikro/")
        assert gallery.status_code == 200
        assert shared.id in gallery.text
        assert hidden.id not in gallery.text
        assert browser.get(f"/mikro/images/{shared.id}/view").status_code == 200
        assert browser.get(f"/mikro/images/{shared.id}/slice.png").status_code == 200
        for path in ("view", "slice.png", "thumbnail.png"):
            assert browser.get(f"/mikro/images/{hidden.id}/{path}").status_code == 404, path
        # the cookie opens the pages, not the API: those still need a bearer token
        assert browser.get(f"/mikro/images/{shared.id}").status_code == 401


def test_a_wrong_secret_another_origin_or_a_forged_cookie_sees_nothing(
    strict: EmbeddedServer, images: tuple[Image, Image]
) -> None:
    shared, _ = images
    with _signed_in(strict, "not the secret") as wrong:
        refused = wrong.post("/f/signin/", data={"secret": "not the secret"})
        assert refused.status_code == 403
        assert "Wrong operator secret" in refused.text
        assert OPERATOR_COOKIE not in wrong.cookies
        assert wrong.get("/mikro/").status_code == 303
    secret = operator_secret(strict.settings)
    elsewhere = httpx.post(
        f"{strict.url}/f/signin/",
        data={"secret": secret},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert OPERATOR_COOKIE not in elsewhere.cookies
    forged = httpx.get(
        f"{strict.url}/mikro/images/{shared.id}/slice.png", cookies={OPERATOR_COOKIE: "guess"}
    )
    assert forged.status_code == 401


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_a_browser_signs_in_and_opens_an_image(
    strict: EmbeddedServer, images: tuple[Image, Image], browser: Any, tmp_path: Path
) -> None:
    shared, _ = images
    page = browser.new_context().new_page()
    page.goto(f"{strict.url}/mikro/")
    page.wait_for_url("**/f/signin/")
    page.screenshot(path=str(tmp_path / "signin.png"))
    page.fill("input[name='secret']", operator_secret(strict.settings))
    page.click("button[type='submit']")
    page.wait_for_url("**/mikro/")
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
    assert "operator-shared" in page.content()
    assert "operator-private" not in page.content()
    page.click(f"a.name[href='images/{shared.id}/view']")
    page.wait_for_function("() => Number(document.getElementById('viewer').dataset.drawn) >= 1")
    page.screenshot(path=str(tmp_path / "image.png"), full_page=True)
    assert page.locator("h1").inner_text() == "operator-shared"
    assert (tmp_path / "image.png").stat().st_size > 0
    page.context.close()


def test_a_sign_in_holds_on_every_replica_with_the_same_secret(
    server_factory: Callable[..., EmbeddedServer],
) -> None:
    # Replicas share the operator secret, not memory: any of them accepts the session.
    secret = "an operator secret for both"
    first, second = (server_factory(auto_approve=False, operator_secret=secret) for _ in "12")
    other = server_factory(auto_approve=False, operator_secret="another operator secret")
    with _signed_in(first) as browser:
        cookie = browser.cookies[OPERATOR_COOKIE]
    for server, status in ((first, 200), (second, 200), (other, 303)):
        answer = httpx.get(f"{server.url}/mikro/", cookies={OPERATOR_COOKIE: cookie})
        assert answer.status_code == status, server.url
