"""Why the database cannot be used, in one line that names the endpoint and what to check.

:func:`describe` reads a failure of the driver (asyncpg, or the socket under it) and says what
it means for an operator; :class:`DatabaseUnavailableError` carries that line. The line names the
endpoint (``host:port/database``) and the user, never the password. :class:`DatabaseFaults`
answers requests that meet such a failure with 503 (and values the database refuses with 422).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import socket
import time
from collections.abc import Iterator

from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arkitekt_server._dburl import endpoint
from arkitekt_server._errors import ArkitektServerError

__all__ = [
    "TRY_AGAIN_LATER",
    "UNAVAILABLE_ERRORS",
    "DatabaseFaults",
    "DatabaseUnavailableError",
    "ValueRefusedError",
    "describe",
    "is_unavailable",
    "refused_value",
]

log = logging.getLogger("arkitekt_server")

RETRY_SECONDS = 5
"""The ``Retry-After`` of a 503 for an unavailable database."""
UNAVAILABLE = "the server's database is unavailable; try again in a few seconds"
"""What a client is told (the endpoint and the reason go to the server's log only)."""


class DatabaseUnavailableError(ArkitektServerError):
    """The database cannot be used: unreachable, refusing the login, missing, lacking a
    permission, or not answering in time. At start the server refuses to start with it; while
    running, requests are answered 503 until the database is back."""


class ValueRefusedError(ArkitektServerError):
    """The database refused a value of the request (a NUL character in text, text longer than
    its column, a number out of range); answered 422."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, the driver's error it wraps, and their causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, current.__cause__]
        todo.append(current.__context__)


def _sqlstate(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def describe(error: BaseException, url: str) -> str | None:
    """One line saying why the database at ``url`` cannot be used, or ``None`` for another error.

    Example:
        >>> line = describe(ConnectionRefusedError(111, "refused"), "postgresql://me:pw@db/ark")
        >>> line.split(";")[0]
        'database db:5432/ark: nothing answers there'

    """
    where = f"database {endpoint(url)}"
    try:
        user = make_url(url).username or "(default)"
    except Exception:
        user = "(unknown)"
    for cause in _chain(error):
        state = _sqlstate(cause)
        if state in ("28P01", "28000"):
            return (
                f"{where}: PostgreSQL refused user {user!r} (no such user, a wrong password, or "
                "no pg_hba.conf entry for this user and host); check the user and password in "
                "database_url"
            )
        if state == "3D000":
            return (
                f"{where}: no such database on that server; create it (createdb -O {user} "
                "NAME) or correct the name in database_url"
            )
        if state == "42501":
            return (
                f"{where}: user {user!r} lacks a permission ({_first_line(cause)}); grant it "
                "CONNECT on the database and CREATE on its schema (the server makes its tables)"
            )
        if state == "53300":
            return (
                f"{where}: PostgreSQL has no free connection; raise its max_connections or "
                "run fewer replicas"
            )
        if state == "55000":
            return (
                f"{where}: the database does not accept connections now ({_first_line(cause)}); "
                "check ALLOW_CONNECTIONS and that it is not being dropped or restored"
            )
        if state.startswith(("08", "57P")):
            return (
                f"{where}: PostgreSQL closed the connection or is not accepting connections "
                f"({_first_line(cause)}); check that it runs"
            )
        if type(cause).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "closed" in str(cause) or "does not exist" in str(cause)
        ):
            return f"{where}: the connection to PostgreSQL was lost; check that it runs"
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"{where}: nothing answers there; check that PostgreSQL runs on that host and "
                "port (database_url)"
            )
        if isinstance(cause, socket.gaierror):
            return f"{where}: the host name is unknown; check the host in database_url"
        if isinstance(cause, TimeoutError):
            return (
                f"{where}: PostgreSQL did not answer in time; check that it runs, is not "
                "overloaded, and that the network (host, port, firewall) lets this machine "
                "reach it"
            )
        if isinstance(cause, OSError):
            return (
                f"{where}: cannot connect ({cause.strerror or _first_line(cause)}); check "
                "that PostgreSQL runs there and the network lets this machine reach it"
            )
    return None


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be used now (it may come back).

    :data:`UNAVAILABLE_ERRORS`, and a driver's connection error that was not wrapped yet (an
    :class:`OSError` of anything else, a file's say, is not the database's).

    Example:
        >>> is_unavailable(PermissionError(13, "a file of the data dir"))
        False

    """
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    drivers = ("asyncpg", "aiosqlite", "sqlalchemy")
    from_driver = any(type(cause).__module__.split(".")[0] in drivers for cause in _chain(error))
    return from_driver and describe(error, "") is not None


def refused_value(error: BaseException) -> str | None:
    """What was wrong with a value the database refused, or ``None`` for another error."""
    for cause in _chain(error):
        state = _sqlstate(cause)
        if state in ("22021", "22P05") or (state.startswith("22") and "0x00" in str(cause)):
            return "text must not contain NUL characters (\\x00)"
        if state == "22001":
            return "a text value is longer than the server stores"
        if state == "22003":
            return "a number is out of the range the server stores"
    return None


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailableError, PoolTimeoutError)
"""What a request meets while the database cannot be used: answered 503, never 500."""
_denied: contextvars.ContextVar[bool] = contextvars.ContextVar("denied", default=False)
"""Set in the task of a websocket connection this middleware denied with 503."""


class _DenialIsAHandshake(logging.Filter):
    """Drops uvicorn's "returned without completing handshake" after a denial response.

    uvicorn 0.54's websockets-sansio protocol sends a ``websocket.http.response`` denial
    but does not count it as a completed handshake, and logs that error (nothing else
    happens: its 500 is skipped as a response was sent). It is not an error: the ASGI spec
    makes the denial the handshake's answer (uvicorn pull request #3138 fixes it there).
    Only the records logged in a connection this middleware denied are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and "without completing handshake" in str(record.msg))


_UVICORN_FILTER = _DenialIsAHandshake()

TRY_AGAIN_LATER = 1013
"""The websocket close code for "try again later" (RFC 6455 registry): an open socket whose
database went away, or a handshake where the server cannot answer HTTP 503."""


class DatabaseFaults:
    """ASGI middleware: a request that meets an unavailable database is answered 503, never 500.

    The reason (endpoint and what to check) is logged, at most once every
    :data:`RETRY_SECONDS` seconds while the outage lasts; the client learns only that the
    database is unavailable and when to try again. A value the database refused
    (:class:`ValueRefusedError`) is answered 422 with what was wrong.

    A websocket handshake that meets it is denied with HTTP 503 (the ASGI
    ``websocket.http.response`` extension; a close with code :data:`TRY_AGAIN_LATER` where the
    server lacks it); an open websocket is closed with :data:`TRY_AGAIN_LATER`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._logged = 0.0
        logging.getLogger("uvicorn.error").addFilter(_UVICORN_FILTER)  # once: filters are a set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except UNAVAILABLE_ERRORS as error:
            if started:
                raise
            self._log(error, "answering 503")
            await _answer(send, 503, UNAVAILABLE, retry=True)
        except ValueRefusedError as error:
            if started:
                raise
            await _answer(send, 422, str(error))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = "handshake"  # then "open" (accepted) or "closed" (closed or denied)

        async def watch(message: Message) -> None:
            nonlocal state
            kind = message["type"]
            if kind == "websocket.accept":
                state = "open"
            elif kind in ("websocket.close", "websocket.http.response.start"):
                state = "closed"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except UNAVAILABLE_ERRORS as error:
            if state == "closed":
                raise
            denial = "websocket.http.response" in scope.get("extensions", {})
            if state == "handshake" and denial:
                self._log(error, "answering 503")
                _denied.set(True)  # seen by uvicorn's log call in this connection's task
                with contextlib.suppress(OSError):  # the client may be gone already
                    await _answer(send, 503, UNAVAILABLE, retry=True, prefix="websocket.")
                return
            self._log(error, f"closing a websocket ({TRY_AGAIN_LATER}, try again later)")
            with contextlib.suppress(OSError):
                await send(
                    {"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": UNAVAILABLE}
                )

    def _log(self, error: Exception, action: str) -> None:
        now = time.monotonic()
        if now - self._logged >= RETRY_SECONDS:
            self._logged = now
            reason = (
                str(error)
                if isinstance(error, DatabaseUnavailableError)
                else ("no pooled database connection became free in time (all busy)")
            )
            log.warning("%s: %s", action, reason)


async def _answer(
    send: Send, status: int, detail: str, *, retry: bool = False, prefix: str = ""
) -> None:
    """Answer ``status`` with a JSON ``detail``; ``prefix`` ``"websocket."`` denies a handshake."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry:
        headers.append((b"retry-after", str(RETRY_SECONDS).encode()))
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": body})
