"""The outbox shared by the agent, the caller and the server's peers: batches, refusals, ends."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from arkitekt.protocol.outbox import Outbox
from arkitekt.protocol.rekuest import MessageError, encode


@pytest.mark.anyio
async def test_what_queued_while_the_writer_waited_leaves_as_one_frame() -> None:
    written: list[str] = []
    outbox = Outbox()
    outbox.put({"t": "progress", "id": "a", "p": 1})
    outbox.put(encode({"t": "done", "id": "a", "v": 2}))
    assert len(outbox) == 2
    assert outbox.chars == len(encode({"t": "done", "id": "a", "v": 2}))  # encoded ones only
    outbox.finish()
    with anyio.fail_after(10):
        await outbox.pump(_recorder(written))
    assert [json.loads(frame) for frame in written] == [
        [{"t": "progress", "id": "a", "p": 1}, {"t": "done", "id": "a", "v": 2}]
    ]
    assert len(outbox) == 0
    assert outbox.chars == 0


@pytest.mark.anyio
async def test_a_message_that_cannot_be_encoded_is_replaced_and_the_rest_goes_on() -> None:
    refused: list[str] = []

    def refuse(message: Mapping[str, Any], error: MessageError) -> dict[str, Any] | None:
        refused.append(str(message["id"]))
        return (
            {"t": "error", "id": message["id"], "m": str(error)} if message["t"] == "done" else None
        )

    written: list[str] = []
    outbox = Outbox(refuse)
    outbox.put({"t": "done", "id": "nan", "v": math.nan})
    outbox.put({"t": "progress", "id": "inf", "p": math.inf})  # dropped
    outbox.put({"t": "done", "id": "ok", "v": 1})
    outbox.finish()
    with anyio.fail_after(10):
        await outbox.pump(_recorder(written))
    messages = [m for frame in written for m in json.loads(frame)]
    assert refused == ["nan", "inf"]
    assert [(m["t"], m["id"]) for m in messages] == [("error", "nan"), ("done", "ok")]


@pytest.mark.anyio
async def test_a_stopped_outbox_writes_nothing_more_and_takes_nothing_more() -> None:
    written: list[str] = []
    outbox = Outbox()
    outbox.put({"t": "cancel", "id": "a"})
    outbox.stop()
    outbox.put({"t": "cancel", "id": "b"})
    with anyio.fail_after(10):
        await outbox.pump(_recorder(written))
    assert written == []
    assert len(outbox) == 1  # "b" was dropped; "a" was never written


def _recorder(written: list[str]) -> Any:
    async def write(frame: str) -> None:
        written.append(frame)

    return write
