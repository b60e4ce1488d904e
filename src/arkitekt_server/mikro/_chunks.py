"""Chunk keys and chunk codecs on the server: :mod:`arkitekt.protocol.chunks` (shared with the
client), raising :class:`ChunkRefusedError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from arkitekt.protocol import chunks as shared
from arkitekt.protocol.chunks import (
    HEADER_BYTES,
    META_MAX_BYTES,
    check_key,
    chunk_index,
    max_encoded_bytes,
)
from arkitekt_server._errors import ArkitektServerError

__all__ = [
    "HEADER_BYTES",
    "META_MAX_BYTES",
    "ChunkRefusedError",
    "Pipeline",
    "check_key",
    "chunk_index",
    "max_encoded_bytes",
]


class ChunkRefusedError(ArkitektServerError, shared.ChunkError):
    """A key or chunk that must not be stored or decoded (the message names the key)."""


@dataclass(frozen=True)
class Pipeline(shared.Pipeline):
    """:class:`arkitekt.protocol.chunks.Pipeline`, raising :class:`ChunkRefusedError`."""

    refusal: ClassVar[type[shared.ChunkError]] = ChunkRefusedError
