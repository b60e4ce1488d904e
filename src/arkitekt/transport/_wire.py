"""The app's httpx transport: what every request of the app goes through.

- A total deadline: a request (connecting, sending, waiting and reading the whole answer) must
  finish within its timeout (the ``timeout`` setting; discovery: ``discovery_timeout``).
  httpx's own timeouts apply to each network operation, so a server that drips one byte at a
  time would never trip them.
- A size limit on every answer, counted after decoding: gzip and deflate are decoded here, in
  steps that never produce more than the limit, so a decompression bomb stops at the limit.
  The limit is per request (``extensions={MAX_BODY: n}``), :data:`DEFAULT_MAX_BODY` unless a
  service asks for another (mikro's JSON answers, zarr chunks).
- A dropped kept-alive connection is retried once when the request is safe to resend.
- Every failure is an arkitekt error naming the request.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import anyio
import httpx

from arkitekt._http import IDEMPOTENT
from arkitekt.errors import BadResponseError, ResponseTooLargeError, ServerUnreachableError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_BODY",
    "DROPPED",
    "MAX_BODY",
    "BoundedTransport",
    "Meter",
    "MeteredBody",
    "answer_meter",
    "broken",
    "deadline_seconds",
    "overdue",
    "rebodied",
    "replayable",
    "size",
    "unreachable",
]

log = logging.getLogger("arkitekt.transport")

_Raw = TypeVar("_Raw", httpx.SyncByteStream, httpx.AsyncByteStream)

MAX_BODY = "arkitekt.max_body"
"""Request extension: ``extensions={MAX_BODY: n}`` reads at most ``n`` bytes (decoded) of the
answer; a larger answer fails as :class:`~arkitekt.errors.ResponseTooLargeError`."""

DEFAULT_MAX_BODY = 1 << 20
"""The limit of answers no service asked another for: discovery, fakts, the token endpoint,
userinfo (1 MiB)."""

ACCEPT_ENCODING = "gzip, deflate"
"""The content codings the app asks for: the ones decoded here, within the limit."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

# The connection failed before an answer began: a kept-alive connection the server had closed
# (RemoteProtocolError "Server disconnected", ReadError/WriteError "connection reset"), or no
# connection at all (ConnectError). Timeouts are not among them: the server may be working.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


def size(nbytes: int) -> str:
    """``nbytes`` for people: ``1 MiB``, ``64 KiB``, ``100 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << (shift - 4)) == 0:
            return f"{nbytes / (1 << shift):g} {unit}"
    return f"{nbytes} bytes"


def replayable(request: httpx.Request) -> bool:
    """Whether sending ``request`` again is safe: idempotent, with a body that can be re-read."""
    idempotent = request.method in _IDEMPOTENT_METHODS or request.extensions.get(IDEMPOTENT)
    return bool(idempotent) and isinstance(request.stream, httpx.ByteStream)


def deadline_seconds(request: httpx.Request) -> float | None:
    """The request's total deadline in seconds: its timeout (httpx's, which is per operation)."""
    timeout = request.extensions.get("timeout") or {}
    values = [value for value in timeout.values() if isinstance(value, int | float)]
    return float(max(values)) if values else None


def _limit(request: httpx.Request) -> int:
    limit = request.extensions.get(MAX_BODY, DEFAULT_MAX_BODY)
    return limit if isinstance(limit, int) and limit >= 0 else DEFAULT_MAX_BODY


class BoundedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport: a total deadline, bounded answers, a dropped connection retried once.

    A server may close a kept-alive connection at any time (uvicorn does after a 500), and the
    client only notices when it sends the next request on it. Idempotent requests are then sent
    once more; the pool has dropped the dead connection, so the retry opens a fresh one.
    Non-idempotent requests (POST) are not resent: the server may have acted on them.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body is read within its limit and deadline.

        Raises:
            ServerUnreachableError: no answer (naming the request and why), or not within
                the request's timeout.
            BadResponseError: the answer is in a content coding the app did not ask for.
            ResponseTooLargeError: its declared length is over the limit.

        """
        seconds = deadline_seconds(request)
        expires = math.inf if seconds is None else anyio.current_time() + seconds
        with anyio.CancelScope(deadline=expires) as scope:
            response = await self._send(request)
            try:
                return _bounded(response, request, expires, seconds)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
                raise
        assert scope.cancelled_caught
        raise overdue(request, seconds)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except DROPPED as error:
            if not replayable(request):
                raise unreachable(request, error) from error
            log.debug(
                "%s %s: connection dropped (%r); retrying once",
                request.method,
                request.url.path,
                error,
            )
        except httpx.TransportError as error:
            raise unreachable(request, error) from error
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as error:
            raise unreachable(request, error) from error


def _bounded(
    response: httpx.Response, request: httpx.Request, expires: float, seconds: float | None
) -> httpx.Response:
    """``response`` with a body that is decoded here, within the limit and the deadline."""
    headers, meter = answer_meter(response, request)
    assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's
    body = _BoundedStream(response.stream, request, meter, expires=expires, seconds=seconds)
    return rebodied(response, request, headers, body)


def rebodied(
    response: httpx.Response,
    request: httpx.Request,
    headers: httpx.Headers,
    body: httpx.SyncByteStream | httpx.AsyncByteStream,
) -> httpx.Response:
    """``response`` passed on with ``headers`` (see :func:`answer_meter`) and ``body``."""
    return httpx.Response(
        response.status_code,
        headers=headers,
        stream=body,
        extensions=response.extensions,
        request=request,
    )


def answer_meter(response: httpx.Response, request: httpx.Request) -> tuple[httpx.Headers, Meter]:
    """The headers ``response`` is passed on with, and the meter its body is read through.

    Raises:
        BadResponseError: the answer is in a content coding the app did not ask for.
        ResponseTooLargeError: its declared length is over the request's limit.

    """
    limit = _limit(request)
    headers = response.headers.copy()
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    codings = [coding for coding in codings if coding not in ("", "identity")]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "deflate")):
        raise BadResponseError(
            f"{request.method} {request.url} answered in content-encoding "
            f"{headers['content-encoding'][:100]!r}; this client asks for and reads only "
            f"{ACCEPT_ENCODING} (a broken proxy or a hostile server)"
        )
    if codings:
        del headers["content-encoding"]  # decoded here, so httpx must not decode it again
        headers.pop("content-length", None)
    elif (
        request.method != "HEAD"  # a HEAD's length is that of the GET it stands for
        and (length := headers.get("content-length", "")).isdigit()
        and int(length) > limit
    ):
        raise _too_large(request, limit)
    return headers, Meter(request, limit, _Inflate(codings[0]) if codings else None)


class _Inflate:
    """gzip or deflate, decoded in steps of at most ``room + 1`` bytes of output."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._started = False
        wbits = zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS
        self._z = zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode ``data``: all of it, or ``room + 1`` bytes (then the answer is too large)."""
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error:
            if self._coding != "deflate" or self._started:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent without zlib header
            out = self._z.decompress(data, room + 1)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._z.flush()


class Meter:
    """Decodes an answer's body and counts it: past ``limit`` bytes it is too large."""

    def __init__(self, request: httpx.Request, limit: int, inflate: _Inflate | None) -> None:
        self._request = request
        self._limit = limit
        self._inflate = inflate
        self._count = 0

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes of ``chunk``.

        Raises:
            ResponseTooLargeError: the body grew over the limit.
            BadResponseError: the compressed body is corrupt.

        """
        return self._decode(chunk)

    def rest(self) -> bytes:
        """What the decoder still holds once the body has ended."""
        return self._decode(b"", final=True) if self._inflate is not None else b""

    def _decode(self, chunk: bytes, *, final: bool = False) -> bytes:
        room = self._limit - self._count
        try:
            if self._inflate is None:
                data = chunk
            else:
                data = self._inflate.flush() if final else self._inflate.feed(chunk, room)
        except zlib.error as error:
            raise BadResponseError(
                f"{self._request.method} {self._request.url} answered a corrupt compressed "
                f"body ({error})"
            ) from None
        self._count += len(data)
        if self._count > self._limit:
            raise _too_large(self._request, self._limit)
        return data


class MeteredBody(Generic[_Raw]):
    """What an answer's body stream holds, async (here) or blocking (``_sync``).

    The raw body, its request, the meter it is read through, and the deadline.
    """

    def __init__(
        self,
        raw: _Raw,
        request: httpx.Request,
        meter: Meter,
        *,
        expires: float,
        seconds: float | None,
    ) -> None:
        self._raw: _Raw = raw
        self._request = request
        self._meter = meter
        self._expires = expires
        self._seconds = seconds


class _BoundedStream(MeteredBody[httpx.AsyncByteStream], httpx.AsyncByteStream):
    """The answer's body, decoded, cut off at its limit and at the deadline."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._raw.__aiter__()
        while True:
            with anyio.CancelScope(deadline=self._expires) as scope:
                try:
                    chunk: bytes | None = await chunks.__anext__()
                except StopAsyncIteration:
                    chunk = None
                except httpx.TransportError as error:
                    raise broken(self._request, error) from error
            if scope.cancelled_caught:
                raise overdue(self._request, self._seconds)
            if chunk is None:
                break
            if data := self._meter.feed(chunk):
                yield data
        if rest := self._meter.rest():
            yield rest

    async def aclose(self) -> None:
        await self._raw.aclose()


def _too_large(request: httpx.Request, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{request.method} {request.url} answered more than {size(limit)} (decoded), the most "
        "this client reads for such a request; the server is broken or hostile (a page of "
        "images: ask for fewer with `limit=`)"
    )


def overdue(request: httpx.Request, seconds: float | None) -> ServerUnreachableError:
    return ServerUnreachableError(
        f"{request.method} {request.url} did not complete within {seconds:g} s (the whole "
        "request, answer included); is the server overloaded? (slow networks: raise the "
        "`timeout` setting; discovery: `discovery_timeout`)"
    )


def broken(request: httpx.Request, error: httpx.TransportError) -> ServerUnreachableError:
    """A failure while reading the answer (after it began)."""
    return ServerUnreachableError(
        f"{request.method} {request.url}: the answer broke off "
        f"({error or type(error).__name__}); retry"
    )


def unreachable(request: httpx.Request, error: httpx.TransportError) -> ServerUnreachableError:
    """The arkitekt error for a request that got no answer, naming the request and why."""
    what = f"{request.method} {request.url}"
    if isinstance(error, httpx.TimeoutException):
        seconds = request.extensions.get("timeout", {}).get("read")
        within = f" within {seconds:g} s" if isinstance(seconds, int | float) else ""
        return ServerUnreachableError(
            f"{what} got no answer{within}; is the server overloaded? "
            "(slow networks: raise the `timeout` setting)"
        )
    reason = f"{error or type(error).__name__}"
    if isinstance(error, httpx.ConnectError) or replayable(request):
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        return ServerUnreachableError(
            f"could not reach {origin} for {request.method} {request.url.path} ({reason}); "
            "is the server running?"
        )
    return ServerUnreachableError(
        f"the server closed the connection before answering {what} ({reason}); it was not "
        f"resent because {request.method} is not idempotent and the server may have acted on "
        "it: check whether it took effect, then retry"
    )
