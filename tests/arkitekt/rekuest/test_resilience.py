from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import arkitekt_server.rekuest.hub as hub_module
from arkitekt import App
from arkitekt.rekuest import AgentLostError, Registry, acall
from arkitekt_server import EmbeddedServer

SCRIPT = Path(__file__).with_name("agent_process.py")

registry = Registry()
release = anyio.Event()


@registry.register
async def r_hold(x: int) -> int:
    await release.wait()
    return x + 1


@pytest.fixture
def start_agent(
    server: EmbeddedServer, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the agent script in a subprocess (same identity each time within a test)."""
    processes: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        environment = {
            **os.environ,
            "FAKTS_URL": server.url,
            "ARKITEKT_HEADLESS": "true",
            "ARKITEKT_CACHE_DIR": str(tmp_path / "agent-cache"),
            "AGENT_IDENTIFIER": f"agent-process-{tmp_path.name}",
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _wait_for(path: Path, lines: int) -> None:
    with anyio.fail_after(20):
        while _lines(path) < lines:  # noqa: ASYNC110
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_subprocess_agent_serves_and_stops_cleanly_on_ctrl_c(
    connect: Callable[..., App], start_agent: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    process = start_agent()
    async with connect(), anyio.create_task_group() as tasks:
        assert await acall("p_double", 21, wait=30) == 42
        # A sync function that never calls progress() again does not keep it from stopping.
        tasks.start_soon(lambda: acall("p_slow", seconds=600, marker=str(marker)))
        await _wait_for(marker, 1)
        process.send_signal(signal.SIGINT)
        output, _ = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=20))
        tasks.cancel_scope.cancel()
    assert process.returncode == 0, output
    assert "agent stopped cleanly" in output


@pytest.mark.anyio
async def test_killed_agent_gets_the_assignment_again_when_it_is_back(
    connect: Callable[..., App], start_agent: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    first = start_agent()
    async with connect(), anyio.create_task_group() as tasks:
        result: list[str] = []

        async def caller() -> None:
            result.append(await acall("p_slow", seconds=60, marker=str(marker), wait=30))

        tasks.start_soon(caller)
        await _wait_for(marker, 1)
        first.kill()  # mid-assignment, no goodbye
        first.wait(timeout=10)
        second = start_agent(AGENT_FAST="1")
        await _wait_for(marker, 2)  # delivered again, to the agent that came back
        with anyio.fail_after(20):
            while not result:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    pids = marker.read_text().split()
    assert pids == [str(first.pid), str(second.pid)]
    assert result == [f"finished by {second.pid}"]


@pytest.mark.anyio
async def test_killed_agent_that_stays_away_fails_the_assignment(
    connect: Callable[..., App],
    start_agent: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "GRACE_SECONDS", 0.5)
    marker = tmp_path / "runs.txt"
    process = start_agent()
    async with connect(), anyio.create_task_group() as tasks:
        outcome: list[BaseException] = []

        assert await acall("p_double", 1, wait=30) == 2  # the agent is up

        async def caller() -> None:
            try:  # no `wait`: the agent gets GRACE_SECONDS to come back
                await acall("p_slow", seconds=60, marker=str(marker))
            except AgentLostError as error:
                outcome.append(error)

        tasks.start_soon(caller)
        await _wait_for(marker, 1)
        process.kill()
        with anyio.fail_after(10):
            while not outcome:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert "disconnected" in str(outcome[0])


@pytest.mark.anyio
async def test_agent_reconnects_and_delivers_what_it_held(
    connect: Callable[..., App], serve: Any, until: Any
) -> None:
    global release
    release = anyio.Event()
    async with serve(connect(), registry) as agent, connect(), anyio.create_task_group() as tasks:
        result: list[int] = []

        async def caller() -> None:
            result.append(await acall("r_hold", 1))

        tasks.start_soon(caller)
        await until(lambda: bool(agent.holding))
        await agent.disconnect()  # the connection drops while the function runs
        release.set()  # ... and it finishes while the agent is (maybe) still away
        await until(lambda: bool(result))
        assert result == [2]
        assert agent.connections == 2
        await until(lambda: not agent.holding)  # acknowledged after reconnecting


@pytest.mark.anyio
async def test_an_assignment_that_kills_every_agent_is_given_up(
    connect: Callable[..., App], start_agent: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    marker = tmp_path / "runs.txt"
    process = start_agent()
    async with connect(), anyio.create_task_group() as tasks:
        outcome: list[BaseException] = []

        async def caller() -> None:
            try:
                await acall("p_slow", seconds=60, marker=str(marker), wait=30)
            except AgentLostError as error:
                outcome.append(error)

        tasks.start_soon(caller)
        for delivery in range(1, hub_module.MAX_ATTEMPTS + 1):
            await _wait_for(marker, delivery)
            process.kill()  # the agent dies on it, every time
            process.wait(timeout=10)
            process = start_agent()
        with anyio.fail_after(20):
            while not outcome:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert f"given up after {hub_module.MAX_ATTEMPTS} deliveries" in str(outcome[0])
    assert _lines(marker) == hub_module.MAX_ATTEMPTS
