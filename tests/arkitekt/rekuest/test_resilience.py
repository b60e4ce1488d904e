from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import arkitekt.rekuest._agent as agent_module
import arkitekt_server.rekuest._hub as hub_module
from arkitekt import App, easy
from arkitekt.rekuest import AgentLostError, Registry, RekuestError, acall, aiterate
from arkitekt_server import EmbeddedServer
from tests.helpers import ServerProcess, until

SCRIPT = Path(__file__).with_name("agent_process.py")

registry = Registry()
release = anyio.Event()


@registry.register
async def r_hold(x: int) -> int:
    await release.wait()
    return x + 1


@registry.register
async def r_hold_stream(x: int) -> AsyncIterator[int]:
    yield x
    await release.wait()
    yield x + 1


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
    await until(lambda: _lines(path) >= lines, 20)


@pytest.mark.anyio
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_subprocess_agent_serves_and_stops_cleanly(
    stop: signal.Signals,
    connect: Callable[..., App],
    start_agent: Callable[..., subprocess.Popen[str]],
    server: EmbeddedServer,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "runs.txt"
    process = start_agent()
    async with connect(), anyio.create_task_group() as tasks:
        assert await acall("p_double", 21, wait=30) == 42
        # A running sync function finishes, and its result reaches the caller, before the
        # agent stops (it takes nothing new meanwhile).
        finished: list[str] = []

        async def slow() -> None:
            finished.append(await acall("p_slow", seconds=2, marker=str(marker), wait=30))

        tasks.start_soon(slow)
        await _wait_for(marker, 1)
        process.send_signal(stop)
        output, _ = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=20))
        await until(lambda: bool(finished), 10)
    assert finished == [f"finished by {process.pid}"]
    assert "stopping: waiting up to 10 s for 1 running assignment(s)" in output
    assert process.returncode == 0, output
    assert "agent stopped cleanly" in output
    agent_url = server.url.replace("http://", "ws://") + "/rekuest/agent/ws"
    serving = [line for line in output.splitlines() if line.startswith("serving ")]
    assert serving == [f"serving 2 functions (p_double, p_slow) at {agent_url} (Ctrl+C stops it)"]


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
        await until(lambda: bool(result), 20)
    pids = marker.read_text().split()
    assert pids == [str(first.pid), str(second.pid)]
    assert result == [f"finished by {second.pid}"]


@pytest.mark.anyio
async def test_killed_agent_that_stays_away_fails_the_assignment(
    connect: Callable[..., App],
    start_agent: Callable[..., subprocess.Popen[str]],
    server_factory: Callable[..., EmbeddedServer],
    tmp_path: Path,
) -> None:
    server = server_factory(auto_approve=True, rekuest_agent_grace_seconds=0.5)
    marker = tmp_path / "runs.txt"
    process = start_agent(FAKTS_URL=server.url)
    async with connect(url=server.url), anyio.create_task_group() as tasks:
        outcome: list[BaseException] = []

        assert await acall("p_double", 1, wait=30) == 2  # the agent is up

        async def caller() -> None:
            try:  # no `wait`: the agent gets rekuest_agent_grace_seconds to come back
                await acall("p_slow", seconds=60, marker=str(marker))
            except AgentLostError as error:
                outcome.append(error)

        tasks.start_soon(caller)
        await _wait_for(marker, 1)
        process.kill()
        await until(lambda: bool(outcome), 10)
    assert "disconnected" in str(outcome[0])


@pytest.mark.anyio
async def test_agent_reconnects_and_delivers_what_it_held(
    connect: Callable[..., App], serve: Any
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
        await until(lambda: agent.connections == 2)  # its count may follow the delivery
        await until(lambda: not agent.holding)  # acknowledged after reconnecting


@pytest.mark.anyio
async def test_an_assignment_delivered_again_is_answered_never_ignored(
    connect: Callable[..., App], serve: Any
) -> None:
    """A server that lost what the agent sent of an assignment (it restarted before storing
    the call; its caller sent it again) delivers it again: the agent answers with what it
    holds, and runs again what was cancelled meanwhile (else the call waits forever)."""
    global release
    release = anyio.Event()
    async with serve(connect(), registry) as agent:
        outbox: list[str] = []
        agent.send = outbox.append  # type: ignore[method-assign]  # the server sees none of it

        def assign(id: str, x: int) -> None:
            agent._handle({"t": "assign", "id": id, "f": "r_hold", "a": {"x": x}})

        def sent() -> list[dict[str, Any]]:
            messages = [json.loads(message) for message in outbox]
            outbox.clear()
            return sorted(messages, key=lambda message: str(message["id"]))

        assign("held-0001", 1)  # finished; its result held (the server died meanwhile)
        assign("cancelled-0001", 10)  # cancelled (the server did not know it)
        agent._handle({"t": "cancel", "id": "cancelled-0001"})
        release.set()
        await until(lambda: not agent._running)
        assert sent() == [
            {"t": "cancelled", "id": "cancelled-0001"},
            {"t": "done", "id": "held-0001", "v": 2},
        ]
        assign("held-0001", 1)  # delivered again: its held result is sent again
        assert sent() == [{"t": "done", "id": "held-0001", "v": 2}]
        assign("cancelled-0001", 10)  # delivered again after the cancel: it runs again
        await until(lambda: not agent._running)
        assert sent() == [{"t": "done", "id": "cancelled-0001", "v": 11}]

        release = anyio.Event()
        assign("ending-0001", 20)  # cancelled, and delivered again while its run ends
        agent._handle({"t": "cancel", "id": "ending-0001"})
        assign("ending-0001", 20)
        await until(lambda: not agent._again)  # its cancelled run ended: it runs again
        assert "ending-0001" in agent._running
        release.set()
        await until(lambda: not agent._running)
        assert sent() == [{"t": "done", "id": "ending-0001", "v": 21}]


@pytest.mark.anyio
async def test_reconnections_that_deliver_what_is_held_never_give_up_on_it(
    connect: Callable[..., App], serve: Any
) -> None:
    """A stream's items are held until it ends; each reconnection that delivers them is a
    success, so more than MAX_RESENDS of them do not fail a healthy stream."""
    global release
    release = anyio.Event()
    fast = connect(rekuest={"reconnect_max_seconds": 0.2})
    async with serve(fast, registry) as agent, connect(), anyio.create_task_group() as tasks:
        items: list[int] = []

        async def caller() -> None:
            items.extend([item async for item in aiterate("r_hold_stream", 1)])

        tasks.start_soon(caller)
        await until(lambda: bool(agent._held))  # item 0 is kept until the stream ends
        for n in range(agent_module.MAX_RESENDS + 2):
            await agent.disconnect()
            await until(lambda n=n: agent.connections == n + 2)  # back, item 0 sent again
        release.set()
        await until(lambda: len(items) >= 2, 20)
        assert items == [1, 2]
        await until(lambda: not agent.holding)


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
        await until(lambda: bool(outcome), 20)
    assert f"given up after {hub_module.MAX_ATTEMPTS} deliveries" in str(outcome[0])
    assert _lines(marker) == hub_module.MAX_ATTEMPTS


class Tally:
    """Outcomes of a stream of calls around a crash: every call must end, clearly."""

    def __init__(self) -> None:
        self.returned = 0
        self.failed: dict[str, int] = {}
        self.lost: list[str] = []

    async def run(
        self, n: int, make: Callable[[int], Any], right: Callable[[int, Any], bool]
    ) -> None:
        """Await call ``n`` (``make(n)``); a wrong result or no outcome in time counts as lost."""
        try:
            with anyio.fail_after(60):
                value = await make(n)
        except RekuestError as error:
            name = type(error).__name__
            self.failed[name] = self.failed.get(name, 0) + 1
        except TimeoutError:
            self.lost.append(f"call {n}: no outcome within 60 s")
        else:
            if right(n, value):
                self.returned += 1
            else:
                self.lost.append(f"call {n}: returned {value!r}")

    def report(self, what: str) -> str:
        failed = sum(self.failed.values())
        return (
            f"\n{what}: {self.returned} returned, {failed} failed clearly {self.failed}, "
            f"{len(self.lost)} lost"
        )


@pytest.mark.anyio
async def test_kill_9_of_an_agent_mid_burst_loses_no_call(
    connect: Callable[..., App],
    start_agent: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    marker = str(tmp_path / "runs.txt")
    # both agents sleep in each call, so that results arrive spread out and the kill, once a
    # quarter of them returned, lands mid-burst (a fast agent finished all before the kill)
    first = start_agent()
    tally = Tally()

    def finished(n: int, value: Any) -> bool:
        return isinstance(value, str) and value.startswith("finished by")

    async with connect():
        assert await acall("p_double", 0, wait=30) == 0  # the agent is up
        async with anyio.create_task_group() as tasks:
            for n in range(BURST):
                call = functools.partial(acall, "p_slow", seconds=0.05, marker=marker, wait=30)
                tasks.start_soon(tally.run, n, lambda n, call=call: call(), finished)
            await until(lambda: tally.returned >= BURST // 4, 30, interval=0.005)  # mid-burst
            first.kill()
            at_kill = tally.returned
            first.wait(timeout=10)
            start_agent()  # the same agent comes back: the rest
    print(tally.report(f"kill -9 of an agent mid-burst of {BURST} calls ({at_kill} before)"))
    assert at_kill < BURST  # it was killed mid-burst
    assert tally.returned + sum(tally.failed.values()) == BURST
    assert tally.lost == []
    assert set(tally.failed) <= {"AgentLostError"}


BURST = 200


stream_registry = Registry()


@stream_registry.register
async def k_inc(x: int) -> int:
    await anyio.sleep(0.001)
    return x + 1


@pytest.mark.anyio
async def test_kill_9_of_the_server_mid_call_stream_loses_no_call(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    await anyio.to_thread.run_sync(server_process.start)
    url = server_process.url
    agent_app = easy(
        "kill-server-agent",
        url=url,
        headless=True,
        cache_dir=tmp_path / "a",
        rekuest={"reconnect_max_seconds": 0.5},
    )
    caller_app = easy("kill-server-caller", url=url, headless=True, cache_dir=tmp_path / "c")
    agent_app.rekuest.registry = stream_registry
    tally = Tally()
    async with agent_app, caller_app:
        await agent_app.rekuest.astart()
        rekuest = caller_app.rekuest

        async def one(n: int) -> Any:
            return await acall("k_inc", n, wait=20, rekuest=rekuest)

        async def stream(start: int, count: int) -> None:
            async with anyio.create_task_group() as tasks:
                for n in range(start, start + count):
                    tasks.start_soon(tally.run, n, one, lambda n, value: value == n + 1)
                    await anyio.sleep(0.002)  # a steady stream, not one burst

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(stream, 0, STREAM)
            await until(lambda: tally.returned >= STREAM // 4, 30, interval=0.005)  # mid-stream
            await anyio.to_thread.run_sync(server_process.kill)
            # on the same port: the agent and the caller find it again by themselves
            await anyio.to_thread.run_sync(functools.partial(server_process.start, same_port=True))
        # after the restart, calls work again: the agent reconnected, the caller too
        before = tally.returned
        await stream(STREAM, 20)
        assert tally.returned == before + 20
    print(tally.report(f"kill -9 of the server mid-stream of {STREAM + 20} calls"))
    assert tally.returned + sum(tally.failed.values()) == STREAM + 20
    assert tally.lost == []
    assert set(tally.failed) <= {"ConnectionLostError", "AgentLostError", "NoAgentError"}


STREAM = 300
