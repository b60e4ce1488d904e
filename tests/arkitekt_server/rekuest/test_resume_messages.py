"""The caller's ``resume`` message on the wire: checked and bounded like every message."""

from __future__ import annotations

import json
import uuid

from arkitekt import easy
from arkitekt.protocol.rekuest import MAX_RESUME_IDS
from arkitekt_server import EmbeddedServer
from tests.helpers import Wire


def test_resume_messages_are_checked_and_bounded(server: EmbeddedServer, wire: Wire) -> None:
    token = wire.token(easy("resume-bounds", url=server.url, headless=True))
    caller = wire.open(token, "caller")
    bad = [
        ({"t": "resume", "ids": []}, "ids"),
        ({"t": "resume", "ids": ["short"]}, "ids"),
        ({"t": "resume", "ids": ["x" * 65]}, "ids"),
        ({"t": "resume", "ids": [uuid.uuid4().hex] * (MAX_RESUME_IDS + 1)}, "ids"),
        ({"t": "resume", "ids": "not-a-list-of-ids"}, "ids"),
        ({"t": "resume", "ids": [uuid.uuid4().hex], "extra": 1}, "extra"),
    ]
    for message, named in bad:
        caller.send(json.dumps([message]))
        [answer] = wire.recv(caller)
        assert answer["kind"] == "refused"
        assert answer["m"].startswith("invalid resume:")
        assert named in answer["m"]
    unknown = uuid.uuid4().hex  # a well-formed resume of a call never made: it fails alone
    caller.send(json.dumps([{"t": "resume", "ids": [unknown]}]))
    answer = wire.answer(caller, unknown)
    assert (answer["kind"], answer["t"]) == ("unknown", "error")
    assert "does not know the call" in answer["m"]
