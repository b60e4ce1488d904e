from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import arkitekt
from arkitekt._cli import build
from arkitekt.protocol.distribution import pip_hint
from arkitekt_server import EmbeddedServer
from tests.helpers import database_args

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


def test_help_shows_no_type_placeholder_after_flags() -> None:
    for command in ([], ["whoami"], ["login"], ["server"]):
        result = runner.invoke(build(), [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, (command, result.output)


def test_whoami_and_logout_help_do_not_say_log_in() -> None:
    for command in ("whoami", "logout"):
        result = runner.invoke(build(), [command, "--help"])
        assert "The app whose approval this is" in result.output, result.output
        assert "to log in as" not in result.output


def test_whoami_of_the_cli_itself_names_the_identifier_option(tmp_path: Path) -> None:
    env = {"ARKITEKT_CACHE_DIR": str(tmp_path), "FAKTS_URL": "http://127.0.0.1:9"}
    result = runner.invoke(build(), ["whoami"], env=env)
    assert result.exit_code == 1
    assert "the CLI's own identity (arkitekt-cli@0.1.0) is not logged in" in result.output
    assert "--identifier my-app" in result.output


def _python_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which ``module`` cannot be imported.

    ``sys.modules[name] = None`` makes ``import`` raise and ``find_spec`` answer None: what a
    library-only install (no server extra) looks like.
    """
    code = f"import sys; sys.modules[{module!r}] = None\n{code}"
    paths = [str(Path(arkitekt.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def _cli_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter in which ``module`` cannot be imported."""
    code = f"sys.argv = ['arkitekt', *{args!r}]\nfrom arkitekt._cli import main\nmain()"
    return _python_without(module, code)


def test_a_library_only_install_runs_the_client_commands() -> None:
    helped = _cli_without("fastapi", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "whoami" in helped.stdout
    assert "server" in helped.stdout  # listed, saying it needs the extra
    version = _cli_without("fastapi", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"arkitekt {arkitekt.__version__}"


@pytest.mark.parametrize("command", ["server", "approve", "token"])
def test_a_library_only_install_says_how_to_get_the_server(command: str) -> None:
    result = _cli_without("fastapi", command, "--port", "9")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"`arkitekt {command}` needs the server extra: pip install 'arkitekt-lab[server]'"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["uvicorn", "fastapi"])
def test_a_library_only_install_says_how_to_get_the_embedded_server(module: str) -> None:
    code = (
        "try:\n    from arkitekt_server import EmbeddedServer\n"
        "except ModuleNotFoundError as error:\n    print(type(error).__name__, error)\n"
    )
    result = _python_without(module, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"ServerExtraMissingError arkitekt_server.EmbeddedServer needs the server extra ({module} "
        f"is not installed): {pip_hint('server')}"
    )


@pytest.mark.sqlite_only("the CLI's wording: no query differs by backend")
def test_logout_of_an_approval_the_server_revoked_asks_for_none(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    identifier = f"gone-{uuid.uuid4().hex[:8]}"
    env = {"ARKITEKT_CACHE_DIR": str(tmp_path), "FAKTS_URL": server.url}
    login = runner.invoke(build(), ["login", "--identifier", identifier, "--headless"], env=env)
    assert login.exit_code == 0, login.output
    revoked = runner.invoke(build(), ["revoke", "--identifier", identifier, *database_args(server)])
    assert revoked.exit_code == 0, revoked.output
    logout = runner.invoke(build(), ["logout", "--identifier", identifier], env=env)
    assert logout.exit_code == 0, logout.output
    assert logout.stdout.startswith(
        f"{identifier}@0.1.0 was no longer logged in at {server.url} (the server refused"
    ), logout.output
    assert "its approval is forgotten here" in logout.stdout
    # it asked for no new approval (the server auto-approves: it would have been given one)
    listed = runner.invoke(build(), ["clients", *database_args(server)])
    assert len([line for line in listed.stdout.splitlines() if f" {identifier}@" in line]) == 1
    again = runner.invoke(build(), ["logout", "--identifier", identifier], env=env)
    assert again.exit_code == 0
    assert again.stdout.strip() == f"{identifier}@0.1.0 is not logged in at {server.url}"
