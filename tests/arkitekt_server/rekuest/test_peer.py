"""A peer's writer never stops for one message it cannot encode.

Validation keeps such messages from reaching it, so the fault is provoked directly here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import pytest

from arkitekt.protocol.rekuest import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES
from arkitekt_server.rekuest.peer import Peer


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
