"""The claim-token cache: one small JSON file per app and URL, per user, mode 0600.

The claim token is the only secret a client keeps. Files are keyed by the app's identifier,
version and the discovery URL (in its one spelling, :func:`~arkitekt.protocol.hosts.discovery_url`,
as the settings hold it: ``http://h:8000/`` and ``HTTP://H:8000`` share one file), written
atomically (temporary file, then rename), and read
defensively: a corrupt, oversized, foreign or too-open file is a miss (ignored with a warning,
never trusted, and replaced by the next approval). Something that is not a file where the file
should be (a directory, a symlink, a socket), or a cache directory that cannot be used, is an
operator's mistake: a :class:`~arkitekt.errors.ConfigError` names the path.
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

from arkitekt.errors import ConfigError

__all__ = ["CacheEntry", "TokenCache", "default_cache_dir"]

log = logging.getLogger("arkitekt.fakts")

_FORMAT = 1
_MAX_BYTES = 64 << 10  # an entry is ~300 bytes; anything much larger is not ours


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
        url: the discovery URL, as ``Settings.url`` holds it (see
            :func:`~arkitekt.protocol.hosts.discovery_url`).

    """

    def __init__(self, directory: Path, identifier: str, version: str, url: str) -> None:
        self.directory = directory
        self._key = {"identifier": identifier, "version": version, "url": url}
        digest = hashlib.sha256("\0".join((identifier, version, url)).encode()).hexdigest()
        self.path = directory / f"{digest[:32]}.json"

    def _legacy(self) -> TokenCache | None:
        """The entry of the same URL with a trailing slash, from before URLs had one spelling.

        Entries were keyed by the URL as typed; the spelling that differs only by a trailing
        slash (``FAKTS_URL=http://h:8000/``) is the one met in practice. Other spellings (case,
        a default port) cannot be derived back from the one spelling and are asked again once.
        """
        key = self._key
        if key["url"].endswith("/"):
            return None
        return TokenCache(self.directory, key["identifier"], key["version"], key["url"] + "/")

    def load(self) -> CacheEntry | None:
        """The cached entry, or ``None`` if there is none or it cannot be trusted.

        An entry found under the URL's former spelling (a trailing slash) is moved to this
        one's file.

        Raises:
            ConfigError: the path holds something other than a file, or cannot be reached.

        """
        entry = self._load()
        legacy = self._legacy()
        if entry is not None or legacy is None or self.path.exists():
            return entry
        entry = legacy._load()
        if entry is not None:
            try:
                self.store(entry)
                legacy.delete()
            except ConfigError as error:  # still usable from the old file
                log.warning("could not move the token cache entry %s: %s", legacy.path, error)
        return entry

    def _load(self) -> CacheEntry | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:  # a symlink (ELOOP), a directory component that is a file...
            self._check_kind()
            raise self._unusable(self.path, error) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise self._not_a_file()
            if info.st_uid != os.getuid():
                log.warning("ignoring the token cache %s: not a file of this user", self.path)
                return None
            if info.st_mode & 0o077:
                log.warning("ignoring the token cache %s: readable by others", self.path)
                return None
            raw = os.read(fd, _MAX_BYTES + 1)
        finally:
            os.close(fd)
        try:
            if len(raw) > _MAX_BYTES:
                raise ValueError(f"larger than {_MAX_BYTES} bytes")
            return self._parse(raw)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            log.warning("ignoring the corrupt token cache %s: %s", self.path, error)
            return None

    def _parse(self, raw: bytes) -> CacheEntry:
        data = json.loads(raw.decode("utf-8"))
        if data.get("format") != _FORMAT or data.get("key") != self._key:
            raise ValueError("it belongs to another app, version or URL")
        base_url, token = data["base_url"], data["token"]
        if not isinstance(token, str) or not token or not isinstance(base_url, str):
            raise ValueError("its token or base_url is not a string")
        if not base_url.startswith(("http://", "https://")) or not base_url.endswith("/"):
            raise ValueError(f"its base_url {base_url[:100]!r} is not an http(s) fakts root")
        return CacheEntry(base_url=base_url, token=token)

    def _check_kind(self) -> None:
        """Raise unless the entry's path is a regular file or absent."""
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._unusable(self.path, error) from None
        if not stat.S_ISREG(info.st_mode):
            raise self._not_a_file()

    def _not_a_file(self) -> ConfigError:
        return ConfigError(
            f"the token cache entry {self.path} is not a regular file (a directory or link is "
            "in its place); remove it (arkitekt keeps only files there), or set cache_dir "
            "(ARKITEKT_CACHE_DIR) to another directory"
        )

    @staticmethod
    def _unusable(path: Path, error: OSError) -> ConfigError:
        return ConfigError(
            f"the token cache {path} cannot be used ({error.strerror or error}); fix its "
            "permissions or set cache_dir (ARKITEKT_CACHE_DIR) to a directory this user owns"
        )

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` atomically with mode 0600.

        Raises:
            ConfigError: the cache directory cannot be created or written, or a directory is
                where the entry's file should be.

        """
        self._check_kind()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        except OSError as error:
            raise self._unusable(self.directory, error) from None
        payload = {"format": _FORMAT, "key": self._key, "base_url": entry.base_url}
        payload["token"] = entry.token
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(error, OSError):
                raise self._unusable(self.path, error) from None
            raise

    def delete(self) -> None:
        """Forget the entry (logout, or the server no longer accepts it).

        An entry under the URL's former spelling (a trailing slash) is forgotten too.

        Raises:
            ConfigError: something other than a file is in the entry's place.

        """
        if (legacy := self._legacy()) is not None:
            legacy.delete()
        self._check_kind()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise self._unusable(self.path, error) from None
