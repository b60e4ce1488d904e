"""Every ``python`` code block of docs/api.md runs, in order, in one namespace, as a reader
would paste them into one session.

A block that needs a server finds one as a user's script does: through ``FAKTS_URL`` (here
the session server of the root conftest), headless, its approval cached in ``tmp_path``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from arkitekt_server import EmbeddedServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The ``python`` blocks of a markdown file: (line of the block's first code line, code)."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_the_page_has_python_blocks() -> None:
    assert len(python_blocks(DOC)) >= 5


def test_the_python_blocks_of_api_md_run(
    server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKTS_URL", server.url)
    monkeypatch.setenv("ARKITEKT_HEADLESS", "true")
    monkeypatch.setenv("ARKITEKT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no arkitekt.yaml of the repository's working directory
    namespace: dict[str, Any] = {"__name__": "docs_api_md"}
    for line, code in python_blocks(DOC):
        # Padded so that a traceback names the line of docs/api.md.
        exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), namespace)
