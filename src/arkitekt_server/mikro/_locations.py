"""Where one zarr store's keys are: a directory on the server's disk, or a prefix in the bucket.

Verification, thumbnails, the http read path and the sweeper work on a :class:`Location`, so
each check exists once for both. Every method blocks: call it in a worker thread (the zarr
store of :meth:`Location.zarr_store` is async, as zarr wants it).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zarr.abc.store import Store

from arkitekt.protocol.text import echo
from arkitekt_server._errors import ArkitektServerError

__all__ = ["BucketLocation", "DiskLocation", "Location", "StoreInvalidError"]

_DELETE_BATCH = 1000  # S3 deletes at most 1000 keys per request


class StoreInvalidError(ArkitektServerError):
    """The store does not hold what the grant announced (or holds something it must not)."""


class Location(ABC):
    """One store's keys (see the module docstring)."""

    concurrency = 1
    """How many keys verification reads at once (a bucket answers requests in parallel)."""

    @abstractmethod
    def entries(self) -> Iterator[tuple[str, int]]:
        """Every key with its size in bytes, streamed (stop early: nothing more is listed).

        Raises:
            StoreInvalidError: the store holds something that is no plain key (a symlink).

        """

    @abstractmethod
    def read(self, key: str, limit: int) -> bytes | None:
        """The value of ``key``, or ``None`` when it is larger than ``limit`` (not read then).

        Raises:
            FileNotFoundError: no such key.
            OSError: the key cannot be read.

        """

    @abstractmethod
    def head(self, key: str, size: int) -> bytes:
        """The first ``size`` bytes of ``key`` (``size`` at most its length)."""

    @abstractmethod
    def zarr_store(self) -> Store:
        """A read-only zarr store of these keys."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether any key is there."""

    @abstractmethod
    def remove(self) -> None:
        """Delete every key (nothing happens when there is none)."""


class DiskLocation(Location):
    """A store in a directory of the server's disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __str__(self) -> str:
        return str(self.directory)

    def entries(self) -> Iterator[tuple[str, int]]:
        """Every file below the directory (symlinks and special files refused)."""
        for current, dirnames, filenames in os.walk(self.directory, followlinks=False):
            base = Path(current)
            for name in dirnames:
                if (base / name).is_symlink():
                    raise StoreInvalidError(f"the store holds a symlink: {echo(name)}")
            for name in filenames:
                path = base / name
                key = path.relative_to(self.directory).as_posix()
                if path.is_symlink() or not path.is_file():
                    raise StoreInvalidError(f"the store holds a link or special file: {echo(key)}")
                yield key, path.stat().st_size

    def read(self, key: str, limit: int) -> bytes | None:
        """The file's bytes (its size checked on the open file before reading)."""
        with (self.directory / key).open("rb") as source:
            if os.fstat(source.fileno()).st_size > limit:
                return None
            return source.read()

    def head(self, key: str, size: int) -> bytes:
        """The file's first bytes."""
        with (self.directory / key).open("rb") as source:
            return source.read(size)

    def zarr_store(self) -> Store:
        """A read-only ``LocalStore`` of the directory."""
        from zarr.storage import LocalStore

        return LocalStore(self.directory, read_only=True)

    def exists(self) -> bool:
        """Whether the directory exists."""
        return self.directory.exists()

    def remove(self) -> None:
        """Remove the directory tree (or a file)."""
        path = self.directory
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class BucketLocation(Location):
    """A store below a prefix of the server's bucket (an obstore ``S3Store`` rooted there).

    Args:
        store: the obstore store, its prefix the store root.
        name: the store root as ``s3://bucket/prefix`` (for messages and logs).

    """

    concurrency = 16

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name

    def __str__(self) -> str:
        return self.name

    def entries(self) -> Iterator[tuple[str, int]]:
        """Every key below the prefix, listed a page at a time (a bucket holds no links)."""
        for batch in self._pages():
            for meta in batch:
                yield meta["path"], int(meta["size"])

    def _pages(self) -> Iterator[list[Any]]:
        import obstore

        yield from obstore.list(self.store, chunk_size=_DELETE_BATCH)

    def read(self, key: str, limit: int) -> bytes | None:
        """The object's bytes; its size comes with the answer's headers, before the body."""
        import obstore

        result = obstore.get(self.store, key)
        if int(result.meta["size"]) > limit:
            return None  # the body is dropped unread
        return bytes(result.bytes())

    def head(self, key: str, size: int) -> bytes:
        """A range request for the first bytes."""
        import obstore

        if size <= 0:
            return b""
        return bytes(obstore.get_range(self.store, key, start=0, length=size))

    def zarr_store(self) -> Store:
        """zarr's read-only ``ObjectStore`` on the obstore store."""
        from zarr.storage import ObjectStore

        return ObjectStore(self.store, read_only=True)

    def exists(self) -> bool:
        """Whether any key is below the prefix."""
        import obstore

        return any(batch for batch in obstore.list(self.store, chunk_size=1))

    def remove(self) -> None:
        """Delete every key below the prefix, a listed page at a time (one pass: a key written
        meanwhile is the sweep's, which goes on until the prefix's credentials lapsed)."""
        import obstore

        for batch in self._pages():
            if batch:
                obstore.delete(self.store, [meta["path"] for meta in batch])
