"""Stores on disk: where uploads and images live, chunk keys, verification, thumbnails, sweeping.

Layout under ``<data_dir>/mikro``: ``uploads/<grant id>/`` (a zarr v3 store being written),
``stores/<image id>/`` (finished stores; an image keeps its grant's id), ``thumbs/<id>.png``.
Everything here is blocking file work: call it in a worker thread.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from arkitekt.protocol.mikro import DIMS

__all__ = [
    "Layout",
    "StoreInvalid",
    "check_key",
    "render_thumbnail",
    "verify_store",
    "write_key",
]

_CHUNK_KEY = re.compile(r"c/(\d{1,9})/(\d{1,9})/(\d{1,9})/(\d{1,9})/(\d{1,9})")
THUMBNAIL_SIZE = 256
_THUMBNAIL_MAX_PLANES = 64


class StoreInvalid(Exception):
    """The store does not hold what the grant announced (or holds something it must not)."""


class Layout:
    """The directories of mikro under a server's data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "mikro"
        self.uploads = self.root / "uploads"
        self.stores = self.root / "stores"
        self.thumbs = self.root / "thumbs"

    def create(self) -> None:
        """Create the directories (owner-only permissions)."""
        for path in (self.root, self.uploads, self.stores, self.thumbs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def upload(self, grant_id: str) -> Path:
        """The directory an upload is written to."""
        return self.uploads / _safe_id(grant_id)

    def store(self, image_id: str) -> Path:
        """The directory of a finished image's store."""
        return self.stores / _safe_id(image_id)

    def thumb(self, image_id: str) -> Path:
        """The cached thumbnail of an image."""
        return self.thumbs / f"{_safe_id(image_id)}.png"


def _safe_id(value: str) -> str:
    return str(uuid.UUID(value))  # raises ValueError for anything but a UUID


def grid(shape: list[int] | tuple[int, ...], chunks: list[int] | tuple[int, ...]) -> list[int]:
    """Chunks per axis."""
    return [-(-s // c) for s, c in zip(shape, chunks, strict=True)]


def check_key(key: str, counts: list[int]) -> bool:
    """Whether ``key`` is ``zarr.json`` or a chunk key inside the grid ``counts``."""
    if key == "zarr.json":
        return True
    match = _CHUNK_KEY.fullmatch(key)
    if match is None:
        return False
    return all(int(i) < n for i, n in zip(match.groups(), counts, strict=True))


def write_key(directory: Path, key: str, data: bytes) -> None:
    """Write one key of a store atomically (a temporary file renamed into place)."""
    target = directory / key
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove a directory tree (or a file) if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _expected_metadata(shape: list[int], chunks: list[int], dtype: str) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "dimension_names": list(DIMS),
    }


def _check_metadata(meta: object, shape: list[int], chunks: list[int], dtype: str) -> None:
    """Raise :class:`StoreInvalid` unless ``meta`` (a parsed ``zarr.json``) fits the grant."""
    if not isinstance(meta, dict):
        raise StoreInvalid("zarr.json is not an object")
    for key, value in _expected_metadata(shape, chunks, dtype).items():
        if meta.get(key) != value:
            raise StoreInvalid(f"zarr.json: {key} is {meta.get(key)!r}, expected {value!r}")
    encoding = meta.get("chunk_key_encoding", {})
    configuration = encoding.get("configuration", {}) if isinstance(encoding, dict) else None
    if (
        not isinstance(encoding, dict)
        or encoding.get("name") != "default"
        or not isinstance(configuration, dict)
        or configuration.get("separator", "/") != "/"
    ):
        raise StoreInvalid(
            "zarr.json: chunk_key_encoding must be an object {'name': 'default', "
            f"'configuration': {{'separator': '/'}}}}, not {encoding!r}"
        )


def verify_store(directory: Path, shape: list[int], chunks: list[int], dtype: str) -> None:
    """Check an uploaded store before it becomes an image.

    Checks: ``zarr.json`` describes a zarr v3 array of the announced shape, dtype, chunks and
    dims; the store holds exactly one file per chunk and nothing else (no symlinks, no
    leftovers); the last chunk decodes.

    Raises:
        StoreInvalid: naming the first problem found.

    """
    counts = grid(shape, chunks)
    found = 0
    for current, dirnames, filenames in os.walk(directory, followlinks=False):
        base = Path(current)
        for name in dirnames:
            if (base / name).is_symlink():
                raise StoreInvalid(f"the store holds a symlink: {name!r}")
        for name in filenames:
            path = base / name
            key = path.relative_to(directory).as_posix()
            if path.is_symlink() or not path.is_file():
                raise StoreInvalid(f"the store holds a link or special file: {key!r}")
            if not check_key(key, counts):
                raise StoreInvalid(f"the store holds an unexpected file {key!r}")
            if key != "zarr.json":
                found += 1
    expected = math.prod(counts)
    if found != expected:
        raise StoreInvalid(f"the store holds {found} chunk(s); {expected} expected")
    try:
        meta = json.loads((directory / "zarr.json").read_bytes())
    except (OSError, ValueError) as error:
        raise StoreInvalid(f"the store has no valid zarr.json: {error}") from None
    try:
        _check_metadata(meta, shape, chunks, dtype)
    except (TypeError, AttributeError, ValueError, KeyError) as error:  # a malformed document
        raise StoreInvalid(f"zarr.json is malformed: {type(error).__name__}: {error}") from None
    try:
        import zarr
        from zarr.storage import LocalStore

        array = zarr.open_array(LocalStore(directory, read_only=True), mode="r", zarr_format=3)
        last = tuple(slice((n - 1) * c, None) for n, c in zip(counts, chunks, strict=True))
        array[last]
    except Exception as error:
        raise StoreInvalid(f"the store cannot be read: {error}") from None


def render_thumbnail(directory: Path, shape: list[int], size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG of the max projection (over t and z) of the first channel, at most ``size`` px.

    At most about 64 planes are read (whole chunks along z, evenly spaced), so huge stacks stay
    cheap; intensities are stretched between the 0.5th and 99.5th percentile.
    """
    import io

    import numpy as np
    import zarr
    from PIL import Image
    from zarr.storage import LocalStore

    array = zarr.open_array(LocalStore(directory, read_only=True), mode="r", zarr_format=3)
    _, t, z, y, x = shape
    step = max(1, math.ceil(max(y, x) / size))
    depth = int(array.chunks[2])
    slabs = [(ti, z0) for ti in range(t) for z0 in range(0, z, depth)]  # whole chunks at once
    if len(slabs) * depth > _THUMBNAIL_MAX_PLANES:
        keep = max(1, _THUMBNAIL_MAX_PLANES // depth)
        picks = np.linspace(0, len(slabs) - 1, keep).round().astype(int)
        slabs = [slabs[i] for i in sorted(set(picks.tolist()))]
    projection: Any = None
    for ti, z0 in slabs:
        slab = np.asarray(array[0, ti, z0 : z0 + depth])[:, ::step, ::step]
        plane = slab.max(axis=0).astype(np.float64)
        projection = plane if projection is None else np.maximum(projection, plane)
    finite = projection[np.isfinite(projection)]
    low, high = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1
    scaled = np.clip((np.nan_to_num(projection, nan=low) - low) / (high - low), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((scaled * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
