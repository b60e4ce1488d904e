"""The claim-token cache: one small JSON file per app and URL, per user, mode 0600.

The claim token is the only secret a client keeps. Files are keyed by the app's identifier,
version and the discovery URL, written atomically (temporary file, then rename), and read
defensively: a corrupt, foreign or too-open file is ignored with a warning, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["CacheEntry", "TokenCache", "default_cache_dir"]

log = logging.getLogger("arkitekt.fakts")

_FORMAT = 1


def default_cache_dir() -> Path:
    """The per-user directory of claim tokens."""
    return platformdirs.user_state_path("arkitekt") / "fakts"


@dataclass(frozen=True)
class CacheEntry:
    """A cached grant: which server root it is for and the claim token."""

    base_url: str
    token: str


class TokenCache:
    """Claim tokens of one app (identifier and version) for one discovery URL.

    Args:
        directory: where the files live (created with mode 0700).
        identifier: the app's identifier.
        version: the app's version.
        url: the discovery URL as configured.

    """

    def __init__(self, directory: Path, identifier: str, version: str, url: str) -> None:
        self.directory = directory
        self._key = {"identifier": identifier, "version": version, "url": url}
        digest = hashlib.sha256("\0".join((identifier, version, url)).encode()).hexdigest()
        self.path = directory / f"{digest[:32]}.json"

    def load(self) -> CacheEntry | None:
        """The cached entry, or ``None`` if there is none or it cannot be trusted."""
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("ignoring the token cache %s: %s", self.path, error)
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            log.warning("ignoring the token cache %s: not a file of this user", self.path)
            return None
        if info.st_mode & 0o077:
            log.warning("ignoring the token cache %s: readable by others", self.path)
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT or data.get("key") != self._key:
                raise ValueError("it belongs to another app, version or URL")
            entry = CacheEntry(base_url=str(data["base_url"]), token=str(data["token"]))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("ignoring the corrupt token cache %s: %s", self.path, error)
            return None
        return entry

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` atomically with mode 0600."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {"format": _FORMAT, "key": self._key, "base_url": entry.base_url}
        payload["token"] = entry.token
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self) -> None:
        """Forget the entry (logout, or the server no longer accepts it)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
