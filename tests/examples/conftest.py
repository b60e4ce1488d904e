from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from arkitekt_server import EmbeddedServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def run_example(
    server: EmbeddedServer, tmp_path: Path
) -> Callable[[str, float], subprocess.CompletedProcess[str]]:
    """Run ``examples/<name>`` as a user would, finding the session server through the
    environment only (``FAKTS_URL``), headless, with its approval cached in ``tmp_path``."""

    def run(name: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "FAKTS_URL": server.url,
            "ARKITEKT_HEADLESS": "true",
            "ARKITEKT_CACHE_DIR": str(tmp_path),
        }
        return subprocess.run(
            [sys.executable, str(EXAMPLES / name)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
