"""The server refuses what it cannot serve, clearly, and one bad peer never harms the others."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from arkitekt import App
from arkitekt_server import EmbeddedServer
from tests.helpers import abearer_token, until


async def _recv(socket: ClientConnection, count: int = 1) -> list[dict[str, Any]]:
    """At least ``count`` messages (the server batches what is queued into one frame)."""
    messages: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        while len(messages) < count:
            messages += json.loads(await socket.recv())
    return messages


@asynccontextmanager
async def _socket(server: EmbeddedServer, token: str, kind: str) -> AsyncIterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + f"/rekuest/{kind}/ws"
    async with ws_connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        if kind == "caller":
            assert await _recv(socket) == [{"t": "ready"}]
        yield socket


def _definition(name: str, *ports: tuple[str, str]) -> dict[str, Any]:
    return {"name": name, "args": [{"key": key, "kind": kind} for key, kind in ports]}


async def _register(socket: ClientConnection, *definitions: dict[str, Any]) -> None:
    await socket.send(json.dumps([{"t": "register", "definitions": list(definitions)}]))
    assert (await _recv(socket))[0]["t"] == "registered"


async def _refused(socket: ClientConnection) -> tuple[str, int | None]:
    """The ``fatal`` message of a refused agent, and the close code."""
    answer = await _recv(socket)
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert answer[0]["t"] == "fatal"
    return answer[0]["m"], closed.value.rcvd.code if closed.value.rcvd else None


async def _status(client: httpx.AsyncClient, id: str, wanted: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def reached() -> bool:
        response = await client.get(f"/rekuest/assignments/{id}")
        assert response.status_code == 200, response.text
        body.update(response.json())
        return body["status"] == wanted

    await until(reached)
    return body


@pytest.mark.anyio
async def test_a_reused_call_id_is_refused_and_later_calls_are_stored(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as agent_app, connect() as caller_app:
        agent_token, token = await abearer_token(agent_app), await abearer_token(caller_app)
    async with (
        _socket(server, agent_token, "agent") as agent,
        _socket(server, token, "caller") as caller,
    ):
        echo = _definition("dup_echo", ("x", "int"))
        echo["returns"] = [
            {"key": "return", "kind": "dict", "children": [{"key": "v", "kind": "int"}]}
        ]
        await _register(agent, echo)

        async def answer() -> None:
            message = (await _recv(agent))[0]
            assert message["t"] == "assign"
            await agent.send(json.dumps([{"t": "done", "id": message["id"], "v": message["a"]}]))
            assert (await _recv(agent))[0] == {"t": "ack", "ids": [message["id"]]}

        call = {"t": "call", "id": "dup-call-0001", "f": "dup_echo", "kwargs": {"x": 1}}
        await caller.send(json.dumps([call]))
        await answer()
        assert (await _recv(caller))[0]["t"] == "done"
        await caller.send(json.dumps([{**call, "kwargs": {"x": 2}}]))
        again = (await _recv(caller))[0]
        assert (again["id"], again["kind"]) == ("dup-call-0001", "refused")
        assert "was used before" in again["m"]
        await caller.send(json.dumps([{**call, "id": "dup-call-0002"}]))
        await answer()  # the writer still stores and acknowledges
        assert (await _recv(caller))[0]["t"] == "done"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        first = await _status(client, "dup-call-0001", "done")
        assert first["result"] == {"x": 1}  # the stored call, untouched by the refused one
        assert (await _status(client, "dup-call-0002", "done"))["result"] == {"x": 1}


@pytest.mark.anyio
async def test_an_id_stored_before_a_restart_is_refused(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    from arkitekt import easy

    data_dir = tmp_path / "restarted"
    first = server_factory(data_dir=data_dir, auto_approve=True)
    app = easy("restart-dup", url=first.url, headless=True, cache_dir=tmp_path / "cache")
    async with app:
        token = await abearer_token(app)
    http = {"Authorization": f"Bearer {token}"}
    async with _socket(first, token, "caller") as caller:  # stored, then failed: no agent
        await caller.send(json.dumps([{"t": "call", "id": "restart-0001", "f": "r", "wait": 0.1}]))
        assert (await _recv(caller))[0]["kind"] == "no_agent"
    async with httpx.AsyncClient(base_url=first.url, headers=http) as client:
        await _status(client, "restart-0001", "error")
    await anyio.to_thread.run_sync(first.stop)
    second = server_factory(data_dir=data_dir, auto_approve=True)
    async with _socket(second, token, "caller") as caller:
        calls = [
            {"t": "call", "id": id, "f": "r", "wait": 5} for id in ("restart-0001", "restart-0002")
        ]
        await caller.send(json.dumps(calls))
        refused = (await _recv(caller))[0]
        assert (refused["id"], refused["kind"]) == ("restart-0001", "refused")
        async with httpx.AsyncClient(base_url=second.url, headers=http) as client:
            assert (await _status(client, "restart-0002", "queued"))["function"] == "r"
            old = await _status(client, "restart-0001", "error")
            assert old["error_kind"] == "no_agent"


@pytest.mark.anyio
async def test_a_malformed_registration_leaves_no_ghost_agent(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    register = {"t": "register", "definitions": [_definition("ghost_g")], "holding": 5}
    async with _socket(server, token, "agent") as agent:
        await agent.send(json.dumps([register]))
        message, code = await _refused(agent)
    assert code == 4400
    assert message.startswith("invalid registration: holding:")
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        agents = (await client.get("/rekuest/agents/")).json()
        assert not [agent for agent in agents if "ghost_g" in agent["functions"]]
        missing = await client.post("/rekuest/assignments/", json={"function": "ghost_g"})
        assert missing.status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("port", "problem"),
    [
        ({"key": "a", "kind": "list", "children": []}, "exactly one child"),
        ({"key": "a", "kind": "dict"}, "exactly one child"),
        ({"key": "a", "kind": "enum"}, "needs its choices"),
        ({"key": "a", "kind": "structure"}, "needs its identifier"),
        ({"key": "a", "kind": "int", "children": [{"key": "b", "kind": "int"}]}, "no child"),
    ],
)
async def test_definitions_that_cannot_describe_values_are_refused(
    server: EmbeddedServer, connect: Callable[..., App], port: dict[str, Any], problem: str
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    register = {"t": "register", "definitions": [{"name": "bad_ports", "args": [port]}]}
    async with _socket(server, token, "agent") as agent:
        await agent.send(json.dumps([register]))
        message, code = await _refused(agent)
    assert code == 4400
    assert message.startswith("invalid definitions: definitions.0.args.0:")
    assert problem in message


@pytest.mark.anyio
async def test_a_call_is_bound_to_the_definition_of_the_agent_it_goes_to(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect("bind-one") as one, connect("bind-two") as two, connect() as caller_app:
        tokens = [await abearer_token(app) for app in (one, two, caller_app)]
    async with (
        _socket(server, tokens[0], "agent") as first,
        _socket(server, tokens[1], "agent") as second,
        _socket(server, tokens[2], "caller") as caller,
    ):
        await _register(first, _definition("bind_f", ("a", "int")))
        call = {"t": "call", "id": "bind-0000001", "f": "bind_f", "kwargs": {"a": 1}}
        await caller.send(json.dumps([call]))  # first is busy now; second is idle
        assert (await _recv(first))[0]["a"] == {"a": 1}
        await _register(second, _definition("bind_f", ("b", "str")))
        await caller.send(json.dumps([{**call, "id": "bind-0000002", "kwargs": {"a": 2}}]))
        assert (await _recv(first))[0]["a"] == {"a": 2}  # only first's definition takes `a`
        await caller.send(json.dumps([{**call, "id": "bind-0000003", "kwargs": {"b": "x"}}]))
        assert (await _recv(second))[0]["a"] == {"b": "x"}
        await caller.send(json.dumps([{**call, "id": "bind-0000004", "kwargs": {"c": 1}}]))
        refused = (await _recv(caller))[0]
        assert (refused["id"], refused["kind"]) == ("bind-0000004", "invalid")
        targeted = {**call, "id": "bind-0000005", "kwargs": {"b": "y"}, "agent": "bind-one"}
        await caller.send(json.dumps([targeted]))  # by app identifier: only first's definition
        refused = (await _recv(caller))[0]
        assert (refused["id"], refused["kind"]) == ("bind-0000005", "invalid")
        assert "unexpected argument 'b'" in refused["m"]


@pytest.mark.anyio
async def test_wait_and_timeout_must_be_finite_positive_and_bounded(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    bad = ['"wait": 1e400', '"wait": -1', '"wait": 100000', '"timeout": -1', '"timeout": 0']
    bad += ['"timeout": 1e400', '"timeout": 86401']
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for field in bad:
            response = await client.post(
                "/rekuest/assignments/",
                content='{"function": "bounded", ' + field + "}",
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 422, field
            assert response.json()["detail"]["message"].startswith("invalid call: "), field
    async with _socket(server, token, "caller") as caller:
        for n, field in enumerate(bad):
            frame = '[{"t": "call", "id": "bounded-' + f"{n:04d}" + '", "f": "f", ' + field + "}]"
            await caller.send(frame)
            answer = (await _recv(caller))[0]
            assert (answer["id"], answer["kind"]) == (f"bounded-{n:04d}", "refused"), field
            assert answer["m"].startswith("invalid call: "), answer


@pytest.mark.anyio
async def test_malformed_frames_are_refused_and_the_socket_survives(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    async with _socket(server, token, "caller") as caller:
        for frame in ("5", '"x"', "[5]", "not json", '{"t": "dance"}'):
            await caller.send(frame)
            answer = (await _recv(caller))[0]
            assert (answer["t"], answer["kind"]) == ("error", "refused"), frame
        assert "not JSON" in (await _send(caller, "{"))["m"]
        await caller.send(json.dumps([{"t": "call", "id": "frames-0001", "f": "frames_none"}]))
        assert (await _recv(caller))[0]["kind"] == "no_agent"  # still served
    for frame in ("[]", "5", "[5]"):
        async with _socket(server, token, "agent") as agent:
            await agent.send(frame)
            message, code = await _refused(agent)
            assert code == 4400
            assert message


async def _send(socket: ClientConnection, frame: str) -> dict[str, Any]:
    await socket.send(frame)
    return (await _recv(socket))[0]


@pytest.mark.anyio
async def test_unknown_functions_are_404_and_offline_ones_503(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    async with _socket(server, token, "agent") as agent:
        await _register(agent, _definition("offline_fn"))
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        unknown = await client.post("/rekuest/assignments/", json={"function": "never_there"})
        assert unknown.status_code == 404
        assert unknown.json()["detail"]["kind"] == "no_agent"
        assert "is registered" in unknown.json()["detail"]["message"]
        offline = await client.post("/rekuest/assignments/", json={"function": "offline_fn"})
        assert offline.status_code == 503
        assert "is online" in offline.json()["detail"]["message"]


@pytest.mark.anyio
async def test_a_row_the_database_refuses_never_stalls_the_writer(tmp_path: Path) -> None:
    from arkitekt_server._db import Database
    from arkitekt_server.rekuest._store import Store

    database = Database.in_dir(tmp_path / "db")
    await database.create_tables()
    store = Store(database)
    duplicates: list[str] = []
    store.on_duplicate = duplicates.append
    acked: list[str] = []
    try:
        row = {"function": "f", "caller_pk": 1, "args": {}, "status": "queued"}
        store.insert({**row, "id": "stored-before"})
        await store.flush()
        store.insert({**row, "id": "stored-before", "status": "assigned"})  # an id reused
        store.insert({**row, "id": "no-caller", "caller_pk": None})  # NOT NULL: refused
        store.insert({**row, "id": "fine-0001"})
        store.update("fine-0001", {"status": "done"}, on_commit=lambda: acked.append("fine"))
        store.log("fine-0001", "info", "hello")
        await store.flush()  # does not raise, and nothing is left to retry
        await store.flush()
        assert duplicates == ["stored-before"]
        assert acked == ["fine"]
        before, _ = await store.get("stored-before")
        assert before is not None
        assert before.status == "queued"  # the earlier row, untouched
        assert (await store.get("no-caller"))[0] is None
        fine, logs = await store.get("fine-0001")
        assert fine is not None
        assert fine.status == "done"
        assert [line.message for line in logs] == ["hello"]
    finally:
        await database.dispose()


@pytest.mark.anyio
async def test_http_calls_with_non_finite_or_too_deep_arguments_are_refused(
    server: EmbeddedServer, connect: Callable[..., App]
) -> None:
    async with connect() as app:
        token = await abearer_token(app)
    bodies = {
        '{"function": "f", "positional": [NaN], "wait": 1}': "not finite (nan)",
        '{"function": "f", "arguments": {"a": [Infinity]}, "wait": 1}': "not finite (inf)",
        '{"function": "f", "arguments": {"a": ' + "[" * 100 + "]" * 100 + "}, "
        '"wait": 1}': "nested deeper than 64",
    }
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for body, why in bodies.items():
            response = await client.post(
                "/rekuest/assignments/",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 422, body
            assert why in response.json()["detail"]["message"]
