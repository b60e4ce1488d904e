"""The approval page in a real browser (Debian's chromium driven by playwright): the operator
signs in with the operator secret and approves; a wrong secret gets nowhere.

Skipped only outside CI when chromium or playwright is missing; under CI it must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from arkitekt_server.fakts._operator import OPERATOR_COOKIE, operator_secret

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [
        what
        for what, there in (
            ("chromium (apt-get install chromium)", shutil.which(CHROMIUM) is not None),
            ("playwright (pip install playwright)", _has_playwright()),
        )
        if not there
    ]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test needs {' and '.join(missing)} under CI")
        pytest.skip(f"needs {' and '.join(missing)}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


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
