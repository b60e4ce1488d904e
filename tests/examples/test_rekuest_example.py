"""The rekuest demo runs against a real server: one app serves functions, another calls them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from arkitekt_server import EmbeddedServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_rekuest_demo_calls_a_function_served_by_another_process(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "FAKTS_URL": server.url,
        "ARKITEKT_HEADLESS": "true",
        "ARKITEKT_CACHE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "rekuest_demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "serving threshold and countdown; Ctrl+C stops" in out  # the agent process
    assert "[progress] 10% reading pixels" in out  # events from the remote function
    assert "[log] thresholding 'noise' at 0.3" in out
    assert "threshold ran remotely: 'noise > 0.3'" in out
    assert "countdown: 5 4 3 2 1 0" in out
    assert "agent stopped" in out  # Ctrl+C shut it down cleanly
    assert out.rstrip().endswith("agent exited with code 0")
