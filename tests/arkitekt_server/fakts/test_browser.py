"""The approval page in a real browser (Debian's chromium driven by playwright): the operator
signs in with the operator secret and approves; a wrong secret gets nowhere.

Skipped only outside CI when chromium or playwright is missing (``tests.browser``); under CI
it must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arkitekt_server._operator import OPERATOR_COOKIE, operator_secret
from tests.browser import chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_the_operator_signs_in_and_approves_in_a_browser(fakts: Any, browser: Any) -> None:
    code = fakts.start()
    context = browser.new_context()
    page = context.new_page()
    link = f"{fakts.server.url}/f/configure/?device_code={code}&grant=device_code"
    page.goto(link)
    assert page.locator("h1").inner_text().startswith("Sign in")
    assert page.locator("button[value=approve]").count() == 0  # nothing to decide yet

    page.fill("input[name=secret]", "not-the-operator-secret")
    page.click("button[type=submit]")
    assert "Wrong operator secret" in page.content()
    assert context.cookies() == []

    page.fill("input[name=secret]", operator_secret(fakts.server.settings))
    page.click("button[type=submit]")
    page.wait_for_url(f"**/f/configure/?device_code={code}&grant=device_code")
    assert page.locator("h1").inner_text().startswith("Allow an app")
    assert "flow-app" in page.content()
    (cookie,) = context.cookies()
    assert cookie["name"] == OPERATOR_COOKIE
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"  # the approval page and the gallery

    page.click("button[value=approve]")
    assert page.locator("h1").inner_text() == "Done"
    assert "approved" in page.content()
    assert fakts.challenge(code)["status"] == "granted"
    context.close()


def test_a_fresh_browser_cannot_decide_without_signing_in(fakts: Any, browser: Any) -> None:
    code = fakts.start()
    # bypass_csp: the pages run no script at all; this models a local process that can
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{fakts.server.url}/f/configure/?device_code={code}&grant=device_code")
    # A script of the page's own origin reads the form and posts the decision, as a local
    # process can: same Origin, the page's cookies, whatever the page holds.
    status = page.evaluate(
        """async (code) => {
               const nonce = document.querySelector("input[name=nonce]")?.value || "none";
               const body = new URLSearchParams({device_code: code, nonce, action: "approve"});
               return (await fetch("./", {method: "POST", body})).status;
           }""",
        code,
    )
    assert status == 403
    assert fakts.challenge(code) == {"status": "pending"}
    context.close()


# A 2x2 red PNG as a data URL: a logo that needs no network (tests contact only loopback).
RED_LOGO = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARA"
    "wQCgAf7gP9i18U1AAAAABJRU5ErkJggg=="
)


def test_the_approval_page_shows_the_deployment_the_app_and_its_logo(
    fakts: Any, browser: Any, tmp_path: Any
) -> None:
    manifest = {"identifier": "logo-app", "version": "2.1", "scopes": ["read"], "logo": RED_LOGO}
    code = fakts.start(manifest)
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.goto(f"{fakts.server.url}/f/configure/?device_code={code}&grant=device_code")
    page.fill("input[name=secret]", operator_secret(fakts.server.settings))
    page.click("button[type=submit]")
    page.wait_for_selector("button[value=approve]")
    page.screenshot(path=str(tmp_path / "approval-page.png"), full_page=True)

    deployment = fakts.server.settings.deployment_name
    assert page.locator(".deployment").inner_text() == deployment
    assert page.locator(".identifier").inner_text() == "logo-app"
    assert page.locator(".version").inner_text() == "version 2.1"
    assert page.locator("ul.scopes li").all_inner_texts() == ["read"]
    assert code in page.locator(".code").inner_text()
    logo = page.locator("img.logo")
    assert logo.get_attribute("src") == RED_LOGO
    # drawn, not a broken image: the browser decoded it
    assert page.evaluate("() => document.querySelector('img.logo').naturalWidth") == 2
    approve, deny = page.locator("button[value=approve]"), page.locator("button[value=deny]")
    colour = "el => getComputedStyle(el).backgroundColor"
    assert approve.evaluate(colour) != deny.evaluate(colour)  # the primary action stands out
    assert approve.bounding_box()["height"] >= 30  # a button to click, not a link-sized one
    context.close()


@pytest.mark.parametrize("logo", ["http://10.0.0.1/x.png", "https://tracker.example/p.png"])
def test_a_logo_at_an_address_is_not_fetched(fakts: Any, browser: Any, logo: str) -> None:
    manifest = {"identifier": "http-logo", "version": "1", "logo": logo}
    code = fakts.start(manifest)
    context = browser.new_context()
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    page.goto(f"{fakts.server.url}/f/configure/?device_code={code}&grant=device_code")
    page.fill("input[name=secret]", operator_secret(fakts.server.settings))
    page.click("button[type=submit]")
    page.wait_for_selector("button[value=approve]")
    assert page.locator("img.logo").count() == 0
    assert page.locator(".logo").inner_text() == "H"  # the app's initial instead
    assert all(url.startswith(fakts.server.url) for url in requested), requested
    context.close()
