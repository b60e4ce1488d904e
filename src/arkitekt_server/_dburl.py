"""Database URLs: which are accepted, how they are spelled for SQLAlchemy, how they are shown.

A database URL may hold a password, in its user part or as a query parameter
(``?password=...``, ``?sslpassword=...``). It is kept in a :class:`pydantic.SecretStr` by the
settings and shown only through :func:`shown_url` (the password as ``***``) or :func:`endpoint`
(``host:port/database``): every message, log line and repr of the server uses one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url

__all__ = [
    "POSTGRES_DRIVER",
    "SQLITE_DRIVER",
    "endpoint",
    "holds_password",
    "normalize_url",
    "shown_url",
    "sqlite_file",
    "sqlite_url",
]

POSTGRES_DRIVER = "postgresql+asyncpg"
SQLITE_DRIVER = "sqlite+aiosqlite"
_DRIVERS = {
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file, for the aiosqlite driver."""
    return f"{SQLITE_DRIVER}:///{path}"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (``None`` for another database, or SQLite in memory).

    Example:
        >>> sqlite_file("sqlite:////srv/arkitekt/db.sqlite3")
        PosixPath('/srv/arkitekt/db.sqlite3')
        >>> sqlite_file("postgresql://me@db/arkitekt") is None
        True

    """
    parsed = _parse(url.strip())
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except Exception:  # its message repeats the whole URL, password included
        raise ValueError(
            "is not a database URL; write postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(special characters in the password %-encoded) or sqlite:///PATH"
        ) from None


def normalize_url(url: str) -> str:
    """``url`` with the driver the server uses: ``postgresql://`` becomes ``postgresql+asyncpg://``.

    Example:
        >>> normalize_url("postgres://me:pw@db.example:5432/arkitekt")
        'postgresql+asyncpg://me:pw@db.example:5432/arkitekt'

    Raises:
        ValueError: not a URL, or a scheme other than PostgreSQL (asyncpg) or SQLite (aiosqlite);
            the message never holds the password.
    """
    parsed = _parse(url.strip())
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"the scheme {parsed.drivername!r} is not supported; use postgresql:// (or "
            "postgresql+asyncpg://) for PostgreSQL, or sqlite:///PATH"
        )
    if "@" in (parsed.host or ""):  # the password held an "@": part of it would show as host
        raise ValueError("holds an unescaped '@' in its user or password; %-encode it as %40")
    parsed = parsed.set(drivername=driver)
    if driver == POSTGRES_DRIVER and not parsed.database:
        raise ValueError("names no database; add it after the host: postgresql://HOST:PORT/NAME")
    if driver == SQLITE_DRIVER and not parsed.database:
        raise ValueError("names no file; write sqlite:///PATH (an in-memory database is lost)")
    return parsed.render_as_string(hide_password=False)


_SECRET_PARAMETER = re.compile(r"pass|secret|token", re.IGNORECASE)
"""Query parameters whose values are hidden: ``password``, ``sslpassword``, ``passfile``, ..."""
_HIDDEN = "***"


def shown_url(url: str) -> str:
    """``url`` as it may appear in a message or a log: every password replaced by ``***``.

    Both the password of the user part and secret query parameters (``password``,
    ``sslpassword``, ``passfile``, anything naming a secret or token) are hidden.

    Example:
        >>> shown_url("postgresql+asyncpg://me:pw@db.example:5432/arkitekt")
        'postgresql+asyncpg://me:***@db.example:5432/arkitekt'
        >>> shown_url("postgresql://me@db.example/arkitekt?password=pw&sslmode=require")
        'postgresql://me@db.example/arkitekt?password=***&sslmode=require'

    """
    try:
        parsed = make_url(url)
        hidden = {name: _HIDDEN for name in parsed.query if _SECRET_PARAMETER.search(name)}
        shown = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    except Exception:
        return "<an unreadable database URL>"
    return shown.replace("%2A%2A%2A", _HIDDEN)  # the query's *** comes back %-encoded


def holds_password(url: str) -> bool:
    """Whether ``url`` holds a password (in its user part or a secret query parameter).

    Example:
        >>> holds_password("postgresql://me@db/ark?password=pw"), holds_password("sqlite:///a")
        (True, False)

    """
    try:
        parsed = make_url(url)
    except Exception:
        return True  # unreadable: assume the worst
    return bool(parsed.password) or any(_SECRET_PARAMETER.search(name) for name in parsed.query)


def endpoint(url: str) -> str:
    """Where ``url`` points, for messages: ``host:port/database``, or the SQLite file's path.

    Example:
        >>> endpoint("postgresql+asyncpg://me:pw@db.example/arkitekt")
        'db.example:5432/arkitekt'

    """
    try:
        parsed = make_url(url)
    except Exception:
        return "<an unreadable database URL>"
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    host = parsed.host or parsed.query.get("host") or "localhost"  # ?host=/run/postgresql
    return f"{host}:{parsed.port or 5432}/{parsed.database}"
