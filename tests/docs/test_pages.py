"""Every ``python`` block of README.md and docs/*.md runs, as a reader would run it.

Each block is a program of its own (a fresh namespace: a name it does not define is an error).
A block that needs a server finds one as a user's script does: through ``FAKTS_URL`` (here the
session server of the root conftest), headless, its approval cached in ``tmp_path``. The info
string of a block says how it runs (see ``tests/docs/markdown.py``): in this process, as a
serving agent in its own process (stopped with SIGTERM once the page's other blocks ran), or as
a pytest module.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from arkitekt_server import EmbeddedServer
from tests.docs.markdown import DOCS, ROOT, Block, pages, python_blocks

# Pages whose blocks are known not to run yet, and why; the test fails once they do (strict).
KNOWN_BROKEN: dict[str, str] = {}
AGENT_START_SECONDS = 60.0


def _environment(server: EmbeddedServer, tmp_path: Path) -> dict[str, str]:
    return {
        "FAKTS_URL": server.url,
        "ARKITEKT_HEADLESS": "true",
        "ARKITEKT_CACHE_DIR": str(tmp_path / "cache"),
    }


def _page_params() -> list[Any]:
    params = []
    for page in pages():
        reason = KNOWN_BROKEN.get(page.name)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks))
    return params


class Agent:
    """A ``{.agent}`` block running as a script in its own process."""

    def __init__(self, block: Block, script: Path, env: dict[str, str]) -> None:
        self.block = block
        script.write_text(block.padded())
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_serving(self) -> None:
        """Return once the agent printed its ``serving ...`` line; fail if it never does."""
        while True:
            try:
                line = self._lines.get(timeout=AGENT_START_SECONDS)
            except queue.Empty:
                pytest.fail(f"{self.block.where}: no 'serving' line within {AGENT_START_SECONDS} s")
            if line is None:
                self.process.wait()
                pytest.fail(
                    f"{self.block.where}: the agent exited ({self.process.returncode}) before "
                    f"serving:\n{''.join(self.output)}"
                )
            self.output.append(line)
            if line.startswith("serving "):
                return

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9

    def rest(self) -> str:
        while (line := self._lines.get(timeout=10)) is not None:
            self.output.append(line)
        return "".join(self.output)


@pytest.fixture
def in_docs_environment(
    server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = _environment(server, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no arkitekt.yaml of the repository's working directory
    return env


def _run_pytest_block(block: Block, tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / f"pytest-block-{block.line}"
    folder.mkdir()
    (folder / "test_block.py").write_text(block.padded())
    # The plugin by name: autoloading every installed plugin (hypothesis, schemathesis, ...)
    # would take most of the time.
    command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "arkitekt.testing"]
    done = subprocess.run(
        [sys.executable, *command, "test_block.py"],
        cwd=folder,
        env={**os.environ, **env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.where}: pytest failed:\n{done.stdout}\n{done.stderr}"
    assert " passed" in done.stdout, done.stdout


@pytest.mark.sqlite_only("the pages' code is the same on every backend")
@pytest.mark.parametrize("page", _page_params())
def test_the_python_blocks_of_the_page_run(
    page: Path, in_docs_environment: dict[str, str], tmp_path: Path
) -> None:
    found = python_blocks(page)
    agents = [
        Agent(b, tmp_path / f"agent_{b.line}.py", in_docs_environment)
        for b in found
        if b.kind == "agent"
    ]
    try:
        for agent in agents:
            agent.wait_serving()
        for block in found:
            if block.kind == "run":
                namespace: dict[str, Any] = {"__name__": "__docs__"}
                exec(compile(block.padded(), str(block.page), "exec"), namespace)
            elif block.kind == "pytest":
                _run_pytest_block(block, tmp_path, in_docs_environment)
    finally:
        codes = [agent.stop() for agent in agents]
    for agent, code in zip(agents, codes, strict=True):
        output = agent.rest()
        assert code == 0, f"{agent.block.where}: exit code {code} after SIGTERM:\n{output}"
        assert "Traceback" not in output, f"{agent.block.where}:\n{output}"


def test_every_python_block_says_how_it_runs() -> None:
    """An unknown info string would be a block that no test runs."""
    unknown = [
        f"{block.where}: ```python {block.info}"
        for page in pages()
        for block in python_blocks(page)
        if block.info not in {"", "{.agent}", "{.pytest}"}
    ]
    assert not unknown, "blocks of an unknown kind:\n" + "\n".join(unknown)


def test_the_pages_hold_blocks_of_every_kind() -> None:
    """A guard that sees nothing must fail: the parser finds the blocks the pages hold."""
    kinds: dict[str, int] = {}
    for page in pages():
        for block in python_blocks(page):
            kinds[block.kind] = kinds.get(block.kind, 0) + 1
    assert kinds.get("run", 0) >= 14, kinds
    assert kinds.get("agent", 0) >= 3, kinds
    assert kinds.get("pytest", 0) >= 1, kinds
    assert len(python_blocks(DOCS / "api.md")) >= 5
    assert len(pages()) >= 9
