"""The app's blocking HTTP client, for bulk requests made in worker threads (zarr chunks).

A zarr store's chunk requests are many, large and independent. Made with the app's
``httpx.AsyncClient`` they all run on the app's event loop, where every 64 KiB of every body
passes through anyio's stream, httpcore and httpx in Python on one thread; made with a blocking
``httpx.Client`` from worker threads, the same requests read their sockets in parallel (a
``bench mikro`` read-back through the server: see docs/performance.md). :class:`SyncTransport`
keeps the async transport's guarantees:

- the answer's size limit (``extensions={MAX_BODY: n}``) after decoding, as in
  :class:`~arkitekt.transport._wire.BoundedTransport`;
- the total deadline: every network operation of a request (connecting, sending, each read
  of the head and the body) waits at most for what is left of it, so a server that drips one
  byte at a time fails at the deadline;
- a dropped kept-alive connection retried once when the request is safe to resend;
- every failure an arkitekt error naming the request.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from arkitekt.transport._wire import (
    DROPPED,
    MeteredBody,
    answer_meter,
    broken,
    deadline_seconds,
    overdue,
    rebodied,
    replayable,
    unreachable,
)

__all__ = ["SyncTransport"]


class _Deadline(threading.local):
    expires = math.inf


_deadline = _Deadline()
"""The deadline of the request the current thread is making (a thread makes one at a time)."""


def _left(timeout: float | None) -> float | None:
    """``timeout``, cut to what is left of the current request's deadline."""
    left = _deadline.expires - time.monotonic()
    if left == math.inf:
        return timeout
    # never 0: a socket timeout of 0 makes it non-blocking (an error, not a timeout)
    return max(left, 1e-3) if timeout is None else max(min(timeout, left), 1e-3)


READ_BYTES = 1 << 20
"""The most a socket read takes (httpcore asks for 64 KiB: a 16 MiB chunk then takes 256 reads,
each through h11 in Python; 16 chunks came 1.6x faster in 1 MiB reads, docs/performance.md)."""


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, READ_BYTES), _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking sockets, each operation bounded by the request's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _left(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._backend.connect_unix_socket(path, _left(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class SyncTransport(httpx.HTTPTransport):
    """httpx's blocking transport with the app transport's bounds (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        # as asyncio's sockets (the async client's): a PUT's last segment is not held back
        kwargs.setdefault("socket_options", [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        super().__init__(**kwargs)
        # httpx takes no network backend; its pool (httpcore's) keeps one per pool
        self._pool._network_backend = _DeadlineBackend()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body is read within its limit and deadline.

        Raises:
            ServerUnreachableError: no answer (naming the request and why), or not within
                the request's timeout.
            BadResponseError: the answer is in a content coding the app did not ask for.
            ResponseTooLargeError: its declared length is over the limit.

        """
        seconds = deadline_seconds(request)
        expires = math.inf if seconds is None else time.monotonic() + seconds
        _deadline.expires = expires
        try:
            response = self._send(request, seconds)
        finally:
            _deadline.expires = math.inf
        try:
            headers, meter = answer_meter(response, request)
        except BaseException:
            response.close()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)  # a sync transport's
        body = _SyncStream(response.stream, request, meter, expires=expires, seconds=seconds)
        return rebodied(response, request, headers, body)

    def _send(self, request: httpx.Request, seconds: float | None) -> httpx.Response:
        try:
            return super().handle_request(request)
        except DROPPED as error:
            if not replayable(request):
                raise unreachable(request, error) from error
        except httpx.TimeoutException as error:
            raise self._failed(request, error, seconds) from error
        except httpx.TransportError as error:
            raise unreachable(request, error) from error
        try:
            return super().handle_request(request)
        except httpx.TimeoutException as error:
            raise self._failed(request, error, seconds) from error
        except httpx.TransportError as error:
            raise unreachable(request, error) from error

    @staticmethod
    def _failed(
        request: httpx.Request, error: httpx.TransportError, seconds: float | None
    ) -> Exception:
        if _deadline.expires <= time.monotonic():
            return overdue(request, seconds)
        return unreachable(request, error)


class _SyncStream(MeteredBody[httpx.SyncByteStream], httpx.SyncByteStream):
    """The answer's body, decoded, cut off at its limit and at the deadline."""

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._raw)
        while True:
            _deadline.expires = self._expires
            try:
                chunk = next(chunks, None)
            except httpx.TransportError as error:
                if self._expires <= time.monotonic():
                    raise overdue(self._request, self._seconds) from error
                raise broken(self._request, error) from error
            finally:
                _deadline.expires = math.inf
            if chunk is None:
                break
            if data := self._meter.feed(chunk):
                yield data
        if rest := self._meter.rest():
            yield rest

    def close(self) -> None:
        self._raw.close()
