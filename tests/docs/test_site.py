"""The documentation site builds with ``--strict`` (as ``make docs`` and CI build it), lists every
page, and its API reference is generated from the docstrings of the public modules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.docs.markdown import DOCS, ROOT

PUBLIC = [
    "arkitekt",
    "arkitekt.mikro",
    "arkitekt.rekuest",
    "arkitekt.fakts",
    "arkitekt.errors",
    "arkitekt.extension",
    "arkitekt.testing",
    "arkitekt_server",
]


def _nav_files(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [name for item in nav for name in _nav_files(item)]
    if isinstance(nav, dict):
        return [name for value in nav.values() for name in _nav_files(value)]
    return []


def _config() -> dict[str, object]:
    # mkdocs.yml holds no custom YAML tags, so the safe loader reads it whole
    loaded: dict[str, object] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return loaded


def test_the_nav_lists_every_page_and_every_public_module() -> None:
    listed = _nav_files(_config()["nav"])
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    references = " ".join((DOCS / name).read_text() for name in listed if "reference/" in name)
    assert sorted(re.findall(r"^::: ([\w.]+)", references, re.MULTILINE)) == sorted(PUBLIC)


def test_the_site_builds_strictly_with_the_reference_from_the_docstrings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    for page in ["guide", "classic", "api", "server", "deploy", "mikro", "rekuest"]:
        assert (site / page / "index.html").is_file(), page
    easy = (site / "reference" / "arkitekt" / "index.html").read_text()
    assert 'id="arkitekt.easy"' in easy
    # Google-style sections of easy()'s docstring became tables, not text
    assert "Parameters:" in easy
    assert "approvals are per identifier and version" in easy
    server = (site / "reference" / "server" / "index.html").read_text()
    assert 'id="arkitekt_server.EmbeddedServer"' in server
    assert "Raises:" in server
