"""Write a prepared array into a zarr v3 store, unit by unit, with bounded concurrency.

numpy-backed arrays are written chunk by chunk (slices are views, so nothing is copied up
front); dask-backed arrays are computed one write unit at a time in worker threads, so peak
memory stays near ``concurrency x unit`` bytes, not the array's size.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from arkitekt.mikro._normalize import Prepared
from arkitekt.protocol.mikro import DIMS

__all__ = ["LAZY_BUDGET_BYTES", "UploadProgress", "UploadsInProgress", "codec", "write_array"]

LAZY_BUDGET_BYTES = 128 << 20
"""At most this many bytes of computed dask blocks are held at once."""

_PROGRESS_MIN_BYTES = 32 << 20  # smaller uploads finish too fast for a bar


def codec(itemsize: int) -> Any:
    """The compressor of every stored array: blosc lz4 with bit shuffle (fast, lossless)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=itemsize)


async def create_zarr_array(store: Any, prepared: Prepared) -> Any:
    """Create the (empty) zarr v3 array node of ``prepared`` at the root of ``store``."""
    from zarr.api.asynchronous import create_array

    return await create_array(
        store,
        shape=prepared.shape,
        dtype=prepared.dtype,
        chunks=prepared.chunks,
        compressors=[codec(prepared.itemsize)],
        dimension_names=DIMS,
        fill_value=0,
        zarr_format=3,
        # Every chunk is written, even all-zero ones, so the server can count them.
        config={"write_empty_chunks": True},
    )


class UploadProgress:
    """A rich progress bar on stderr; silent when disabled, not a tty or the upload is small."""

    def __init__(self, name: str, total: int, *, enabled: bool) -> None:
        self._total = total
        self._bar: Any = None
        self._task: Any = None
        self._name = name
        self._enabled = enabled and total >= _PROGRESS_MIN_BYTES and sys.stderr.isatty()

    def __enter__(self) -> UploadProgress:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(f"uploading {self._name}", total=self._total)
        return self

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` (uncompressed) as written."""
        if self._bar is not None:
            self._bar.advance(self._task, nbytes)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()


async def write_array(
    prepared: Prepared, store: Any, *, concurrency: int, progress: UploadProgress
) -> None:
    """Create the array node in ``store`` and write every chunk of ``prepared``.

    Args:
        prepared: the normalised array.
        store: a zarr store (``LocalStore`` for the local datalayer, ``HttpStore`` for http,
            a ``BucketStore`` for s3).
        concurrency: writes in flight at once (fewer for large dask blocks).
        progress: counts written bytes.

    """
    import numpy as np

    array = await create_zarr_array(store, prepared)
    data = prepared.array.data
    unit_bytes = math.prod(prepared.unit) * prepared.itemsize
    if prepared.lazy:
        concurrency = max(1, min(concurrency, LAZY_BUDGET_BYTES // unit_bytes))
    slots = anyio.Semaphore(concurrency)

    async def write(region: tuple[slice, ...]) -> None:
        try:
            if prepared.lazy:
                block = await anyio.to_thread.run_sync(_compute, data, region)
            else:
                block = np.asarray(data[region])
            await array.setitem(region, block)
            progress.advance(block.nbytes)
            del block
        finally:
            slots.release()

    try:
        async with anyio.create_task_group() as group:
            for region in prepared.regions():
                await slots.acquire()
                group.start_soon(write, region)
    except ExceptionGroup as errors:  # one failing write cancels the rest: report the cause
        raise _first(errors) from None


def _first(errors: BaseExceptionGroup[Exception]) -> Exception:
    first = errors.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _compute(data: Any, region: tuple[slice, ...]) -> Any:
    import numpy as np

    return np.asarray(data[region].compute())


class UploadsInProgress:
    """The uploads of one app in progress.

    The app's scope waits for them before it closes the HTTP client, so a cancelled upload
    can still abort its grant.
    """

    def __init__(self, wait: float) -> None:
        self._wait = wait
        self._count = 0
        self._idle = anyio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Count one upload (including its abort) as in progress."""
        if not self._count:
            self._idle = anyio.Event()
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def __aenter__(self) -> UploadsInProgress:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.move_on_after(self._wait):
            await self._idle.wait()
