"""Write a prepared array as an OME-Zarr 0.5 image into a store, unit by unit.

Writes run with bounded concurrency.

The store's root becomes the image group: one zarr v3 array per pyramid level (``0``, ``1``,
...; dims t, c, z, y, x), then the group's ``zarr.json`` with the ``ome`` attributes, written
last (its display windows come from the data). numpy-backed arrays are written chunk by chunk
(slices are views, so nothing is copied up front); dask-backed arrays are computed one write
unit at a time in worker threads, so peak memory stays near ``concurrency x unit`` bytes, not
the array's size. Each unit is written to every level at once, or into the buffer of a lower
level's chunk that several units share (:mod:`arkitekt.mikro._pyramid`).
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
from arkitekt.mikro._pyramid import Pyramid, Window, Write
from arkitekt.protocol.mikro import ImageFields
from arkitekt.protocol.ome import DISK_DIMS, disk_order
from arkitekt.protocol.ome import group_document as ome_group

__all__ = [
    "LAZY_BUDGET_BYTES",
    "UploadProgress",
    "UploadsInProgress",
    "codec",
    "create_level",
    "group_document",
    "write_array",
]

LAZY_BUDGET_BYTES = 128 << 20
"""At most this many bytes of computed dask blocks are held at once."""

_PROGRESS_MIN_BYTES = 32 << 20  # smaller uploads finish too fast for a bar


def codec(itemsize: int, level: int = 0) -> Any:
    """The compressor of pyramid level ``level``: blosc lz4, lossless.

    Level 0 shuffles bits (the smallest files); the lower levels shuffle bytes: they are a
    third of level 0's bytes, compress three times as fast and decode three times as fast
    (they are what viewers read) for files about a quarter larger.
    """
    from zarr.codecs import BloscCodec

    return BloscCodec(
        cname="lz4", clevel=5, shuffle="shuffle" if level else "bitshuffle", typesize=itemsize
    )


async def create_level(store: Any, prepared: Prepared, level: int) -> Any:
    """Create the (empty) zarr v3 array of pyramid level ``level`` (path ``"<level>"``)."""
    from zarr.api.asynchronous import create_array

    from arkitekt.protocol.ome import level_shape

    return await create_array(
        store,
        name=str(level),
        shape=tuple(disk_order(level_shape(prepared.shape, level))),
        dtype=prepared.dtype,
        chunks=tuple(disk_order(prepared.level_chunks[level])),
        compressors=[codec(prepared.itemsize, level)],
        dimension_names=DISK_DIMS,
        fill_value=0,
        zarr_format=3,
        # Every chunk is written, even all-zero ones, so the server can count them.
        config={"write_empty_chunks": True},
    )


def group_document(prepared: Prepared, fields: ImageFields, window: Window) -> bytes:
    """The image group's ``zarr.json``: the OME-Zarr 0.5 ``ome`` attributes."""
    pixel_size = fields.pixel_size.model_dump(exclude_none=True)
    ranges = window.ranges()
    return ome_group(prepared.shape, pixel_size, fields.channel_names, ranges, prepared.levels)


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
    prepared: Prepared,
    fields: ImageFields,
    store: Any,
    *,
    concurrency: int,
    progress: UploadProgress,
) -> None:
    """Write ``prepared`` into ``store`` as an OME-Zarr image.

    Every chunk of every level first, then the group's ``zarr.json``.

    Args:
        prepared: the normalised array.
        fields: its metadata (name, channel names and pixel size go into the ``ome``
            attributes).
        store: a zarr store (``LocalStore`` for the local datalayer, ``HttpStore`` for http,
            a ``BucketStore`` for s3).
        concurrency: writes in flight at once (fewer for large dask blocks).
        progress: counts written bytes (of level 0).

    """
    from zarr.core.buffer import default_buffer_prototype

    arrays = [await create_level(store, prepared, level) for level in range(prepared.levels)]
    pyramid = Pyramid(prepared)
    smallest, lazy, itemsize = prepared.levels - 1, prepared.lazy, prepared.itemsize
    window = Window(prepared.shape[0], prepared.dtype)
    data = prepared.array.data
    unit_bytes = math.prod(prepared.unit) * prepared.itemsize
    if prepared.lazy:
        concurrency = max(1, min(concurrency, LAZY_BUDGET_BYTES // unit_bytes))
    slots = anyio.Semaphore(concurrency)

    async def write(region: tuple[slice, ...]) -> None:
        try:
            targets = pyramid.plan(region)
            # computing (dask) and the lower levels' copies happen off the event loop
            own = await anyio.to_thread.run_sync(_unit, data, region, targets, lazy)
            complete = pyramid.finish(region)
            async with anyio.create_task_group() as levels:  # every level of it at once
                for level, where, block in own + complete:
                    if level == smallest:
                        window.add(where[1].start, block.swapaxes(0, 1))
                    levels.start_soon(arrays[level].setitem, where, block)
            for _, _, block in complete:  # written: its buffer can take another chunk
                pyramid.release(block)
            progress.advance(math.prod(part.stop - part.start for part in region) * itemsize)
            del own, complete
        finally:
            slots.release()

    try:
        async with anyio.create_task_group() as group:
            for region in prepared.regions():
                await slots.acquire()
                group.start_soon(write, region)
    except ExceptionGroup as errors:  # one failing write cancels the rest: report the cause
        raise _first(errors) from None
    document = group_document(prepared, fields, window)
    await store.set("zarr.json", default_buffer_prototype().buffer.from_bytes(document))


def _first(errors: BaseExceptionGroup[Exception]) -> Exception:
    first = errors.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _unit(data: Any, region: tuple[slice, ...], targets: Any, lazy: bool) -> list[Write]:
    import numpy as np

    block = np.asarray(data[region].compute() if lazy else data[region])
    return Pyramid.fill(region, block, targets)


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
