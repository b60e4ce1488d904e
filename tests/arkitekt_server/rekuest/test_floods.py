"""Floods and hoarding: one peer's frames, unread answers or waiting calls never take the server
(memory, other apps' calls) down with them. Run against ``arkitekt server`` in its own process,
whose memory is measured."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from arkitekt import App, easy
from arkitekt.protocol.rekuest import CLOSE_OUTBOX_FULL, MAX_FRAME_MESSAGES
from arkitekt_server.rekuest.peer import MAX_OUTBOX_MESSAGES

from ...conftest import ServerProcess
from .conftest import Wire

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
            silent.socket.settimeout(5)  # the server stops reading once it closed it
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
                    received += len(json.loads(silent.recv(timeout=10)))
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
