from __future__ import annotations

from typer.testing import CliRunner

import arkitekt
from arkitekt._cli import build

runner = CliRunner()


def test_help_lists_client_and_server_commands() -> None:
    result = runner.invoke(build(), ["--help"])
    assert result.exit_code == 0
    for command in ("login", "logout", "whoami", "server", "approve", "deny", "revoke", "token"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(build(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"arkitekt {arkitekt.__version__}"
