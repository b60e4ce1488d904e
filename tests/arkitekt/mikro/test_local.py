"""Parts that need no server: normalisation, chunk choice, the progress bar."""

from __future__ import annotations

import io
import math
import sys

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from arkitekt.mikro._normalize import CHUNK_TARGET_BYTES, choose_chunks, prepare
from arkitekt.mikro._upload import UploadProgress


def test_chunks_are_whole_planes_stacked_up_to_the_target() -> None:
    assert choose_chunks((2, 1, 64, 1024, 2048), 2) == (1, 1, 4, 1024, 2048)
    assert choose_chunks((1, 1, 3, 100, 120), 2) == (1, 1, 3, 100, 120)
    big = choose_chunks((1, 1, 1, 40000, 40000), 2)
    assert big[:3] == (1, 1, 1)
    assert math.prod(big) * 2 <= CHUNK_TARGET_BYTES


def test_dask_blocks_become_whole_numbers_of_chunks() -> None:
    lazy = da.zeros((4, 2048, 2048), dtype=np.uint16, chunks=(4, 2048, 2048))  # 32 MiB blocks
    prepared = prepare(xr.DataArray(lazy, dims=["z", "y", "x"]))
    assert prepared.lazy
    assert prepared.unit == (1, 1, 4, 2048, 2048)
    assert prepared.chunks == (1, 1, 2, 2048, 2048)  # two 8 MiB planes
    assert all(u % c == 0 for u, c in zip(prepared.unit, prepared.chunks, strict=True))
    regions = list(prepared.regions())
    assert len(regions) == 1


def test_big_endian_input_is_stored_native() -> None:
    data = np.arange(6, dtype=">u2").reshape(2, 3)
    prepared = prepare(xr.DataArray(data, dims=["y", "x"]))
    assert prepared.dtype == "uint16"
    assert prepared.array.dtype.byteorder in "=|<"
    assert np.array_equal(prepared.array.values[0, 0, 0], data)


def test_progress_bar_only_on_a_terminal_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    big = 1 << 30
    assert not UploadProgress("x", big, enabled=True)._enabled  # pytest's stderr is no tty
    assert not UploadProgress("x", big, enabled=False)._enabled
    terminal = io.StringIO()
    monkeypatch.setattr(terminal, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert not UploadProgress("x", 1000, enabled=True)._enabled  # too small to bother
    with UploadProgress("x", big, enabled=True) as progress:
        assert progress._enabled
        progress.advance(big)
    assert "uploading x" in terminal.getvalue()
