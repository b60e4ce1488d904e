"""The name this project is installed under, and the install hints that name it.

The import packages are ``arkitekt`` and ``arkitekt_server`` (the names the classic Arkitekt
code imports); the distribution is ``arkitekt-lab``, because ``arkitekt`` on the public package
index is an unrelated project. Every hint to install something goes through :func:`pip_hint`,
so that none installs the other project.

Example:
    >>> pip_hint("server")
    "pip install 'arkitekt-lab[server]'"

"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "pip_hint"]

DISTRIBUTION = "arkitekt-lab"
"""The distribution name (``pip install arkitekt-lab``)."""


def pip_hint(extra: str | None = None) -> str:
    """The command that installs this project, with ``extra`` (``server``, ``files``) if given."""
    if extra is None:
        return f"pip install {DISTRIBUTION}"
    return f"pip install '{DISTRIBUTION}[{extra}]'"
