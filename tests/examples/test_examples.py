"""The examples run against a real server with the URL from the environment only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_classic_example_finds_the_server_through_the_environment(run_example: Any) -> None:
    done = run_example("classic.py", 120)
    assert done.returncode == 0, done.stderr
    assert "values identical" in done.stdout
    assert "images tagged 'demo': ['my-image']" in done.stdout
    assert "url" not in (EXAMPLES / "classic.py").read_text().split("easy(")[1].split(")")[0]
