"""Two ``arkitekt server`` replicas (separate processes and data dirs) on one PostgreSQL
database: an agent connected to one serves callers connected to the other, and ``kill -9`` of
either replica in the middle of a burst of calls loses no call (the agent and the callers
reconnect to the restarted replica; the callers resume their calls by id)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from arkitekt import easy
from arkitekt.rekuest import Registry, acall
from tests.helpers import ServerProcess, abearer_token, until

registry = Registry()


@registry.register
async def rp_inc(x: int) -> int:
    await anyio.sleep(0.005)
    return x + 1


BURST = 150
SECRET = "replica-operator-secret-0123456789"


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two replicas on one database, with short leases and re-scans (not started)."""
    env = {
        "ARKITEKT_SERVER_OPERATOR_SECRET": SECRET,
        "ARKITEKT_SERVER_REKUEST_LEASE_SECONDS": "1",
        "ARKITEKT_SERVER_REKUEST_RESCAN_SECONDS": "0.2",
        "ARKITEKT_SERVER_REKUEST_AGENT_GRACE_SECONDS": "60",
    }
    made = tuple(
        ServerProcess(tmp_path / name, database_url=postgres_url, env=env) for name in "ab"
    )
    yield made
    for replica in made:
        if replica.process is not None and replica.process.poll() is None:
            replica.process.kill()
            replica.finish()


async def _burst(rekuest: Any, start: int, kill: ServerProcess) -> list[Any]:
    """``BURST`` calls in a steady stream; ``kill`` dies (and restarts) once a quarter of them
    returned. Returns every call's outcome (a value or the exception)."""
    outcomes: dict[int, Any] = {}

    async def one(n: int) -> None:
        try:
            with anyio.fail_after(90):
                outcomes[n] = await acall("rp_inc", n, wait=30, rekuest=rekuest)
        except Exception as error:  # recorded: the test names every failure
            outcomes[n] = error

    async def stream() -> None:
        async with anyio.create_task_group() as tasks:
            for n in range(start, start + BURST):
                tasks.start_soon(one, n)
                await anyio.sleep(0.003)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(stream)
        await until(lambda: len(outcomes) >= BURST // 4, 60, interval=0.005)
        await anyio.to_thread.run_sync(kill.kill)
        await anyio.to_thread.run_sync(functools.partial(kill.start, same_port=True))
    return [outcomes[n] for n in range(start, start + BURST)]


@pytest.mark.anyio
async def test_an_agent_on_one_replica_serves_callers_on_another_through_kill_9(
    replicas: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    front, back = replicas
    await anyio.to_thread.run_sync(front.start)  # the first one creates the tables
    await anyio.to_thread.run_sync(back.start)
    agent_app = easy(
        "rp-agent",
        url=back.url,
        headless=True,
        cache_dir=tmp_path / "agent",
        rekuest={"reconnect_max_seconds": 0.3},
    )
    caller_app = easy("rp-caller", url=front.url, headless=True, cache_dir=tmp_path / "caller")
    agent_app.rekuest.registry = registry
    async with agent_app, caller_app:
        await agent_app.rekuest.astart()
        rekuest = caller_app.rekuest
        # the agent's definition is visible through the other replica, and it is online
        client = (await caller_app.container.transport()).client
        listed = (await client.get(f"{front.url}/rekuest/agents/")).json()
        assert [a["online"] for a in listed if "rp_inc" in a["functions"]] == [True]
        assert await acall("rp_inc", 1, rekuest=rekuest) == 2

        # kill -9 of the agent's replica, then of the callers' one: every call returns right
        for n, victim in enumerate((back, front)):
            outcomes = await _burst(rekuest, n * BURST, victim)
            wrong = {
                n * BURST + i: outcome
                for i, outcome in enumerate(outcomes)
                if outcome != n * BURST + i + 1
            }
            assert wrong == {}, f"after kill -9 of replica {n}: {len(wrong)} wrong: {wrong}"

        # a token made through one replica is valid on the other
        token = await abearer_token(caller_app)
        async with httpx.AsyncClient() as raw:
            answer = await raw.get(
                f"{back.url}/rekuest/agents/", headers={"Authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 200
