"""Chunk keys and chunk codecs of mikro's zarr stores: which keys, how large a chunk decodes.

The server checks uploads and its reads with this module, the client its reads.

A chunk key is canonical: ``c/i/j/k/l/m`` with plain ASCII digits, no leading zeros, inside
the grid (so one chunk has exactly one key). Every chunk's decoded size is bounded by the
array's chunk shape and dtype *before* anything is decoded: the codec pipeline must be one
this module can bound (``bytes``, then at most one of ``blosc``, ``zstd``, ``gzip``, then an
optional ``crc32c``), and a chunk's header must declare exactly the chunk's raw size
(``blosc``, ``zstd``) or decompress to exactly it within a bounded output (``gzip``).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from arkitekt.protocol.text import echo

__all__ = [
    "HEADER_BYTES",
    "META_MAX_BYTES",
    "ChunkError",
    "Pipeline",
    "check_key",
    "chunk_index",
    "max_encoded_bytes",
]

_INDEX = r"(0|[1-9][0-9]{0,8})"  # ASCII only: no leading zeros, no Unicode digits
_CHUNK_KEY = re.compile("c" + f"/{_INDEX}" * 5)
_COMPRESSORS = ("blosc", "zstd", "gzip")
META_MAX_BYTES = 1 << 20
"""The largest ``zarr.json`` accepted (written or read)."""
_OVERHEAD = 1 << 16
"""Encoded bytes a chunk may have beyond its raw size (blosc/zstd/gzip headers and the
overhead of incompressible blocks)."""
HEADER_BYTES = 32
"""Enough of a chunk to read a blosc or zstd frame header."""
_ZSTD_MAGIC = 0xFD2FB528


class ChunkError(ValueError):
    """A key or chunk that must not be stored or decoded (the message names the key)."""


def chunk_index(key: str, counts: list[int] | tuple[int, ...]) -> tuple[int, ...] | None:
    """The grid index of a canonical chunk key inside ``counts``, else ``None``."""
    match = _CHUNK_KEY.fullmatch(key)
    if match is None:
        return None
    index = tuple(int(i) for i in match.groups())
    if not all(i < n for i, n in zip(index, counts, strict=True)):
        return None
    return index


def check_key(key: str, counts: list[int] | tuple[int, ...]) -> bool:
    """Whether ``key`` is ``zarr.json`` or a canonical chunk key inside the grid ``counts``."""
    return key == "zarr.json" or chunk_index(key, counts) is not None


def max_encoded_bytes(raw: int) -> int:
    """The largest encoded chunk accepted for a chunk of ``raw`` decoded bytes."""
    return raw + _OVERHEAD + 4  # + a crc32c checksum


@dataclass(frozen=True)
class Pipeline:
    """The codecs of an array as far as decoded sizes go.

    Attributes:
        compressor: ``blosc``, ``zstd``, ``gzip`` or ``None`` (raw bytes).
        crc32c: whether a 4-byte checksum follows the compressed bytes.
        raw: the decoded size of every chunk (chunk shape x item size).

    """

    compressor: str | None
    crc32c: bool
    raw: int
    refusal: ClassVar[type[ChunkError]] = ChunkError
    """What the checks raise (the server raises its own subclass)."""

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], raw: int) -> Self:
        """The pipeline of a parsed ``zarr.json`` (already checked for shape and chunks).

        ``raw`` is the decoded size of a chunk, from the verified chunk shape and dtype (never
        from the document).

        Raises:
            ChunkError: a codec (or an order of codecs) whose output size cannot be bounded.

        """
        codecs = meta.get("codecs")
        if not isinstance(codecs, list) or not codecs:
            raise cls.refusal("zarr.json: codecs must be a non-empty list")
        names = [_codec_name(codec, cls.refusal) for codec in codecs]
        allowed = "'bytes', then at most one of 'blosc', 'zstd', 'gzip', then optionally 'crc32c'"
        crc32c = names[-1] == "crc32c"
        middle = names[1:-1] if crc32c else names[1:]
        if names[0] != "bytes" or len(middle) > 1 or any(n not in _COMPRESSORS for n in middle):
            raise cls.refusal(f"zarr.json: codecs {echo(names)} are not accepted; use {allowed}")
        return cls(middle[0] if middle else None, crc32c, raw)

    def check_size(self, key: str, size: int) -> None:
        """Refuse a chunk file larger than any encoding of a chunk could be."""
        limit = max_encoded_bytes(self.raw)
        if size > limit:
            raise self.refusal(f"chunk {key!r} is {size} bytes, more than the {limit} allowed")

    def check_header(self, key: str, head: bytes, size: int) -> None:
        """Check what a chunk declares about its decoded size, from its first bytes.

        Args:
            key: the chunk's key (named in the error).
            head: the chunk's first bytes (at least 32 unless the chunk is shorter).
            size: the chunk's whole encoded size.

        Raises:
            ChunkError: the chunk would decode to more (or other) than the chunk's raw size,
                or declares nothing this module can bound.

        """
        self.check_size(key, size)
        payload = size - 4 if self.crc32c else size
        if self.compressor is None:
            if payload != self.raw:
                raise self.refusal(f"chunk {key!r} holds {payload} bytes, not {self.raw}")
        elif self.compressor == "blosc":
            self._check_blosc(key, head, payload)

    @property
    def header_suffices(self) -> bool:
        """Whether :meth:`check_header` alone bounds a chunk (else use :meth:`check_chunk`)."""
        return self.compressor in (None, "blosc")

    def check_chunk(self, key: str, data: bytes) -> None:
        """Check a whole chunk before it is decoded.

        ``zstd`` chunks must be exactly one frame (a decoder sizes its output by the first
        frame's declared size, but goes on through any frames that follow); ``gzip`` chunks
        are inflated within the bound, exactly one member.

        Raises:
            ChunkError: see :meth:`check_header`.

        """
        self.check_header(key, data[:HEADER_BYTES], len(data))
        payload = data[:-4] if self.crc32c else data
        if self.compressor == "zstd":
            self._check_zstd(key, payload)
        elif self.compressor == "gzip":
            self._check_gzip(key, payload)

    def _check_blosc(self, key: str, head: bytes, payload: int) -> None:
        if len(head) < 16:
            raise self.refusal(f"chunk {key!r} is too short for a blosc header")
        nbytes, _, cbytes = struct.unpack_from("<III", head, 4)
        if nbytes != self.raw or cbytes != payload:
            raise self.refusal(
                f"chunk {key!r} declares {nbytes} decoded bytes in {cbytes}; the chunk has "
                f"{self.raw} decoded bytes and its file {payload}"
            )

    def _check_zstd(self, key: str, data: bytes) -> None:
        declared = _zstd_single_frame(data)
        if declared is None:
            raise self.refusal(
                f"chunk {key!r} is not exactly one zstd frame that declares its content size"
            )
        if declared != self.raw:
            raise self.refusal(
                f"chunk {key!r} declares {declared} decoded bytes; the chunk has {self.raw}"
            )

    def _check_gzip(self, key: str, data: bytes) -> None:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data, self.raw + 1)
        except zlib.error as error:
            raise self.refusal(f"chunk {key!r} is not gzip data: {error}") from None
        if len(out) != self.raw or not inflater.eof or inflater.unused_data:
            raise self.refusal(
                f"chunk {key!r} does not inflate to exactly one gzip member of {self.raw} bytes"
            )


def _codec_name(codec: object, refusal: type[ChunkError]) -> str:
    if isinstance(codec, dict) and isinstance(codec.get("name"), str):
        return str(codec["name"])
    raise refusal(f"zarr.json: a codec must be an object with a name, not {echo(codec)}")


def _zstd_single_frame(data: bytes) -> int | None:
    """The content size ``data`` declares if it is exactly one zstd frame that declares one."""
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != _ZSTD_MAGIC:
        return None
    descriptor = data[4]
    fcs_flag, single, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    fcs_bytes = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if fcs_bytes == 0:
        return None
    offset = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    field = data[offset : offset + fcs_bytes]
    if len(field) != fcs_bytes:
        return None
    declared = int.from_bytes(field, "little") + (256 if fcs_bytes == 2 else 0)
    position = offset + fcs_bytes
    while True:  # the blocks: 3-byte headers (last flag, type, size)
        if position + 3 > len(data):
            return None
        header = int.from_bytes(data[position : position + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            return None
        position += 3 + (1 if kind == 1 else size)
        if last:
            break
    position += 4 if descriptor & 4 else 0  # the content checksum
    return declared if position == len(data) else None
