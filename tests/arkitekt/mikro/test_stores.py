"""The mikro stores' own helpers (the stores themselves are exercised by every upload test)."""

from __future__ import annotations

import numpy as np
from zarr.core.buffer import default_buffer_prototype

from arkitekt.mikro._stores import _payload


def test_a_chunk_is_sent_as_the_codecs_own_bytes_without_a_copy() -> None:
    encoded = bytes(range(256)) * 64  # what a codec returns
    buffer = default_buffer_prototype().buffer.from_bytes(encoded)
    assert _payload(buffer) is encoded


def test_any_other_buffer_is_sent_as_a_copy_of_its_bytes() -> None:
    encoded = bytes(range(256)) * 64
    part = default_buffer_prototype().buffer.from_bytes(encoded)[16:48]  # a view into the bytes
    assert _payload(part) == encoded[16:48]
    array = default_buffer_prototype().buffer.from_array_like(np.arange(8, dtype="B"))
    assert _payload(array) == bytes(range(8))
