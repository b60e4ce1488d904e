"""Reads that decode each chunk of an array in mikro's codec straight into the result.

:mod:`arkitekt.mikro._chunk_reads` reads slices of arrays stored with ``bytes`` + ``blosc``
(the codec of every upload); anything else is left to zarr. Each read is compared with zarr's
own read of the same real array.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, WrapperStore

from arkitekt.errors import MikroError
from arkitekt.mikro._chunk_reads import plan, read
from arkitekt.mikro._pixels import ZarrPixels
from arkitekt.mikro._upload import codec

SHAPE = (3, 5, 7, 10)  # odd sizes: edge chunks are partial
CHUNKS = (2, 2, 3, 4)


def _array(store: Any, dtype: str = "uint16", **kwargs: Any) -> zarr.Array:
    kwargs.setdefault("compressors", [codec(np.dtype(dtype).itemsize)])
    array = zarr.create_array(store, shape=SHAPE, chunks=CHUNKS, dtype=dtype, **kwargs)
    pixels = np.random.default_rng(1).integers(0, 60000, SHAPE).astype(dtype)
    array[...] = pixels
    return array


def _read(array: zarr.Array, key: tuple[Any, ...]) -> Any:
    selection = plan(array._async_array, key)
    assert selection is not None, "read by zarr instead"
    return sync(read(array._async_array, selection))


@pytest.mark.parametrize(
    "key",
    [
        (slice(None),) * 4,
        (slice(1, 3), slice(1, 4), slice(2, 7), slice(3, 9)),  # cuts chunks on every axis
        (slice(-2, None), slice(None, -1), slice(None), slice(4, 8)),  # whole inner chunks
        (slice(2, 3), slice(4, 5), slice(6, 7), slice(9, 10)),  # the last pixel
        (slice(1, 1), slice(None), slice(None), slice(None)),  # nothing
        (slice(5, 9), slice(None), slice(None), slice(None)),  # past the end: nothing
    ],
    ids=["whole", "cut", "inner", "corner", "empty", "past-end"],
)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_a_slice_reads_the_pixels_zarr_reads(
    tmp_path: Path, key: tuple[slice, ...], dtype: str
) -> None:
    array = _array(LocalStore(tmp_path / "a"), dtype)
    np.testing.assert_array_equal(_read(array, key), array[key])


def test_chunks_never_written_read_as_the_fill_value(tmp_path: Path) -> None:
    array = zarr.create_array(
        LocalStore(tmp_path / "a"), shape=SHAPE, chunks=CHUNKS, dtype="uint16",
        compressors=[codec(2)], fill_value=7,
    )  # fmt: skip
    array[0:2, 0:2, 0:3, 0:4] = 1  # one chunk written, the others missing
    whole = (slice(None),) * 4
    result = _read(array, whole)
    np.testing.assert_array_equal(result, array[whole])
    assert (result == 7).sum() == result.size - 2 * 2 * 3 * 4


@pytest.mark.parametrize(
    ("key", "compressors", "serializer"),
    [
        ((slice(None, None, 2),) + (slice(None),) * 3, None, None),  # a step
        ((np.array([0, 2]),) + (slice(None),) * 3, None, None),  # points of an axis
        ((slice(None),) * 4, [{"name": "zstd", "configuration": {"level": 1}}], None),
        ((slice(None),) * 4, None, {"name": "bytes", "configuration": {"endian": "big"}}),
    ],
    ids=["step", "points", "zstd", "big-endian"],
)
def test_other_selections_and_codecs_are_read_by_zarr(
    tmp_path: Path, key: tuple[Any, ...], compressors: Any, serializer: Any
) -> None:
    kwargs: dict[str, Any] = {}
    if compressors is not None:
        kwargs["compressors"] = compressors
    if serializer is not None:
        kwargs["serializer"] = serializer
    array = _array(LocalStore(tmp_path / "a"), **kwargs)
    assert plan(array._async_array, key) is None
    pixels = ZarrPixels(array)  # as Image.data reads it
    np.testing.assert_array_equal(pixels._read(key), array.oindex[key])


class _Counting(WrapperStore[Store]):
    """A real store that records how many reads are in flight and can fail one key."""

    def __init__(self, store: Store, failing: str | None = None) -> None:
        super().__init__(store)
        self.failing = failing
        self.started = 0
        self.running = 0
        self.most = 0

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.01)  # long enough for every worker to be waiting
            if key.endswith(self.failing or "no such key"):
                raise OSError(f"the disk failed reading {key}")
            return await self._store.get(key, prototype, byte_range)
        finally:
            self.running -= 1


def test_at_most_zarrs_concurrency_of_chunks_are_read_at_once(tmp_path: Path) -> None:
    _array(LocalStore(tmp_path / "a"))
    store = _Counting(LocalStore(tmp_path / "a", read_only=True))
    array = zarr.open_array(store, mode="r")
    opened = store.started
    with zarr.config.set({"async.concurrency": 3}):
        result = _read(array, (slice(None),) * 4)
    assert store.started - opened == 2 * 3 * 3 * 3  # every chunk once
    assert store.most == 3
    np.testing.assert_array_equal(result, array[...])


def test_a_failed_chunk_read_raises_its_error_and_stops_the_others(tmp_path: Path) -> None:
    _array(LocalStore(tmp_path / "a"))
    store = _Counting(LocalStore(tmp_path / "a", read_only=True), failing="c/0/0/0/1")
    array = zarr.open_array(store, mode="r")
    opened = store.started
    with zarr.config.set({"async.concurrency": 2}), pytest.raises(OSError, match="c/0/0/0/1"):
        _read(array, (slice(None),) * 4)
    assert store.started - opened <= 3  # the chunks before it; the rest was not read


def test_a_chunk_declaring_another_decoded_size_is_not_decoded(tmp_path: Path) -> None:
    from numcodecs import blosc

    array = _array(LocalStore(tmp_path / "a"))
    smaller = blosc.compress(np.zeros(5, np.uint16), b"lz4", 5, blosc.BITSHUFFLE, 0)
    (tmp_path / "a" / "c" / "0" / "0" / "0" / "0").write_bytes(smaller)
    with pytest.raises(MikroError, match=r"chunk 'c/0/0/0/0' does not decode to .*\(96 bytes\)"):
        _read(array, (slice(None),) * 4)
