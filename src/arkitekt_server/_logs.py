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

OUTAGE_REMINDER_SECONDS = 60.0
"""While an :class:`Outage` lasts, its warning is repeated at most this often."""

__all__ = [
    "OUTAGE_REMINDER_SECONDS",
    "OWN_LOGGERS",
    "POLL_PATHS",
    "QUIET_LOGGERS",
    "WARNINGS_PER_WINDOW",
    "WINDOW_SECONDS",
    "Outage",
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
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(known, _PollFilter) for known in access.filters):
        access.addFilter(_PollFilter())


POLL_PATHS = ("/f/challenge/",)
"""Paths that apps poll (about once a second while waiting for an approval): their answered
requests are logged at DEBUG, not INFO, so that the access log shows what happened instead."""


class _PollFilter(logging.Filter):
    """Move uvicorn's access lines of successful polls down to DEBUG.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with (client, method, path, version, status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5 and isinstance(args[4], int)):
            return True
        path, status = str(args[2]).split("?", 1)[0], args[4]
        if status < 400 and path.endswith(POLL_PATHS) and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


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


class Outage:
    """One warning line when a job starts failing, a reminder at most every
    :data:`OUTAGE_REMINDER_SECONDS`, and one line when it works again.

    For faults that last (the database is away): a job retried every few seconds must not log
    a traceback each time. Each failure's traceback is logged at DEBUG only.

    Example:
        >>> import logging
        >>> outage = Outage(logging.getLogger("doc"), "pruning expired tokens")
        >>> outage.failed(ConnectionRefusedError("refused"))  # WARNING: ... fails: refused
        >>> outage.failed(ConnectionRefusedError("refused"))  # DEBUG only
        >>> outage.over()  # WARNING: pruning expired tokens works again (after 2 failures)

    Args:
        log: the logger to warn on.
        what: the job, for the lines ("pruning expired tokens").
    """

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._failures = 0
        self._warned = 0.0

    @property
    def failing(self) -> bool:
        """Whether the last round failed."""
        return self._failures > 0

    def failed(self, error: BaseException) -> None:
        """A round failed with ``error`` (whose message names no secret)."""
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._warned >= OUTAGE_REMINDER_SECONDS:
            self._warned = now
            still = "" if self._failures == 1 else f" (still, {self._failures} failures)"
            self._log.warning("%s fails%s: %s", self._what, still, _one_line(error))
        self._log.debug("%s failed", self._what, exc_info=error)

    def over(self) -> None:
        """A round succeeded: say so once if it failed before."""
        if self._failures:
            self._log.warning("%s works again (after %d failure(s))", self._what, self._failures)
            self._failures = 0


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
