"""Warnings that peers can provoke, rate-limited: whoever sends garbage cannot fill the log."""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["WARNINGS_PER_WINDOW", "WINDOW_SECONDS", "Throttled"]

WARNINGS_PER_WINDOW = 20
"""At most this many warnings of one :class:`Throttled` are logged per :data:`WINDOW_SECONDS`;
the rest are counted, and the count is logged when the next window starts."""
WINDOW_SECONDS = 10.0


class Throttled:
    """A rate-limited ``log.warning``: a burst is logged, the rest is counted.

    Args:
        log: the logger to warn on.
        what: what the warnings are about, for the line that counts the ones left out
            (e.g. ``"rekuest: refusal"``).

    """

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._start = -WINDOW_SECONDS
        self._count = 0
        self._suppressed = 0

    def __call__(self, text: str, *args: Any) -> None:
        """Log ``text`` with ``args`` (as for ``logging``) unless this window's burst is spent."""
        now = time.monotonic()
        if now - self._start >= WINDOW_SECONDS:
            if self._suppressed:
                self._log.warning(
                    "%s: %d more warning(s) were not logged (at most %d per %g s)",
                    self._what,
                    self._suppressed,
                    WARNINGS_PER_WINDOW,
                    WINDOW_SECONDS,
                )
            self._start, self._count, self._suppressed = now, 0, 0
        if self._count < WARNINGS_PER_WINDOW:
            self._count += 1
            self._log.warning(text, *args)
        else:
            self._suppressed += 1
