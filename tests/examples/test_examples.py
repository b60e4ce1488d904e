"""The examples run against a real server with the URL from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from arkitekt_server import EmbeddedServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_classic_example_finds_the_server_through_the_environment(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "FAKTS_URL": server.url,
        "ARKITEKT_HEADLESS": "true",
        "ARKITEKT_CACHE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "classic.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "values identical" in done.stdout
    assert "images tagged 'demo': ['my-image']" in done.stdout
    assert "url" not in (EXAMPLES / "classic.py").read_text().split("easy(")[1].split(")")[0]
