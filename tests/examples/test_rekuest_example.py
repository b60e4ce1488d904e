"""The rekuest demo runs against a real server: one app serves functions, another calls them."""

from __future__ import annotations

from typing import Any


def test_rekuest_demo_calls_a_function_served_by_another_process(run_example: Any) -> None:
    done = run_example("rekuest_demo.py", 180)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "serving 2 functions (countdown, threshold) at ws://" in out  # the agent process
    assert "[progress] 10% reading pixels" in out  # events from the remote function
    assert "[log] thresholding 'noise' at 0.3" in out
    assert "threshold ran remotely: 'noise > 0.3'" in out
    assert "countdown: 5 4 3 2 1 0" in out
    assert "agent stopped" in out  # Ctrl+C shut it down cleanly
    assert out.rstrip().endswith("agent exited with code 0")
