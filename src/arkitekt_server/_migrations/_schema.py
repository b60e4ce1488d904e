"""The schema the migrations must build: every table of every service, on one ``MetaData``."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]


def metadata() -> MetaData:
    """``Base.metadata`` with every service's tables registered (each service's package
    imports its models)."""
    from arkitekt_server import fakts, lok, mikro, rekuest  # noqa: F401  (registers the tables)
    from arkitekt_server._db import Base

    return Base.metadata
