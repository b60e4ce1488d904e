"""Callers resume their calls by id after a reconnect: a server restart (same data dir, or the
same PostgreSQL database) costs a waiting call nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from arkitekt import App, easy
from arkitekt.rekuest import Registry, acall, aiterate
from arkitekt_server import EmbeddedServer, ServerSettings
from tests.helpers import until

registry = Registry()
release = anyio.Event()


@registry.register
async def rs_hold(x: int) -> int:
    await release.wait()
    return x * 3


@registry.register
async def rs_count(n: int) -> AsyncIterator[int]:
    for item in range(n):
        if item == 1:
            await release.wait()
        yield item


def _server(data_dir: Path, database_url: str | None, port: int = 0) -> EmbeddedServer:
    settings = ServerSettings(
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        auto_approve=True,
        log_level="warning",
    )
    server = EmbeddedServer(settings)
    server.start()
    return server


@pytest.mark.anyio
async def test_a_call_waiting_through_a_server_restart_gets_its_result(
    tmp_path: Path, database_url: str | None
) -> None:
    global release
    release = anyio.Event()
    data_dir = tmp_path / "server"
    first = _server(data_dir, database_url)
    servers = [first]

    def app(name: str) -> App:
        return easy(
            name,
            url=first.url,
            headless=True,
            cache_dir=tmp_path / "cache",
            rekuest={"reconnect_max_seconds": 0.3},
        )

    agent_app, caller_app = app("resume-agent"), app("resume-caller")
    agent_app.rekuest.registry = registry
    try:
        async with agent_app, caller_app, anyio.create_task_group() as tasks:
            agent = await agent_app.rekuest.astart()
            results: list[object] = []
            items: list[int] = []

            async def call() -> None:
                results.append(await acall("rs_hold", 5, rekuest=caller_app.rekuest))

            async def stream() -> None:
                async for item in aiterate("rs_count", 3, rekuest=caller_app.rekuest):
                    items.append(item)

            tasks.start_soon(call)
            tasks.start_soon(stream)
            await until(lambda: len(agent.holding) == 2 and items == [0])
            await anyio.to_thread.run_sync(first.stop)  # both calls wait through it
            second = await anyio.to_thread.run_sync(_server, data_dir, database_url, first.port)
            servers.append(second)
            await until(lambda: agent.connections == 2)
            release.set()
            await until(lambda: bool(results) and len(items) == 3, 20)
        assert results == [15]  # not ConnectionLostError: the caller resumed it
        assert items == [0, 1, 2]  # the items after the restart arrive too
    finally:
        for server in servers:
            await anyio.to_thread.run_sync(server.stop)
