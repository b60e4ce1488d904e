"""A replica's inbox: the events other replicas sent it, each delivered once and in order.

An event comes two ways: carried by its notification (``e:<replica>:<json>``, see
:mod:`~arkitekt_server.rekuest._batch`), delivered at once with no read, its row deleted
later (an *ack*, off the call's path); or read (and deleted) from its row, after a bare
``e:<replica>`` (a payload too big), a re-scan, or a listener that (re)connected and may have
missed notifications. While a read is due, carried events wait for it, so that an event is
never delivered before an older one that must be read; the read's rows and the waiting events
are then delivered together by id. Events delivered but not yet acked are remembered, so that
a read that finds their rows does not deliver them twice.

A call for an agent on another replica is *handed* to that replica the same way: its row is
stored queued but leased to it (no other replica claims it while the lease holds), and its
notification (``a:<replica>:<json>``) carries the row, which that replica dispatches as if it
had claimed it (no claim on the call's path). A handoff it missed is claimed by its next
re-scan; if it died, the lease lapses and any replica claims the row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from arkitekt_server.rekuest._batch import PAYLOAD_BYTES

__all__ = ["HANDED", "Inbox", "handed", "handoff"]

log = logging.getLogger("arkitekt_server.rekuest")

Event = tuple[int, str, str]
"""An event: its row's id, its assignment's id, its message (JSON text)."""


class Inbox:
    """See the module.

    Args:
        deliver: called with each event's message (a dict), in order.

    """

    def __init__(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        self.deliver = deliver
        self.behind = True
        """Whether a read is due before carried events may be delivered at once."""
        self.generation = 0
        """Counts the bare notifications (a read that saw one come meanwhile reads again)."""
        self.unacked: set[int] = set()
        """Ids of events delivered whose rows are not deleted yet."""
        self._waiting: list[Event] = []

    def missed(self) -> None:
        """Notifications may have been missed (a bare one came, or the listener reconnected)."""
        self.generation += 1
        self.behind = True

    def carried(self, text: str) -> bool:
        """Events carried by a notification (the JSON after ``e:<replica>:``); returns whether
        some were delivered (their rows are to be acked)."""
        events = _parse(text)
        if self.behind:
            self._waiting += events
            return False
        fresh = [event for event in events if event[0] not in self.unacked]
        self.unacked.update(event[0] for event in fresh)
        self._hand(fresh)
        return bool(fresh)

    def read(self, rows: Sequence[Event], generation: int, *, complete: bool) -> bool:
        """Deliver the rows a read took (deleted by it), with the carried events that waited;
        ``generation`` is :attr:`generation` when the read began, ``complete`` whether it took
        every row. Returns whether some delivered events are to be acked."""
        taken = {event[0] for event in rows}
        waiting, self._waiting = self._waiting, []
        fresh = [event for event in rows if event[0] not in self.unacked]
        self.unacked -= taken  # their rows are gone
        known = taken | self.unacked
        extra = [event for event in waiting if event[0] not in known]
        self.unacked.update(event[0] for event in extra)  # their rows are left: acked later
        self._hand(sorted(fresh + extra))
        if complete and generation == self.generation:
            self.behind = False
        return bool(extra)

    def acked(self, ids: Sequence[int]) -> None:
        """The rows of ``ids`` are deleted."""
        self.unacked.difference_update(ids)

    def _hand(self, events: list[Event]) -> None:
        for _, _, text in events:
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if isinstance(message, dict):
                try:
                    self.deliver(message)
                except Exception:  # one message must not stop the others
                    log.exception("rekuest: could not deliver a message from another replica")


def _parse(text: str) -> list[Event]:
    try:
        items = json.loads(text)
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    return [
        (item[0], item[1], item[2])
        for item in items
        if isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], int)
        and isinstance(item[1], str)
        and isinstance(item[2], str)
    ]


HANDED = (
    "id",
    "function",
    "caller_pk",
    "agent_key",
    "agent_filter",
    "args",
    "stream",
    "events",
    "attempts",
    "caller_replica",
)
"""The columns of a row handed to another replica in its notification (what
:func:`~arkitekt_server.rekuest._restore.job_of` and the claim of a row read)."""
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "function": (str,),
    "caller_pk": (int,),
    "agent_key": (str, type(None)),
    "agent_filter": (str, type(None)),
    "stream": (bool,),
    "events": (bool,),
    "attempts": (int,),
    "caller_replica": (str, type(None)),
}


def handoff(replica: str, row: dict[str, Any]) -> str | None:
    """The notification (``a:<replica>:<json>``) that hands the stored ``row`` to
    ``replica`` (it dispatches it as if it had claimed it); ``None`` if it is too big."""
    text = f"a:{replica}:" + json.dumps({key: row[key] for key in HANDED})
    return text if len(text.encode()) <= PAYLOAD_BYTES else None


def handed(text: str) -> SimpleNamespace | None:
    """The row a handoff notification carries (the JSON after ``a:<replica>:``), or ``None``
    if it is not one."""
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    if not isinstance(fields, dict) or set(fields) != set(HANDED):
        return None
    for key, types in _TYPES.items():
        if not isinstance(fields[key], types):
            return None
    return SimpleNamespace(**fields)
