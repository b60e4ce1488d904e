"""The README's commands, as ``make`` would run them on a fresh clone (``make -n``: nothing runs).

The demo installs what the demo needs (the library and the server), the tests everything; both
show pip's progress instead of a silent minute.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _plan(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make TARGET`` would run in a fresh clone (no ``.venv`` yet)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, clone / name)
    result = subprocess.run(
        ["make", "-n", target], cwd=clone, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _installs(plan: list[str]) -> list[str]:
    return [line for line in plan if "pip install" in line and "--upgrade pip" not in line]


def test_the_demo_installs_the_server_but_not_the_developer_tools(tmp_path: Path) -> None:
    installs = _installs(_plan("demo", tmp_path))
    assert len(installs) == 1, installs
    assert '-e ".[server]"' in installs[0]
    assert "dev" not in installs[0]


def test_the_tests_install_the_developer_tools(tmp_path: Path) -> None:
    installs = _installs(_plan("test", tmp_path))
    assert len(installs) == 1, installs
    assert '-e ".[dev]"' in installs[0]


@pytest.mark.parametrize("target", ["demo", "test"])
def test_the_first_install_is_not_silent(target: str, tmp_path: Path) -> None:
    plan = _plan(target, tmp_path)
    (install,) = _installs(plan)
    assert " -q" not in install  # pip prints what it collects and installs
    assert any(line.startswith('echo "==> installing') for line in plan)


def test_the_docs_install_only_the_documentation_tools(tmp_path: Path) -> None:
    installs = _installs(_plan("docs", tmp_path))
    assert len(installs) == 1, installs
    assert '-e ".[docs]"' in installs[0]
    assert "dev" not in installs[0]
