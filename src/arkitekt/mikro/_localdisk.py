"""When a ``local`` path from the server may be used: the server's disk, seen from this machine.

A server names directories for the ``local`` datalayer (an upload grant's ``path``, an image's
``local_path``), and the client writes or reads them as the user. A hostile server could name
any directory, so a path is used only when all of these hold:

- the server is this machine (its mikro endpoint is a loopback URL);
- the claimed ``mikro`` configuration advertises the server's local root (``local_root``, an
  absolute directory that is neither ``/`` nor the user's home nor one of its parents);
- the path, with every symlink resolved, lies inside the resolved root;
- for a write, the directory exists and is empty (a fresh upload directory).

The resolved path is what the client then opens, so a symlink cannot lead it elsewhere after
the check (a process that can rename directories under the root between the check and the
write is out of reach of any check, and can write there itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from arkitekt.errors import LocalPathError
from arkitekt.protocol.hosts import is_loopback

__all__ = ["LocalDisk"]


@dataclass(frozen=True)
class LocalDisk:
    """The server's local datalayer root on this machine, or why there is none to trust.

    Attributes:
        root: the resolved root, or ``None`` when ``local`` paths must not be used.
        problem: why ``root`` is ``None`` (empty otherwise).

    """

    root: Path | None
    problem: str = ""

    @classmethod
    def of(cls, group: Mapping[str, Any], endpoint: str) -> LocalDisk:
        """The local root the ``mikro`` config ``group`` advertises, if it can be trusted."""
        host = httpx.URL(endpoint).host
        if not is_loopback(host):
            return cls(None, f"the server ({host}) is not this machine")
        raw = group.get("local_root")
        if not isinstance(raw, str) or not raw or "\0" in raw or not os.path.isabs(raw):
            return cls(
                None,
                "the server's configuration advertises no local datalayer root "
                f"(mikro.local_root is {str(raw)[:200]!r})",
            )
        root = Path(os.path.realpath(raw))
        home = Path(os.path.realpath(Path.home()))
        if root == Path(root.anchor) or root == home or root in home.parents:
            return cls(None, f"the advertised local root {raw!r} is too broad (/ or the home)")
        if not root.is_dir():
            return cls(None, f"the advertised local root {raw!r} is not a directory here")
        return cls(root)

    def check(self, path: Any, *, fresh: bool) -> Path:
        """``path`` resolved, if it may be used; ``fresh``: it must be an empty directory.

        Raises:
            LocalPathError: naming the path and why it is refused (nothing was touched).

        """
        shown = str(path)[:300]
        if self.root is None:
            raise LocalPathError(f"refusing the local path {shown!r}: {self.problem}")
        if not isinstance(path, str) or not path or "\0" in path or not os.path.isabs(path):
            raise LocalPathError(f"refusing the local path {shown!r}: not an absolute path")
        resolved = Path(os.path.realpath(path))
        if self.root not in resolved.parents:
            raise LocalPathError(
                f"refusing the local path {shown!r} (resolved: {str(resolved)[:300]!r}): it is "
                f"not inside the server's local root {str(self.root)!r}"
            )
        if not resolved.is_dir():
            raise LocalPathError(f"refusing the local path {shown!r}: not a directory here")
        if fresh:
            with os.scandir(resolved) as entries:
                if next(entries, None) is not None:
                    raise LocalPathError(
                        f"refusing the local path {shown!r}: an upload directory must be "
                        "empty, and this one is not (nothing was written to it)"
                    )
        return resolved
