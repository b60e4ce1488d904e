"""Every command the pages show exists, with the options they name.

``sh`` blocks and the prose's inline code are read for ``arkitekt ...`` (each command path must
exist and its ``--help`` succeed; each ``--option`` named must be one of that command's),
``make`` targets, ``python examples/...`` scripts, ``-m bench ...`` benchmarks and
``pip install -e ".[extra]"`` extras.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import Any

import typer
from typer.testing import CliRunner

from arkitekt._cli import build
from tests.docs.markdown import ROOT, blocks, inline_commands, pages

# Inline code that starts with "arkitekt " but is no command of this CLI.
NOT_COMMANDS = {
    "arkitekt syncify",  # performance.md: a benchmark case
    "arkitekt Bridge.call",  # performance.md: a benchmark case
    "arkitekt @inject",  # performance.md: a benchmark case
    "arkitekt run dev",  # classic.md: the classic client's command, mapped to ours
}
SHELLS = {"sh", "bash", "console", "shell"}


@dataclass(frozen=True)
class Shown:
    """One command line shown on a page."""

    where: str
    tokens: tuple[str, ...]


def _tokens(line: str) -> list[str]:
    try:
        found = shlex.split(line, comments=True)
    except ValueError:  # an open quote continued on the next line
        found = line.split("#", 1)[0].split()
    return [token.strip("[]") for token in found if token.strip("[]")]


def _segments(code: str) -> list[str]:
    """The simple commands of a shell block (continued lines joined; split at && ; |)."""
    joined = code.replace("\\\n", " ")
    return [part for line in joined.splitlines() for part in re.split(r"&&|;|\|", line)]


def _shown() -> list[Shown]:
    found = []
    for page in pages():
        name = page.relative_to(ROOT)
        for block in blocks(page):
            if block.lang in SHELLS:
                for segment in _segments(block.code):
                    if tokens := _tokens(segment):
                        found.append(Shown(f"{name}:{block.line}", tuple(tokens)))
        for line, text in [*inline_commands(page, "arkitekt"), *inline_commands(page, "make")]:
            if text not in NOT_COMMANDS:
                found.append(Shown(f"{name}:{line}", tuple(_tokens(text))))
    return found


def _arkitekt_lines() -> list[Shown]:
    """The ``arkitekt ...`` command lines: as a command, or run in a container (``exec X``)."""
    lines = []
    for shown in _shown():
        tokens = shown.tokens
        for index, token in enumerate(tokens):
            if token == "arkitekt" and (index == 0 or tokens[index - 2 : index - 1] == ("exec",)):
                lines.append(Shown(shown.where, tokens[index + 1 :]))
                break
    return lines


# typer vendors its own click: commands and groups are told apart by what they hold.
def _resolve(root: Any, args: tuple[str, ...]) -> tuple[list[str], Any]:
    """The command path the arguments name, and the command at its end."""
    path: list[str] = []
    command = root
    for arg in args:
        if not hasattr(command, "commands") or arg.startswith("-"):
            break
        sub = command.commands.get(arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return path, command


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def test_every_arkitekt_command_shown_exists_with_its_options() -> None:
    cli = build()
    root = typer.main.get_command(cli)
    runner = CliRunner()
    lines = _arkitekt_lines()
    problems = []
    helped: set[tuple[str, ...]] = set()
    for shown in lines:
        path, command = _resolve(root, shown.tokens)
        rest = shown.tokens[len(path) :]
        if not path and rest and not rest[0].startswith("-"):
            problems.append(f"{shown.where}: `arkitekt {' '.join(shown.tokens)}`: no such command")
            continue
        if hasattr(command, "commands") and rest and not rest[0].startswith("-"):
            problems.append(f"{shown.where}: `arkitekt {' '.join(path)}` has no {rest[0]!r}")
        for option in (token.split("=", 1)[0] for token in rest if token.startswith("--")):
            if option not in _options(command):
                problems.append(f"{shown.where}: `arkitekt {' '.join(path)}` has no {option}")
        if tuple(path) not in helped:
            helped.add(tuple(path))
            result = runner.invoke(cli, [*path, "--help"])
            if result.exit_code != 0:
                problems.append(f"{shown.where}: `arkitekt {' '.join(path)} --help` failed")
    assert not problems, "\n".join(problems)
    # a guard that sees nothing fails: the pages show these commands
    assert {
        ("server",),
        ("server", "migrate"),
        ("approve",),
        ("deny",),
        ("clients",),
        ("revoke",),
        ("token", "create"),
        ("login",),
        ("whoami",),
        ("logout",),
        ("adopt-stores",),
    } <= helped, helped
    assert len(lines) >= 25, len(lines)


def test_the_checker_refuses_what_does_not_exist() -> None:
    root = typer.main.get_command(build())
    path, command = _resolve(root, ("token", "create", "--identifier", "x"))
    assert path == ["token", "create"]
    assert "--identifier" in _options(command)
    assert "--identifer" not in _options(command)
    path, _ = _resolve(root, ("aprove", "CODE"))
    assert path == []


def _targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))


def test_every_make_target_script_benchmark_and_extra_shown_exists() -> None:
    targets = _targets()
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    problems = []
    seen = {"make": 0, "script": 0, "bench": 0, "extra": 0}
    for shown in _shown():
        tokens = shown.tokens
        if tokens[0] == "make":
            seen["make"] += 1
            problems += [
                f"{shown.where}: no make target {t!r}" for t in tokens[1:] if t not in targets
            ]
        if len(tokens) > 1 and tokens[0].endswith("python") and tokens[1].startswith("examples/"):
            seen["script"] += 1
            if not (ROOT / tokens[1]).is_file():
                problems.append(f"{shown.where}: no script {tokens[1]}")
        if "-m" in tokens and tokens[tokens.index("-m") + 1].startswith("bench"):
            seen["bench"] += 1
            module = tokens[tokens.index("-m") + 1]
            names = (
                [module.removeprefix("bench.")]
                if "." in module
                else list(tokens[tokens.index("-m") + 2 :])
            )
            problems += [
                f"{shown.where}: no benchmark {n!r}"
                for n in names
                if not (ROOT / "bench" / f"{n}.py").is_file()
            ]
        if tokens[:3] == ("pip", "install", "-e"):
            seen["extra"] += 1
            for extra in re.findall(r"\[([\w,-]+)\]", tokens[3]):
                problems += [
                    f"{shown.where}: no extra {e!r}" for e in extra.split(",") if e not in extras
                ]
    assert not problems, "\n".join(problems)
    assert all(count > 0 for count in seen.values()), seen
