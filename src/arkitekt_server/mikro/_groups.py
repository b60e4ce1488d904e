"""The OME-Zarr image group of an image's store, as the server checks it: which arrays (pyramid
levels) it holds, which keys, and its group document.

A store is the image group (:mod:`arkitekt.protocol.ome`): ``zarr.json`` (the group, with the
``ome`` attributes), and for each level ``n`` the array ``n/zarr.json`` with its chunks
``n/c/i/j/k/l/m`` (dims t, c, z, y, x). A store from before pyramids is one array at the root
(``zarr.json``, ``c/i/j/k/l/m``; dims c, t, z, y, x): such images stay readable (their row has no
``levels``) and adoptable, but no upload creates one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from arkitekt.protocol.mikro import DIMS, UploadRequest
from arkitekt.protocol.ome import (
    DISK_DIMS,
    OME_VERSION,
    check_omero,
    disk_order,
    level_shape,
    multiscales,
)
from arkitekt.protocol.text import echo
from arkitekt_server.mikro._chunks import META_MAX_BYTES, chunk_index, max_encoded_bytes
from arkitekt_server.mikro._locations import StoreInvalidError

__all__ = [
    "ArraySpec",
    "Level",
    "Verified",
    "check_group",
    "from_row",
    "grid",
    "key_limit",
    "level_rows",
    "upload_verified",
]


def grid(shape: list[int] | tuple[int, ...], chunks: list[int] | tuple[int, ...]) -> list[int]:
    """Chunks per axis."""
    return [-(-s // c) for s, c in zip(shape, chunks, strict=True)]


@dataclass(frozen=True)
class Level:
    """One verified pyramid level: its chunks ((c, t, z, y, x)) and its ``zarr.json``'s hash."""

    chunks: list[int]
    sha256: str | None = None


@dataclass(frozen=True)
class ArraySpec:
    """One array of a store as it is on disk.

    Attributes:
        prefix: its keys' prefix (``"0/"``, ``"1/"``, ...; ``""`` for a store from before
            pyramids).
        shape: its shape in stored order.
        chunks: its chunk shape in stored order.
        dims: its dimension names (t, c, z, y, x; before pyramids c, t, z, y, x).
        sha256: the verified hash of its ``zarr.json`` (``None``: not known).

    """

    prefix: str
    shape: list[int]
    chunks: list[int]
    dims: tuple[str, ...]
    sha256: str | None

    @property
    def counts(self) -> list[int]:
        """Chunks per axis."""
        return grid(self.shape, self.chunks)


@dataclass(frozen=True)
class Verified:
    """What an image's store was verified to hold (kept with its row); every read checks the
    store still says so and bounds each chunk by it, never by what the store says now.

    Attributes:
        shape: the image's (c, t, z, y, x) shape (level 0).
        chunks: level 0's chunk shape ((c, t, z, y, x)).
        dtype: the numpy dtype name.
        meta_sha256: the SHA-256 (hex) of the verified root ``zarr.json`` (the group's);
            ``None`` for an image from before it was kept (its ``zarr.json`` is then checked
            field by field).
        levels: every pyramid level, level 0 first; ``None`` for a store from before
            pyramids (one array at the root).

    """

    shape: list[int]
    chunks: list[int]
    dtype: str
    meta_sha256: str | None = None
    levels: tuple[Level, ...] | None = None

    @property
    def raw(self) -> int:
        """The decoded size of every chunk of level 0."""
        return math.prod(self.chunks) * np.dtype(self.dtype).itemsize

    def arrays(self) -> list[ArraySpec]:
        """The store's arrays, level 0 first."""
        if self.levels is None:
            return [ArraySpec("", self.shape, self.chunks, DIMS, self.meta_sha256)]
        return [
            ArraySpec(
                f"{n}/",
                disk_order(level_shape(self.shape, n)),
                disk_order(level.chunks),
                DISK_DIMS,
                level.sha256,
            )
            for n, level in enumerate(self.levels)
        ]

    def array(self, key: str) -> ArraySpec | None:
        """The array a key (its ``zarr.json`` or a chunk) belongs to, if any."""
        for spec in self.arrays():
            if key.startswith(spec.prefix):
                return spec
        return None

    def max_chunk_bytes(self) -> int:
        """The largest encoded chunk of any level."""
        itemsize = np.dtype(self.dtype).itemsize
        return max(max_encoded_bytes(math.prod(a.chunks) * itemsize) for a in self.arrays())


def key_limit(key: str, verified: Verified) -> int | None:
    """The largest size key ``key`` of the store may have, or ``None`` when it is no key of it
    (a ``zarr.json``, or a canonical chunk key inside its array's grid)."""
    if key == "zarr.json":
        return META_MAX_BYTES
    spec = verified.array(key)
    if spec is None:
        return None
    rest = key[len(spec.prefix) :]
    if rest == "zarr.json":
        return META_MAX_BYTES
    if chunk_index(rest, spec.counts) is None:
        return None
    return max_encoded_bytes(math.prod(spec.chunks) * np.dtype(verified.dtype).itemsize)


def check_group(meta: object, body: UploadRequest) -> None:
    """Check a parsed group ``zarr.json`` against the upload it must describe.

    It must be a zarr v3 group whose only attribute is ``ome``: ``version`` 0.5, the
    ``multiscales`` the protocol builds from the image's shape and pixel size (axes t, c, z, y,
    x, one ``scale`` per level), and well-formed ``omero`` channels.

    Raises:
        StoreInvalidError: naming the first field that is not so.

    """
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        raise StoreInvalidError("zarr.json is not a zarr v3 document")
    if meta.get("node_type") != "group":
        raise StoreInvalidError(
            f"zarr.json: node_type is {echo(meta.get('node_type'))}; the store's root must be "
            "the OME-Zarr image group (levels below it at 0/, 1/, ...)"
        )
    if set(meta) - {"zarr_format", "node_type", "attributes", "consolidated_metadata"} or (
        meta.get("consolidated_metadata") is not None
    ):
        raise StoreInvalidError("zarr.json: the group document holds unexpected fields")
    attributes = meta.get("attributes")
    ome = attributes.get("ome") if isinstance(attributes, dict) else None
    if not isinstance(attributes, dict) or set(attributes) != {"ome"} or not isinstance(ome, dict):
        raise StoreInvalidError("zarr.json: attributes must hold exactly the 'ome' object")
    if set(ome) != {"version", "multiscales", "omero"} or ome["version"] != OME_VERSION:
        raise StoreInvalidError(
            f"zarr.json: attributes.ome must hold version {OME_VERSION!r}, multiscales and omero"
        )
    pixel_size = body.pixel_size.model_dump(exclude_none=True)
    if ome["multiscales"] != multiscales(body.shape, pixel_size, len(body.level_chunks)):
        raise StoreInvalidError(
            "zarr.json: attributes.ome.multiscales is not the one of this image (axes t, c, z, "
            "y, x, a scale per level from the pixel size, levels 0, 1, ... as paths)"
        )
    try:
        check_omero(ome["omero"], body.channel_names, body.shape[0])
    except ValueError as error:
        raise StoreInvalidError(f"zarr.json: {error}") from None


def upload_verified(body: UploadRequest) -> Verified:
    """What an upload's store must hold (hashes not known yet)."""
    return Verified(
        list(body.shape),
        list(body.chunks),
        body.dtype,
        None,
        tuple(Level(list(chunks)) for chunks in body.level_chunks),
    )


def level_rows(verified: Verified) -> list[dict[str, Any]] | None:
    """The ``levels`` column of an image row."""
    if verified.levels is None:
        return None
    return [{"chunks": level.chunks, "sha256": level.sha256} for level in verified.levels]


def from_row(
    shape: list[int], chunks: list[int], dtype: str, meta_sha256: str | None, levels: Any
) -> Verified:
    """The :class:`Verified` of an image row (``levels`` its column)."""
    if not levels:
        return Verified(list(shape), list(chunks), dtype, meta_sha256)
    return Verified(
        list(shape),
        list(chunks),
        dtype,
        meta_sha256,
        tuple(Level(list(level["chunks"]), level.get("sha256")) for level in levels),
    )
