"""Floods and hoarding: one peer's frames, unread answers or waiting calls never take the server
(memory, other apps' calls) down with them. Run against ``arkitekt server`` in its own process,
whose memory is measured."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from arkitekt import App, easy
from arkitekt.protocol.rekuest import CLOSE_OUTBOX_FULL, MAX_FRAME_MESSAGES, MAX_MESSAGE_BYTES
from arkitekt_server.rekuest._peer import MAX_OUTBOX_MESSAGES
from tests.helpers import ServerProcess, Wire, wait_until

BUDGET_MIB = 150
INT = {"key": "return", "kind": "int"}
ECHO = {"name": "fl_echo", "args": [{**INT, "key": "x"}], "returns": [INT]}


def _apps(url: str, cache: Path) -> Callable[[str], App]:
    return lambda name: easy(name, url=url, headless=True, cache_dir=cache)


def _echo_through(wire: Wire, caller: Any, agent: Any, x: int) -> None:
    """A bystander's call, answered by an honest agent: it must still work."""
    id = wire.call(caller, "fl_echo", kwargs={"x": x})
    assignment = wire.until(agent, lambda m: m["t"] == "assign" and m["id"] == id)
    agent.send(json.dumps([{"t": "done", "id": id, "v": assignment["a"]["x"]}]))
    assert wire.answer(caller, id)["v"] == x  # within Wire.recv's 10 s per frame


def test_message_floods_are_refused_per_frame_and_a_peer_that_does_not_read_is_closed(
    server_process: ServerProcess, tmp_path: Path, peak_rss_mib: Callable[[int], float]
) -> None:
    server_process.start()
    app = _apps(server_process.url, tmp_path / "cache")
    wire = Wire(server_process)  # type: ignore[arg-type]  # it only needs .url
    with wire.sockets:
        honest = wire.open(wire.token(app("fl-honest")), "agent")
        wire.register(honest, ECHO)
        bystander = wire.open(wire.token(app("fl-bystander")), "caller")
        _echo_through(wire, bystander, honest, 0)  # warm-up
        baseline = peak_rss_mib(server_process.pid)

        flooder = wire.open(wire.token(app("fl-agent")), "agent")
        wire.register(flooder, {"name": "fl_other"})
        for _ in range(3):  # 1.8 MB, 600,000 messages each
            flooder.send("[" + "{}," * 599_999 + "{}]")
            _echo_through(wire, bystander, honest, 1)
        refusals = [wire.until(flooder, lambda m: m["t"] == "refused") for _ in range(3)]
        assert all(f"more than {MAX_FRAME_MESSAGES:,} messages" in r["m"] for r in refusals)
        bad = (
            "[" + ",".join(['{"t": "done", "id": "fl-none", "v": NaN}'] * MAX_FRAME_MESSAGES) + "]"
        )
        for _ in range(2):  # within the cap: each message is refused (and logged, rate-limited)
            flooder.send(bad)
            _echo_through(wire, bystander, honest, 1)

        caller_token = wire.token(app("fl-caller"))
        flooding_caller = wire.open(caller_token, "caller")
        for _ in range(3):  # 5.4 MB, 1,800,000 messages each, never read meanwhile
            flooding_caller.send("[" + "{}," * 1_799_999 + "{}]")
            _echo_through(wire, bystander, honest, 2)
        answers = [wire.recv(flooding_caller) for _ in range(3)]
        assert all(len(frame) == 1 and frame[0]["kind"] == "refused" for frame in answers)

        with wire.socket(caller_token, "caller") as silent:  # reads nothing after `ready`
            assert wire.recv(silent) == [{"t": "ready"}]
            assigned = wire.call(silent, "fl_echo", kwargs={"x": 3})
            assert wire.until(honest, lambda m: m["t"] == "assign")["id"] == assigned
            junk = "[" + ",".join(['{"t":"x"}'] * MAX_FRAME_MESSAGES) + "]"  # each one refused
            sent = 0
            silent.socket.settimeout(2)  # the server stops reading once it closed it
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while sent < 400:
                    silent.send(junk)
                    sent += 1
            # its outbox overflowed: the server closed it, and cancelled its call as on any
            # disconnect (the honest agent is told)
            cancel = wire.until(honest, lambda m: m["t"] == "cancel")
            assert cancel == {"t": "cancel", "id": assigned}
            received, code = 0, None  # what it finds once it reads again (informative)
            try:
                while True:
                    received += len(json.loads(silent.recv(timeout=3)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            except (TimeoutError, OSError):
                pass
        assert received < sent * MAX_FRAME_MESSAGES
        _echo_through(wire, bystander, honest, 4)
        peak = peak_rss_mib(server_process.pid)
        print(
            f"\nserver peak RSS +{peak - baseline:.0f} MiB; the silent caller sent {sent} "
            f"frames, got {received:,} messages, then close code {code}"
        )
        assert peak - baseline < BUDGET_MIB
        assert code in (CLOSE_OUTBOX_FULL, None)  # None: the close frame could not get out
    assert received <= MAX_OUTBOX_MESSAGES * 4  # bounded, whatever sat in socket buffers
    log = server_process.stop()
    refusals = sum("rekuest: refused" in line for line in log.splitlines())
    print(f"refusal warnings logged: {refusals} ({len(log):,} bytes of log)")
    assert 0 < refusals < 500  # rate-limited (millions of messages were refused)


def test_unfinished_calls_are_limited_per_app_in_number_and_bytes(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = server_factory(
        auto_approve=True, rekuest_max_pending_calls=3, rekuest_max_pending_argument_bytes=3000
    )
    app = _apps(server.url, tmp_path / "cache")
    wire = Wire(server)
    hoarder, other = wire.token(app("fl-hoarder")), wire.token(app("fl-other"))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {hoarder}"}) as http:

        def post(**arguments: Any) -> httpx.Response:
            call = {"function": "fl_offline", "arguments": arguments, "wait": 600}
            return http.post("/rekuest/assignments/", json=call)

        held = [post(x=n) for n in range(3)]
        assert [response.status_code for response in held] == [201] * 3
        refused = post(x=3)
        assert refused.status_code == 429
        assert refused.json()["detail"]["kind"] == "refused"
        assert "rekuest_max_pending_calls" in refused.json()["detail"]["message"]
        with wire.sockets:  # the same limit on the websocket, for the same app
            caller = wire.open(hoarder, "caller")
            id = wire.call(caller, "fl_offline", wait=600)
            answer = wire.answer(caller, id)
            assert answer["kind"] == "refused"
            assert "rekuest_max_pending_calls" in answer["m"]
            bystander = wire.open(other, "caller")  # another app is not limited by it
            id = wire.call(bystander, "fl_offline", wait=600, kwargs={"x": 1})
            wire.call(bystander, "fl_nowhere")  # answered at once: the one above is held
            assert wire.recv(bystander)[0]["kind"] == "no_agent"
        first = held[0].json()["id"]
        assert http.post(f"/rekuest/assignments/{first}/cancel").status_code == 200
        big = post(x="y" * 3000)  # one slot is free again, but not 3000 bytes
        assert big.status_code == 429
        assert "rekuest_max_pending_argument_bytes" in big.json()["detail"]["message"]
        assert post(x="y" * 100).status_code == 201


def test_a_call_whose_assignment_cannot_be_sent_is_counted_until_it_fails(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """The quota counts a call from where the hub holds it: a failed delivery gives back only
    what the call took (it once gave back a slot it never took, so each such call freed one)."""
    server = server_factory(auto_approve=True, rekuest_max_pending_calls=2)
    wire = Wire(server)
    token = wire.token(_apps(server.url, tmp_path / "cache")("fl-unsendable"))
    half = MAX_MESSAGE_BYTES // 2 + 1024
    given = {"key": "given", "kind": "str"}
    padded = {"key": "pad", "kind": "str", "required": False, "default": "d" * half}
    definition = {"name": "fl_padded", "args": [given, padded], "returns": [INT]}
    with (
        wire.sockets,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http,
    ):

        def offline() -> int:
            call = {"function": "fl_offline", "arguments": {}, "wait": 600}
            return http.post("/rekuest/assignments/", json=call).status_code

        assert offline() == 201  # one of the app's 2 slots held
        wire.register(wire.open(token, "agent"), definition)
        caller = wire.open(token, "caller")
        for _ in range(3):  # the call fits; with its default filled in, the assignment does not
            id = wire.call(caller, "fl_padded", kwargs={"given": "g" * half})
            answer = wire.answer(caller, id)
            assert answer["kind"] == "invalid"
            assert "cannot be sent to the agent" in answer["m"]
        assert offline() == 201  # the second slot
        assert offline() == 429  # and no more: the failed calls freed none


def test_http_calls_are_checked_like_websocket_calls(
    server: Any, connect: Callable[..., App], wire: Wire
) -> None:
    token = wire.token(connect())
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:

        def post(arguments: dict[str, Any]) -> httpx.Response:
            call = {"function": "fl_anything", "arguments": arguments, "wait": 1}
            return http.post("/rekuest/assignments/", json=call)

        wide = post({"x": "é" * (MAX_MESSAGE_BYTES // 2)})  # 8 MiB of body, 24 MiB as sent
        assert wide.status_code == 413
        assert "per message" in wide.json()["detail"]["message"]
        assert post({"x": "y" * (MAX_MESSAGE_BYTES + 100_000)}).status_code == 413  # the gate
        huge = post({"x": {"a": [10**400]}})
        assert huge.status_code == 422
        assert "argument 'x'" in huge.json()["detail"]["message"]
        assert "too large" in huge.json()["detail"]["message"]
        agent = wire.open(token, "agent")
        floats = {"name": "fl_float", "args": [{"key": "x", "kind": "float"}]}
        wire.register(agent, {**ECHO, "name": "fl_typed"}, floats)
        for function, value in (("fl_typed", 2**64), ("fl_float", 2**1024 - 1)):  # no float
            response = http.post(
                "/rekuest/assignments/", json={"function": function, "arguments": {"x": value}}
            )
            assert response.status_code == 400, response.text  # the port refuses it
            assert "argument 'x'" in response.json()["detail"]["message"]


def test_an_agent_that_ignores_cancels_cannot_hold_its_callers_slots(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Cancelled calls free their app's slots within the grace, whatever the agent does."""
    server = server_factory(
        auto_approve=True, rekuest_max_pending_calls=2, rekuest_cancel_grace_seconds=0.5
    )
    app = _apps(server.url, tmp_path / "cache")
    wire = Wire(server)
    caller_token, agent_token = wire.token(app("fl-held")), wire.token(app("fl-stubborn"))
    stubborn = {"name": "fl_stubborn", "args": [{"key": "x", "kind": "int"}]}
    headers = {"Authorization": f"Bearer {caller_token}"}
    with wire.sockets, httpx.Client(base_url=server.url, headers=headers) as http:
        agent = wire.open(agent_token, "agent")
        wire.register(agent, stubborn)

        def post(x: int) -> httpx.Response:
            call = {"function": "fl_stubborn", "arguments": {"x": x}, "wait": 60}
            return http.post("/rekuest/assignments/", json=call)

        held = [post(n).json()["id"] for n in range(2)]
        for id in held:
            assert wire.assignment(agent)["id"] == id  # delivered; the agent never answers
        assert post(2).status_code == 429
        for id in held:
            assert http.post(f"/rekuest/assignments/{id}/cancel").status_code == 200
        assert wire.until(agent, lambda m: m["t"] == "cancel")["id"] in held
        # the cancel is completed without the agent
        wait_until(
            lambda: http.get(f"/rekuest/assignments/{held[-1]}").json()["status"] == "cancelled",
            interval=0.1,
        )
        row = http.get(f"/rekuest/assignments/{held[0]}").json()
        assert row["status"] == "cancelled"
        assert "did not confirm within 0.5 s" in row["error"]
        assert post(3).status_code == 201  # the app's slots are free again
