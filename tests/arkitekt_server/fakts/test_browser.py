"""The approval page in a real browser (Debian's chromium driven by playwright): the operator
signs in with the operator secret and approves; a wrong secret gets nowhere.

Skipped only outside CI when chromium or playwright is missing (``tests.browser``); under CI
it must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arkitekt_server.fakts._operator import OPERATOR_COOKIE, operator_secret
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
    assert cookie["path"] == "/f/"

    page.click("button[value=approve]")
    assert page.locator("h1").inner_text() == "Done"
    assert "approved" in page.content()
    assert fakts.challenge(code)["status"] == "granted"
    context.close()


def test_a_fresh_browser_cannot_decide_without_signing_in(fakts: Any, browser: Any) -> None:
    code = fakts.start()
    context = browser.new_context()
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
