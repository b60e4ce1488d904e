"""``arkitekt login``, ``logout`` and ``whoami``: an app's approval, from a terminal.

Building the CLI imports none of the app's machinery (container, services, httpx): each
command imports what it needs when it runs, so ``arkitekt --help`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from arkitekt.errors import ArkitektError, GrantError

if TYPE_CHECKING:
    from arkitekt._app import App
    from arkitekt.protocol.fakts import UserInfo

__all__ = ["register"]

Url = Annotated[
    str | None, typer.Option("--url", help="Server URL (default: FAKTS_URL, then settings).")
]
Identifier = Annotated[
    str,
    typer.Option(
        "--identifier",
        help="The app to log in as (approvals are per app; default: the CLI's own).",
    ),
]
OfApp = Annotated[
    str,
    typer.Option(
        "--identifier",
        help="The app whose approval this is, as in easy('my-app') (default: the CLI's own).",
    ),
]
Version = Annotated[str, typer.Option("--version", help="The app's version.")]

_CLI_APP = "arkitekt-cli"


async def _userinfo(app: App) -> UserInfo:
    from arkitekt.transport import awhoami

    return await awhoami()


def _app(identifier: str, version: str, url: str | None, headless: bool | None) -> App:
    from arkitekt._declare import easy

    try:
        return easy(identifier, version, url=url, headless=headless)
    except ArkitektError as error:  # a bad --url or setting: its message, no traceback
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _run(app: App, work: Any) -> Any:
    try:
        with app:
            return app.app_slot.scope.bridge.call(work, app)
    except ArkitektError as error:
        _fail(error)


def _fail(error: ArkitektError) -> NoReturn:
    typer.secho(str(error), fg=typer.colors.RED, err=True)
    raise typer.Exit(1) from None


def login(
    url: Url = None,
    identifier: Identifier = _CLI_APP,
    version: Version = "0.1.0",
    headless: Annotated[bool, typer.Option(help="Print the approval link only.")] = False,
) -> None:
    """Get an app approved now, so that scripts using it start without asking."""
    app = _app(identifier, version, url, headless or None)
    info: UserInfo = _run(app, _userinfo)
    typer.echo(
        f"logged in to {info.deployment_name} as {info.identifier}@{info.version} "
        f"(client {info.client_id}); the approval is cached at {app.fakts.cache.path}"
    )


def _not_logged_in(identifier: str, version: str, url: str) -> str:
    """The line for an app without an approval here (naming ``--identifier`` for the CLI's own)."""
    if identifier == _CLI_APP:
        return (
            f"the CLI's own identity ({identifier}@{version}) is not logged in at {url}; "
            "for an app's approval, name the app: --identifier my-app [--version 1.0]"
        )
    return f"{identifier}@{version} is not logged in at {url}"


def whoami(url: Url = None, identifier: OfApp = _CLI_APP, version: Version = "0.1.0") -> None:
    """Show which approval an app has (never asks for a new one)."""
    app = _app(identifier, version, url, True)
    if app.fakts.cache.load() is None and app.settings.token is None:
        typer.echo(_not_logged_in(identifier, version, app.settings.url))
        raise typer.Exit(1)
    info: UserInfo = _run(app, _userinfo)
    typer.echo(
        f"{info.identifier}@{info.version} at {info.deployment_name} (client {info.client_id}, "
        f"scopes: {', '.join(info.scopes) or 'none'})"
    )


async def _revoke(app: App) -> None:
    transport = await app.container.transport()
    lok = await transport.agroup("lok")
    response = await transport.client.post(str(lok["base_url"]).rstrip("/") + "/revoke/")
    if response.is_error:
        raise GrantError(f"the server refused the logout: HTTP {response.status_code}")


def logout(url: Url = None, identifier: OfApp = _CLI_APP, version: Version = "0.1.0") -> None:
    """Revoke an app's approval on the server and forget it here."""
    from arkitekt._cli_grant import CachedApproval

    app = _app(identifier, version, url, True)
    if app.fakts.cache.load() is None:
        typer.echo(_not_logged_in(identifier, version, app.settings.url))
        return
    cached = CachedApproval()
    app.fakts.grant = cached
    try:
        with app:
            app.app_slot.scope.bridge.call(_revoke, app)
    except GrantError as error:
        if not cached.refused:
            _fail(error)
        typer.echo(
            f"{identifier}@{version} was no longer logged in at {app.settings.url} ({error}); "
            "its approval is forgotten here"
        )
        return
    except ArkitektError as error:
        _fail(error)
    finally:
        app.fakts.logout()
    typer.echo(f"logged out {identifier}@{version}")


def register(cli: typer.Typer) -> None:
    """Add the account commands to the ``arkitekt`` CLI."""
    cli.command("login")(login)
    cli.command("logout")(logout)
    cli.command("whoami")(whoami)
