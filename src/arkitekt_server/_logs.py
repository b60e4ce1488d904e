"""The server's log: which loggers follow ``log_level``, and warnings that are rate-limited.

:func:`set_log_levels` gives ``log_level`` to the server's own loggers (``arkitekt_server``,
``uvicorn``) only: third-party libraries stay at WARNING, because their debug output dumps
what they send and receive (botocore the AssumeRole answer with a grant's secret key and
session token, the database drivers every statement). :class:`Throttled` is a rate-limited
warning, for faults peers can provoke; :class:`Outage` says once that a job meets an outage
(e.g. of the database) and once that it is over.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = [
    "OWN_LOGGERS",
    "QUIET_LOGGERS",
    "WARNINGS_PER_WINDOW",
    "WINDOW_SECONDS",
    "Throttled",
    "set_log_levels",
]

OWN_LOGGERS = ("arkitekt_server", "uvicorn")
"""The loggers ``log_level`` applies to (with their children: ``uvicorn.error``, ...)."""
QUIET_LOGGERS = (
    "botocore", "boto3", "s3transfer", "urllib3", "aiosqlite", "asyncpg", "sqlalchemy",
    "alembic", "websockets", "httpx", "httpcore", "multipart", "python_multipart",
)  # fmt: skip
"""Third-party loggers held at WARNING whatever ``log_level`` says (unless given a level)."""


def set_log_levels(level: str) -> None:
    """Give ``level`` to the server's own loggers; hold third-party ones at WARNING.

    A third-party logger that already has a level of its own (set by the process that embeds
    the server) keeps it; one that would inherit the root's level gets WARNING, so a root at
    DEBUG no longer makes botocore log a grant's credentials.

    Args:
        level: a ``logging`` level name (``"debug"``, ``"info"``, ...; any case).
    """
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


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
