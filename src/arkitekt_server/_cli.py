"""Server commands of the ``arkitekt`` CLI: server (and server migrate), approve, deny, revoke,
token, clients, adopt-stores.

Plugged into ``arkitekt`` through the ``arkitekt.cli`` entry point group, when the ``server``
extra is installed. :func:`register` imports none of the server (FastAPI, uvicorn,
SQLAlchemy): each command imports what it needs when it runs, so ``arkitekt --help`` stays
quick. Commands other than ``server`` work on the server's database directly (``--database-url``,
or SQLite in ``--data-dir``), so they run while the server is up (SQLite in WAL mode allows it).
A database that cannot be used ends a command with one line naming its endpoint (never its
password) and exit code 3, as it stops the server from starting.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import signal
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from arkitekt_server._cli_common import (
    UNAVAILABLE_EXIT,
    operator_settings,
    ready_data_dir,
    refuse,
    settings_of,
    unavailable,
    with_db,
)

if TYPE_CHECKING:
    import socket

    from arkitekt_server._settings import ServerSettings

__all__ = ["register"]

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The server's data directory (default: per-user data dir)."),
]
Config = Annotated[
    Path | None, typer.Option("--config", help="A server YAML file (see config/server.yaml).")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE (default: SQLite in the data dir). "
        "Arguments are visible to every user of the machine (ps): give a URL with a password in "
        "the environment variable ARKITEKT_SERVER_DATABASE_URL or as database_url in the "
        "--config file (mode 0600) instead.",
        show_default=False,
    ),
]


def server(
    context: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000; 0: any free).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    auto_approve: Annotated[
        bool | None,
        typer.Option("--auto-approve/--no-auto-approve", help="Approve loopback apps at once."),
    ] = None,
    config: Config = None,
) -> None:
    """Run the arkitekt server (FastAPI on uvicorn); it migrates its database first."""
    if context.invoked_subcommand is not None:
        return
    from arkitekt_server._errors import PortInUseError, ServerStartError
    from arkitekt_server._listen import listening_socket

    settings = settings_of(
        config, host=host, port=port, data_dir=data_dir, database_url=database_url,
        auto_approve=auto_approve,
    )  # fmt: skip
    # Bound before anything is said, noted or migrated: a port in use ends here, in one line,
    # and port 0 is announced as the port the system chose.
    try:
        sock = listening_socket(settings.host, settings.port)
    except PortInUseError as error:
        refuse(f"{error}: choose another with --port (0: any free port)")
    except ServerStartError as error:
        refuse(f"{error}: choose another --host or --port")
    with sock:
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
        ready_data_dir(settings.data_dir)
        _serve(settings, sock, config, database_url)


def _serve(
    settings: ServerSettings, sock: socket.socket, config: Path | None, database_url: str | None
) -> None:
    """Announce the server, note it in its state file, and serve on ``sock`` until stopped."""
    import uvicorn

    from arkitekt_server._app import create_app
    from arkitekt_server._dburl import shown_url
    from arkitekt_server._logs import set_log_levels
    from arkitekt_server._running import announce, entry_of, withdraw

    # log_level is for the server's own loggers; every other one stays at WARNING (or above)
    level = max(logging.WARNING, logging.getLevelNamesMapping()[settings.log_level.upper()])
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    set_log_levels(settings.log_level)
    where = f"data in {settings.data_dir}"
    if settings.database_url is not None:
        where += f", database {shown_url(settings.database_url.get_secret_value())}"
    typer.echo(f"arkitekt server on http://{settings.host}:{settings.port} ({where})")
    _announce_operator_secret(settings)
    state = announce(settings.state_dir, entry_of(settings, config, database_url))
    # uvicorn re-raises SIGTERM after its shutdown; as SystemExit, the state file goes too
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            ws="websockets-sansio",
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its shutdown, as uvicorn.run
        pass
    finally:
        withdraw(state)
    if not server.started:  # its startup failed (and uvicorn logged why): as uvicorn.run
        sys.exit(UNAVAILABLE_EXIT)


def migrate(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: Config = None
) -> None:
    """Migrate the server's database to this version's schema (replicas may keep running)."""
    from arkitekt_server._db import Database, DatabaseUnavailableError
    from arkitekt_server._migrations import upgrade

    settings = settings_of(config, data_dir=data_dir, database_url=database_url)
    if settings.database_url is None:  # SQLite in the data directory
        ready_data_dir(settings.data_dir)
    database = Database.of(settings.database_url, settings.data_dir)  # opens no connection
    try:
        migrated = asyncio.run(upgrade(database.url))
    except DatabaseUnavailableError as error:
        raise unavailable(error) from None
    typer.echo(f"{database.endpoint}: {migrated}")


def _announce_operator_secret(settings: ServerSettings) -> None:
    """Say where the operator secret is; print the secret itself only to a terminal.

    Never to a logger, and never when stdout is a pipe or a file: a service manager writes
    stdout into its journal or a log file, where the secret would stay for anyone who reads it.
    """
    from arkitekt_server.fakts import operator_secret, operator_secret_file

    if settings.operator_secret is not None:
        typer.echo("operator secret for the approval page: the operator_secret setting")
        return
    secret = operator_secret(settings)  # made (mode 0600) on first start
    where = operator_secret_file(settings.data_dir)
    if sys.stdout.isatty():
        typer.echo(
            f"operator secret for the approval page: {secret}\n"
            f"  (kept in {where}, readable only by you)"
        )
    else:
        typer.echo(
            f"operator secret for the approval page: in {where} (mode 0600; not printed, as "
            f"this output is no terminal); read it with: cat {shlex.quote(str(where))}"
        )


def _decide(
    code: str, data_dir: Path | None, database_url: str | None, config: Path | None, *,
    approve: bool,
) -> None:  # fmt: skip
    from arkitekt_server import fakts

    settings = operator_settings(config, data_dir, database_url)
    row = with_db(settings, lambda s: fakts.decide(s, code, approve=approve))
    verb = "approved" if approve else "denied"
    typer.echo(f"{verb} {row.identifier}@{row.version}")


def approve(
    code: Annotated[str, typer.Argument(help="The device code the app printed.", metavar="CODE")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """Approve an app's device code."""
    _decide(code, data_dir, database_url, config, approve=True)


def deny(
    code: Annotated[str, typer.Argument(help="The device code the app printed.", metavar="CODE")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """Deny an app's device code."""
    _decide(code, data_dir, database_url, config, approve=False)


def revoke(
    client_id: Annotated[
        str | None, typer.Argument(help="A client id (see `clients`).", metavar="CLIENT_ID")
    ] = None,
    identifier: Annotated[
        str | None, typer.Option("--identifier", help="Revoke every approval of this app.")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """Revoke approvals: their claim tokens, credentials and bearer tokens stop working."""
    from arkitekt_server import fakts

    settings = operator_settings(config, data_dir, database_url)
    count = with_db(settings, lambda s: fakts.revoke(s, client_id=client_id, identifier=identifier))
    if count == 0:
        named = f"with client id {client_id!r}" if client_id else f"of the app {identifier!r}"
        refuse(f"no active approval {named}: `arkitekt clients` lists them")
    typer.echo(f"revoked {count} approval(s)")


CLIENTS_HEADER = ("CLIENT_ID", "APP", "GRANTED_VIA", "STATE")
"""The header row of ``arkitekt clients``: columns of single words, two spaces apart or more."""


def clients(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: Config = None
) -> None:
    """List approvals: client id, app (identifier@version), how granted, state."""
    from arkitekt_server import fakts

    settings = operator_settings(config, data_dir, database_url)
    rows = with_db(settings, fakts.list_clients)
    if not rows:
        typer.echo("no approvals yet: apps appear here once approved", err=True)
        return
    table = [CLIENTS_HEADER] + [
        (row.client_id, f"{row.identifier}@{row.version}", row.granted_via,
         "revoked" if row.revoked_at else "active")
        for row in rows
    ]  # fmt: skip
    widths = [max(len(line[column]) for line in table) for column in range(len(CLIENTS_HEADER))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


def token_create(
    identifier: Annotated[str, typer.Option("--identifier", help="The app's identifier.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Only this version (default: any).")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """Create a static token for CI and headless machines (use it as FAKTS_TOKEN)."""
    from arkitekt_server import fakts

    settings = operator_settings(config, data_dir, database_url)
    token = with_db(settings, lambda s: fakts.create_static_token(s, identifier, version))
    typer.echo(token)


def adopt_stores(
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="Move unknown stores aside instead of adopting.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """Register image stores the database does not know as images (server stopped)."""
    from arkitekt_server.mikro import adopt_command

    settings = operator_settings(config, data_dir, database_url, follow=False)
    typer.echo(
        with_db(settings, lambda s: adopt_command(s, settings.data_dir, quarantine=quarantine))
    )


SERVER_COMMANDS = ("server", "approve", "deny", "revoke", "clients", "token", "adopt-stores")
"""The commands this module adds (each says how to install the extra when it is missing)."""


def _needs_extra(name: str) -> Callable[..., None]:
    def missing(context: typer.Context) -> None:
        from arkitekt.protocol.distribution import pip_hint

        typer.echo(f"`arkitekt {name}` needs the server extra: {pip_hint('server')}", err=True)
        raise typer.Exit(1)

    missing.__doc__ = "(Needs the server extra; run it to see how to install it.)"
    return missing


class _Command(TyperCommand):
    """Usage lines as in man pages: ``approve [OPTIONS] CODE``, not typer's ``{CODE}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


def register(cli: typer.Typer) -> None:
    """Add the server's commands to the ``arkitekt`` CLI.

    Without the ``server`` extra (a library-only install) each command is still listed and
    answers in one line how to install the extra.
    """
    if find_spec("fastapi") is None:
        loose = {"ignore_unknown_options": True, "allow_extra_args": True}
        for name in SERVER_COMMANDS:
            cli.command(name, context_settings=loose, add_help_option=False)(_needs_extra(name))
        return
    servers = typer.Typer(invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)
    servers.callback()(server)
    servers.command("migrate")(migrate)
    cli.add_typer(servers, name="server")
    cli.command("approve", cls=_Command)(approve)
    cli.command("deny", cls=_Command)(deny)
    cli.command("revoke", cls=_Command)(revoke)
    cli.command("clients")(clients)
    cli.command("adopt-stores")(adopt_stores)
    tokens = typer.Typer(
        help="Static tokens for CI and headless machines.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    tokens.command("create")(token_create)
    cli.add_typer(tokens, name="token")
