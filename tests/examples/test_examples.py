"""The examples run against a real server with the URL from the environment only."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _easy_calls(example: str) -> list[ast.Call]:
    """The ``easy(...)`` calls of an example, as Python reads them."""
    tree = ast.parse((EXAMPLES / example).read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "easy"
    ]


def test_classic_example_finds_the_server_through_the_environment(run_example: Any) -> None:
    # The server's port is picked at random: the example can only learn it from FAKTS_URL.
    done = run_example("classic.py", 120)
    assert done.returncode == 0, done.stderr
    assert "values identical" in done.stdout
    assert "images tagged 'demo': ['my-image']" in done.stdout
    (call,) = _easy_calls("classic.py")
    assert "url" not in [keyword.arg for keyword in call.keywords]  # url is keyword-only
