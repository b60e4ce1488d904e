"""A zarr v3 store that reads and writes keys through the mikro server (the ``http`` datalayer).

Each request is made in a worker thread with the app's blocking HTTP client
(:meth:`~arkitekt.transport.Transport.blocking`: the bearer token and the bounds of the app's
client), whichever loop zarr calls the store from, so chunks travel in parallel instead of one
64 KiB piece at a time on the app's event loop (see docs/performance.md, "Mikro"). Only finding
that client (once per store) and fetching a token hop over to the app's loop, through the app's
:class:`~arkitekt._bridge.Bridge`.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from arkitekt._scope import AppSlot
from arkitekt.errors import MikroError
from arkitekt.protocol.chunks import META_MAX_BYTES
from arkitekt.protocol.mikro import DTYPES, MAX_CHUNK_BYTES
from arkitekt.transport import MAX_BODY, blocking_client

__all__ = ["META_MAX_BYTES", "HttpStore", "gather_gets", "max_chunk_bytes"]


_CHUNK_OVERHEAD = (1 << 16) + 4
"""Encoded bytes a chunk may have beyond its raw size (compressor headers, incompressible
blocks, a crc32c checksum): the server's bound, too."""


def max_chunk_bytes(chunks: Iterable[int], dtype: str) -> int:
    """The largest encoded chunk of an array with these chunks and dtype.

    As the server's record says, but never more than the largest chunk any upload may have.
    """
    import numpy as np

    itemsize = np.dtype(dtype).itemsize if dtype in DTYPES else 8
    return min(math.prod(chunks) * itemsize, MAX_CHUNK_BYTES) + _CHUNK_OVERHEAD


ClientGetter = Callable[[], Awaitable[httpx.AsyncClient]]

REQUEST_THREADS = 16
"""Threads making the http stores' requests (more than zarr keeps in flight: 8 writes, 10
reads). Their own pool: in the loop's default one, requests waiting for the server would
hold the threads that zarr compresses chunks in."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _requests() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made when first needed
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="arkitekt-http")
        return _pool


class HttpStore(Store):
    """Keys of one zarr store under ``url`` (``GET``/``PUT url + key``).

    Args:
        url: the store root, ending in ``/``.
        app_slot: the app whose loop and client the requests use.
        client: returns the app's authenticated HTTP client (called on the app's loop).
        timeout: seconds a request may wait for the app's loop (a blocked loop fails instead of
            hanging).
        read_only: refuse writes.
        cache: keys known in advance (e.g. ``zarr.json``), served without a request.
        fresh: the store is known to be empty (an upload): keys not written yet are missing
            without asking the server.
        max_chunk_bytes: the largest chunk read (:func:`max_chunk_bytes`); a larger answer
            fails as :class:`~arkitekt.errors.ResponseTooLargeError`. ``zarr.json`` is read
            up to :data:`META_MAX_BYTES`.

    """

    supports_writes: bool = True
    supports_deletes: bool = False
    supports_listing: bool = False

    def __init__(
        self,
        url: str,
        *,
        app_slot: AppSlot,
        client: ClientGetter,
        timeout: float,
        read_only: bool = True,
        cache: dict[str, bytes] | None = None,
        fresh: bool = False,
        max_chunk_bytes: int = META_MAX_BYTES,
    ) -> None:
        super().__init__(read_only=read_only)
        self._fresh = fresh
        self._max_chunk_bytes = max_chunk_bytes
        self.url = url
        self._app_slot = app_slot
        self._client = client
        self._timeout = timeout
        self._cache = dict(cache or {})
        self._blocking: httpx.Client | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HttpStore) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def with_read_only(self, read_only: bool = False) -> HttpStore:
        """The same store, with another write permission."""
        return HttpStore(
            self.url,
            app_slot=self._app_slot,
            client=self._client,
            timeout=self._timeout,
            read_only=read_only,
            cache=self._cache,
            fresh=self._fresh,
            max_chunk_bytes=self._max_chunk_bytes,
        )

    async def _on_app_loop(self, method: str, key: str, body: bytes | None = None) -> Any:
        if self._blocking is None:
            bridge = self._app_slot.scope.bridge  # AppClosedError once the app has closed
            if bridge.is_current():
                client = await self._client()
            else:
                try:
                    client = await asyncio.wait_for(bridge.acall(self._find_client), self._timeout)
                except TimeoutError:
                    raise MikroError(
                        f"reading {self.url}{key} timed out waiting for the app's event loop; in "
                        "async code compute image data off the loop: "
                        "`await anyio.to_thread.run_sync(lambda: image.data.values)`"
                    ) from None
            self._blocking = blocking_client(client)
            if self._blocking is None:  # not an app's client: its own loop makes the requests
                return await self._request(client, method, key, body)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _requests(), self._send, self._blocking, method, key, body
        )

    async def _find_client(self) -> httpx.AsyncClient:
        return await self._client()

    def _limit(self, key: str) -> int:
        return META_MAX_BYTES if key.endswith("zarr.json") else self._max_chunk_bytes

    def _send(
        self, client: httpx.Client, method: str, key: str, body: bytes | None
    ) -> bytes | None:
        self._app_slot.scope  # noqa: B018  # AppClosedError once the app has closed
        response = client.request(
            method, self.url + key, content=body, extensions={MAX_BODY: self._limit(key)}
        )
        return self._answer(response, method, key)

    async def _request(
        self, client: httpx.AsyncClient, method: str, key: str, body: bytes | None
    ) -> bytes | None:
        response = await client.request(
            method, self.url + key, content=body, extensions={MAX_BODY: self._limit(key)}
        )
        return self._answer(response, method, key)

    def _answer(self, response: httpx.Response, method: str, key: str) -> bytes | None:
        if method == "GET" and response.status_code == 404:
            return None
        if response.is_error:
            raise MikroError(
                f"{method} {self.url}{key} failed: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.content if method == "GET" else None

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """Fetch one key (the whole value; a byte range is cut out locally)."""
        prototype = prototype or default_buffer_prototype()
        data = self._cache.get(key)
        if data is None:
            if self._fresh:
                return None
            data = await self._on_app_loop("GET", key)
            if data is None:
                return None
            if key.endswith("zarr.json"):  # a stored image's metadata never changes
                self._cache[key] = data
        if byte_range is not None:
            data = _cut(data, byte_range)
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Fetch several (possibly partial) keys concurrently."""
        return await gather_gets(self, prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        """Whether the key exists (one GET)."""
        return await self.get(key) is not None

    async def set(self, key: str, value: Buffer) -> None:
        """Upload one key."""
        self._check_writable()
        data = _payload(value)
        await self._on_app_loop("PUT", key, data)
        if key.endswith("zarr.json"):
            self._cache[key] = data

    async def delete(self, key: str) -> None:
        """Not supported: an upload is aborted as a whole."""
        raise NotImplementedError("the mikro http store does not delete keys")

    def list(self) -> AsyncIterator[str]:
        """Not supported."""
        raise NotImplementedError("the mikro http store cannot list keys")

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Not supported."""
        raise NotImplementedError("the mikro http store cannot list keys")

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """Not supported."""
        raise NotImplementedError("the mikro http store cannot list keys")

    def cached(self, key: str) -> bytes | None:
        """A value this store already knows (written or prefetched), without a request."""
        return self._cache.get(key)


def _payload(value: Buffer) -> bytes:
    """``value``'s bytes: the codec's own ``bytes`` object when the buffer wraps one.

    A compressed chunk arrives as a view of the bytes the codec returned; ``to_bytes`` would
    copy them (a chunk is megabytes, and the HTTP client sends a ``bytes`` body without
    another copy).
    """
    array = value.as_numpy_array()
    base: object = array.base
    if type(base) is bytes and len(base) == array.nbytes and array.flags.c_contiguous:
        return base
    return value.to_bytes()


def _cut(data: bytes, byte_range: ByteRequest) -> bytes:
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    return data[-byte_range.suffix :] if byte_range.suffix else b""


async def gather_gets(
    store: Store,
    prototype: BufferPrototype,
    key_ranges: Iterable[tuple[str, ByteRequest | None]],
) -> list[Buffer | None]:
    """Several keys of ``store``, each read by its own ``get``, concurrently.

    The ``get_partial_values`` of every store here: its checks and bounds are those of ``get``.
    """
    return list(await asyncio.gather(*(store.get(key, prototype, rng) for key, rng in key_ranges)))
