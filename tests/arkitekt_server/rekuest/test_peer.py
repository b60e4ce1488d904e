"""A peer's writer never stops for one message it cannot encode, and its queue is bounded.

Validation keeps such messages from reaching it, so the fault is provoked directly here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from arkitekt.protocol.rekuest import CLOSE_OUTBOX_FULL, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES
from arkitekt_server.rekuest._peer import MAX_OUTBOX_BYTES, MAX_OUTBOX_MESSAGES, Peer


class _Socket:
    """Records the frames a peer writes."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, frame: str) -> None:
        self.frames.append(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


@pytest.mark.anyio
async def test_the_writer_replaces_an_unencodable_answer_and_goes_on() -> None:
    socket = _Socket()
    peer = Peer(socket, 1)  # type: ignore[arg-type]
    peer.send({"t": "done", "id": "call-1", "v": math.nan})
    peer.send({"t": "yield", "id": "call-2", "v": "x" * MAX_MESSAGE_BYTES})
    peer.send({"t": "progress", "id": "call-3", "p": math.inf})  # dropped
    peer.send({"t": "done", "id": "call-4", "v": 1})
    for n in range(3):  # big, but each within the limit: several frames
        peer.send({"t": "done", "id": f"big-{n}", "v": "y" * (MAX_MESSAGE_BYTES - 100)})
    peer.close(1000, "done")
    with anyio.fail_after(10):
        await peer.pump()
    assert all(len(frame) <= MAX_FRAME_BYTES for frame in socket.frames)
    messages: list[dict[str, Any]] = [m for frame in socket.frames for m in json.loads(frame)]
    first, second, third, *big = messages
    assert (first["id"], first["t"], first["kind"]) == ("call-1", "error", "refused")
    assert "not finite" in first["m"]
    assert (second["id"], second["kind"]) == ("call-2", "refused")
    assert "per message" in second["m"]
    assert third == {"t": "done", "id": "call-4", "v": 1}
    assert [m["id"] for m in big] == ["big-0", "big-1", "big-2"]
    assert len(socket.frames) >= 2  # split: one frame could not hold them all
    assert socket.closed == (1000, "done")


class _Stuck(_Socket):
    """A socket whose peer never reads: every write blocks."""

    async def send_text(self, frame: str) -> None:
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_a_peer_that_does_not_read_is_cut_off_when_its_outbox_overflows() -> None:
    socket = _Stuck()
    peer = Peer(socket, 1)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            peer.scope = tasks.cancel_scope
            tasks.start_soon(peer.pump)
            peer.send({"t": "progress", "id": "first", "p": 1})  # the write that blocks
            while peer._outbox:
                await anyio.lowlevel.checkpoint()
            sent = 0
            while not peer.closed and sent <= 2 * MAX_OUTBOX_MESSAGES:
                peer.send({"t": "log", "id": f"call-{sent}", "m": "x" * 100})
                sent += 1
    assert sent == MAX_OUTBOX_MESSAGES + 1  # bounded, and the writer was cancelled
    assert peer.closing == (CLOSE_OUTBOX_FULL, "too many messages queued: the peer does not read")
    peer.send({"t": "log", "id": "later", "m": ""})  # dropped: nothing queues any more
    assert len(peer._outbox) == 0
    big = Peer(_Stuck(), 1)  # type: ignore[arg-type]
    for n in range(MAX_OUTBOX_BYTES // MAX_MESSAGE_BYTES + 1):
        big.send({"t": "done", "id": f"big-{n}", "v": "y" * (MAX_MESSAGE_BYTES - 100)})
    assert big.closed
    assert big.closing is not None
    assert big.closing[0] == CLOSE_OUTBOX_FULL
