"""A headless browser for the page tests: Debian's chromium driven by playwright's Python API
(``executable_path``; nothing is downloaded).

Skipped only outside CI when chromium or playwright is missing; under CI it must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["CHROMIUM", "chromium"]

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


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless chromium (a playwright ``Browser``), closed on exit."""
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
