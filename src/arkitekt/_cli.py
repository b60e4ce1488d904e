"""The ``arkitekt`` command line.

Client commands (``login``, ``logout``, ``whoami``) live here; the server's commands
(``server``, ``approve``, ``deny``, ``revoke``, ``token``) are added by
:mod:`arkitekt_server._cli` when the ``server`` extra is installed. Building the CLI imports
only typer and the command modules: each command imports what it needs when it runs.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from arkitekt._cli_account import register as register_account

__all__ = ["build", "main"]


def _version(value: bool) -> None:
    if value:
        import arkitekt

        typer.echo(f"arkitekt {arkitekt.__version__}")
        raise typer.Exit


def build() -> typer.Typer:
    """The ``arkitekt`` typer app with every command that is installed."""
    cli = typer.Typer(
        name="arkitekt",
        help="Connect bioimage apps to a lab backend: discovery, images, remote functions.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,  # plain help: rich's panels print `<bool>` after every flag
    )

    @cli.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        """Connect bioimage apps to a lab backend."""

    register_account(cli)
    for plugin in entry_points(group="arkitekt.cli"):
        plugin.load()(cli)
    return cli


def main() -> None:
    """Entry point of the ``arkitekt`` script."""
    build()()


if __name__ == "__main__":
    main()
