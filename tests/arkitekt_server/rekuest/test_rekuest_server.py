from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from arkitekt import App, easy
from arkitekt.rekuest import Registry, acall
from arkitekt.transport import Transport
from arkitekt_server import EmbeddedServer, ServerSettings
from tests.helpers import until

registry = Registry()
release = anyio.Event()


@registry.register
def s_add(a: int, b: int = 2) -> int:
    return a + b


@registry.register
async def s_hold(x: int) -> int:
    await release.wait()
    return x * 3


async def _transport(app: App) -> Transport:
    transport: Transport = await app.container.transport()
    return transport


async def _closed_with(url: str, headers: dict[str, str]) -> int | None:
    async with ws_connect(url, additional_headers=headers) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.anyio
async def test_sockets_and_routes_need_a_token(server: EmbeddedServer) -> None:
    base = server.url.replace("http://", "ws://")
    for path in ("/rekuest/agent/ws", "/rekuest/caller/ws"):
        assert await _closed_with(base + path, {}) == 4401
        assert await _closed_with(base + path, {"Authorization": "Bearer nope"}) == 4401
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in ("/rekuest/definitions/", "/rekuest/agents/", "/rekuest/assignments/x"):
            assert (await client.get(path)).status_code == 401
        assert (
            await client.post("/rekuest/assignments/", json={"function": "x"})
        ).status_code == 401


@pytest.mark.anyio
async def test_invalid_registration_is_refused(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await (await _transport(app)).atoken()
    url = server.url.replace("http://", "ws://") + "/rekuest/agent/ws"
    register = {"t": "register", "definitions": [{"name": "x", "args": [{"key": "a"}]}]}
    async with ws_connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        await socket.send(json.dumps([register]))
        answer = json.loads(await socket.recv())
        assert answer[0]["t"] == "fatal"
        assert "invalid definitions" in answer[0]["m"]
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


@pytest.mark.anyio
async def test_http_api_lists_calls_and_cancels(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    agent_app = connect()
    agent_app.rekuest.registry = registry
    async with agent_app:
        agent = await agent_app.rekuest.astart()
        async with connect() as caller:
            client = (await _transport(caller)).client
            base = f"{server.url}/rekuest/"
            agents = (await client.get(base + "agents/")).json()
            mine = next(entry for entry in agents if entry["key"] == agent.key)
            assert mine["online"]
            assert mine["functions"] == ["s_add", "s_hold"]
            listed = (await client.get(base + "definitions/")).json()
            names = {entry["definition"]["name"] for entry in listed if entry["agent"] == agent.key}
            assert names == {"s_add", "s_hold"}

            bad = await client.post(
                base + "assignments/", json={"function": "s_add", "arguments": {"a": "x"}}
            )
            assert bad.status_code == 400
            assert bad.json()["detail"]["message"] == "argument 'a': expected int, got str 'x'"
            missing = await client.post(base + "assignments/", json={"function": "s_nowhere"})
            assert missing.status_code == 404
            assert missing.json()["detail"]["kind"] == "no_agent"

            made = await client.post(
                base + "assignments/", json={"function": "s_add", "positional": [40]}
            )
            assert made.status_code == 201
            id = made.json()["id"]
            body: dict[str, Any] = {}

            async def finished() -> bool:
                body.update((await client.get(base + f"assignments/{id}")).json())
                return body["status"] == "done"

            await until(finished)
            assert body["result"] == 42
            assert body["agent"] == agent.key

            global release
            release = anyio.Event()
            held = await client.post(
                base + "assignments/", json={"function": "s_hold", "arguments": {"x": 1}}
            )
            held_id = held.json()["id"]
            await until(lambda: bool(agent.holding))
            cancelled = await client.post(base + f"assignments/{held_id}/cancel")
            assert cancelled.status_code == 200
            await until(lambda: not agent.holding)
            status = (await client.get(base + f"assignments/{held_id}")).json()
            assert status["status"] == "cancelled"
            assert (await client.post(base + f"assignments/{held_id}/cancel")).status_code == 404

            timed = await client.post(
                base + "assignments/",
                json={"function": "s_hold", "arguments": {"x": 1}, "timeout": 0.2},
            )
            await until(lambda: bool(agent.holding))
            await until(lambda: not agent.holding)  # the server cancelled it on the agent
            status = (await client.get(base + f"assignments/{timed.json()['id']}")).json()
            assert status["status"] == "error"
            assert status["error_kind"] == "timeout"
            assert "did not finish within 0.2 s" in status["error"]
        async with connect() as stranger:
            other = (await _transport(stranger)).client
            assert (await other.get(base + f"assignments/{id}")).status_code == 404


def _server(data_dir: Path, port: int = 0) -> EmbeddedServer:
    settings = ServerSettings(port=port, data_dir=data_dir, auto_approve=True, log_level="warning")
    server = EmbeddedServer(settings)
    server.start()
    return server


@pytest.mark.anyio
async def test_assignment_survives_a_server_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    first = _server(data_dir)
    servers = [first]

    def app(name: str) -> App:
        return easy(
            name,
            url=first.url,
            headless=True,
            cache_dir=tmp_path / "cache",
            rekuest={"reconnect_max_seconds": 0.5},
        )

    global release
    release = anyio.Event()
    agent_app, caller = app("restart-agent"), app("restart-caller")
    agent_app.rekuest.registry = registry
    try:
        async with agent_app, caller:
            agent = await agent_app.rekuest.astart()
            client = (await _transport(caller)).client
            made = await client.post(
                f"{first.url}/rekuest/assignments/",
                json={"function": "s_hold", "arguments": {"x": 5}},
            )
            id = made.json()["id"]
            await until(lambda: bool(agent.holding))
            await anyio.to_thread.run_sync(first.stop)
            second = await anyio.to_thread.run_sync(_server, data_dir, first.port)
            servers.append(second)
            await until(lambda: agent.connections == 2)  # reconnected (backoff, jitter)
            release.set()
            body: dict[str, Any] = {}

            async def finished() -> bool:
                body.update((await client.get(f"{second.url}/rekuest/assignments/{id}")).json())
                return body["status"] == "done"

            await until(finished)
            assert body["result"] == 15
    finally:
        for server in servers:
            await anyio.to_thread.run_sync(server.stop)


@pytest.mark.anyio
async def test_malformed_calls_are_refused_and_the_socket_survives(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await (await _transport(app)).atoken()
    url = server.url.replace("http://", "ws://") + "/rekuest/caller/ws"
    async with ws_connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        assert json.loads(await socket.recv()) == [{"t": "ready"}]
        await socket.send(json.dumps([{"t": "call", "id": "short", "f": "s_add"}]))
        answer = json.loads(await socket.recv())[0]
        assert answer["kind"] == "refused"
        assert "fresh id" in answer["m"]
        bad_wait = {"t": "call", "id": "a" * 32, "f": "s_add", "wait": "soon"}
        await socket.send(json.dumps([bad_wait, {"t": "call", "id": "b" * 32, "f": "s_nope"}]))
        answers: list[dict[str, Any]] = []
        with anyio.fail_after(10):
            while len(answers) < 2:  # one frame or two: the server batches what is queued
                answers += json.loads(await socket.recv())
        first, second = answers
        assert (first["id"], first["kind"]) == ("a" * 32, "refused")
        assert (second["id"], second["kind"]) == ("b" * 32, "no_agent")


@pytest.mark.anyio
async def test_refused_tokens_are_renewed_by_callers_and_agents(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    agent_app = connect()
    agent_app.rekuest.registry = registry
    async with agent_app, connect() as caller:
        agent = await agent_app.rekuest.astart()
        assert await acall("s_add", 1, agent=agent_app.manifest.identifier) == 3
        for app in (caller, agent_app):  # revoke both approvals: their tokens die
            client = (await _transport(app)).client
            assert (await client.post(f"{server.url}/lok/revoke/")).status_code == 200
        channel = await caller.rekuest._channel()
        assert channel._socket is not None
        await channel._socket.close()  # the next call reconnects, with a refused token
        await agent.disconnect()  # so does the agent
        await until(lambda: agent.connections == 2)
        assert await acall("s_add", 2, agent=agent_app.manifest.identifier) == 4
