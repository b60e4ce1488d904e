"""What the server's commands share: their settings, the deployment an operator command acts
on (the one named, else the ``arkitekt server`` running here), and a session of its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from arkitekt_server._settings import ServerSettings

__all__ = [
    "UNAVAILABLE_EXIT",
    "operator_settings",
    "ready_data_dir",
    "refuse",
    "settings_of",
    "unavailable",
    "with_db",
]

T = TypeVar("T")

UNAVAILABLE_EXIT = 3
"""Exit code when the database cannot be used (as uvicorn's for a refused startup)."""


def settings_of(config: Path | None, **overrides: object) -> ServerSettings:
    from arkitekt_server._dburl import holds_password
    from arkitekt_server._settings import ServerConfigError, load_server_settings

    url = overrides.get("database_url")
    if isinstance(url, str) and holds_password(url):
        typer.secho(
            "warning: --database-url holds a password, which every user of this machine can "
            "read (ps); give it in ARKITEKT_SERVER_DATABASE_URL or as database_url in the "
            "--config file (mode 0600) instead",
            fg=typer.colors.YELLOW,
            err=True,
        )

    try:
        return load_server_settings(config, **overrides)
    except ServerConfigError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


_POINTERS = ("DATA_DIR", "DATABASE_URL", "CONFIG")
"""Settings (as ``ARKITEKT_SERVER_<NAME>``) that name a deployment explicitly."""


def operator_settings(
    config: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    *,
    follow: bool = True,
) -> ServerSettings:
    """The settings of the deployment an operator command acts on, said on stderr.

    Named explicitly (an option, or its environment variable): that one. Else, with
    ``follow``, the one ``arkitekt server`` running on this machine (see
    :mod:`arkitekt_server._running`); with several running, the command stops and lists them;
    with none, the default data directory.
    """
    from arkitekt_server._running import DeploymentChoiceError, database_shown, the_running
    from arkitekt_server._settings import ENV_PREFIX

    named = any((config, data_dir, database_url)) or any(
        os.environ.get(ENV_PREFIX + name) for name in _POINTERS
    )
    settings = settings_of(config, data_dir=data_dir, database_url=database_url)
    if follow and not named:
        try:
            server = the_running(settings.state_dir)
        except DeploymentChoiceError as error:
            typer.secho(str(error), fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        if server is not None:
            found = settings_of(
                Path(server.config) if server.config else None, data_dir=Path(server.data_dir)
            )
            if database_shown(found) != server.database:  # its config changed since it started
                refuse(
                    f"{server.describe()} runs on the database {server.database}, but its "
                    f"settings now name {database_shown(found)}; name the deployment "
                    "(--data-dir, --database-url or --config)"
                )
            typer.echo(
                f"acting on {server.describe()}: the database {database_shown(found)}", err=True
            )
            return found
    alone = "" if named or not follow else " (no arkitekt server runs on this machine)"
    typer.echo(f"acting on the database {database_shown(settings)}{alone}", err=True)
    return settings


def ready_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (private to this user), or end in one line saying why it cannot be one.

    A path that is a file, or lies under a file, or where this user may not write.
    """
    from arkitekt_server._db import private_dir

    try:
        private_dir(data_dir)
    except OSError as error:
        refuse(
            f"the data directory {data_dir} cannot be used: {_why_not(data_dir, error)}; "
            "choose another with --data-dir"
        )


def _why_not(data_dir: Path, error: OSError) -> str:
    for path in (data_dir, *data_dir.parents):
        with contextlib.suppress(OSError):  # a folder we may not look into: say the error
            if path.exists() and not path.is_dir():
                return "it is a file" if path == data_dir else f"{path} is a file, not a folder"
    return (error.strerror or str(error)).lower()


def unavailable(error: Exception) -> typer.Exit:
    typer.secho(str(error), fg=typer.colors.RED, err=True)
    return typer.Exit(UNAVAILABLE_EXIT)


def with_db(settings: ServerSettings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in a session of the server's existing, up-to-date database.

    An operator command never creates a database or changes its schema: pointed at a missing
    SQLite file, a database without the arkitekt schema, or one at another revision than this
    version's, it ends (exit 1) saying so.
    """
    from arkitekt_server._db import (
        Database,
        DatabaseUnavailableError,
        ValueRefusedError,
        database_file,
    )
    from arkitekt_server._dburl import sqlite_file
    from arkitekt_server._migrations import head, revision_of
    from arkitekt_server._running import database_shown
    from arkitekt_server.fakts import FaktsError

    url = settings.database_url.get_secret_value() if settings.database_url else None
    file = database_file(settings.data_dir) if url is None else sqlite_file(url)
    if file is not None and not file.is_file():
        refuse(
            f"no arkitekt database at {file}: start the server first, or pass the --data-dir "
            "(or --database-url, --config) the server runs with"
        )

    async def run() -> T:
        database = Database.of(settings.database_url, settings.data_dir)
        try:
            found = await revision_of(database.url)
            if found != head():
                refuse(
                    f"the database {database_shown(settings)} "
                    + (
                        "has no arkitekt schema: start the server on it first"
                        if found is None
                        else f"is at schema revision {found}, this version needs {head()}: "
                        "run `arkitekt server migrate` (or the arkitekt version the server runs)"
                    )
                )
            async with database.sessions() as session:
                return await work(session)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except (FaktsError, ValueRefusedError) as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except DatabaseUnavailableError as error:
        raise unavailable(error) from None


def refuse(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)
