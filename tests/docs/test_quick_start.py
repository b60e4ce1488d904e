"""The README's commands work as shown in a fresh shell after ``make demo``: a command that
``make`` installed into ``.venv`` (``arkitekt``, its ``python``, ``pip``) is run once the block
has activated ``.venv``, or by its path there; otherwise the shell answers "command not found"."""

from __future__ import annotations

import re
import shlex

from tests.docs.markdown import ROOT, blocks

SHELLS = {"sh", "bash", "console", "shell"}
FROM_VENV = {"arkitekt", "python", "pip"}  # on PATH only inside the activated .venv
ACTIVATE = ("source", ".venv/bin/activate")


def _commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block, in order (continued lines joined)."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|;|\|", line):
            if tokens := shlex.split(part, comments=True):
                found.append(tokens)
    return found


def unactivated(code: str) -> list[str]:
    """The commands of ``code`` that need ``.venv`` on PATH before the block activated it."""
    active = False
    missing = []
    for tokens in _commands(code):
        if tuple(tokens[:2]) in {ACTIVATE, (".", ".venv/bin/activate")}:
            active = True
        elif tokens[0] in FROM_VENV and not active and tokens[1:3] != ["-m", "venv"]:
            missing.append(" ".join(tokens))
    return missing


def test_the_checker_sees_a_command_run_before_activation() -> None:
    assert unactivated("pip install -e .\narkitekt server\n") == [
        "pip install -e .",
        "arkitekt server",
    ]
    assert unactivated("source .venv/bin/activate\narkitekt server\n") == []
    assert unactivated("python -m venv .venv && . .venv/bin/activate\npip install x\n") == []
    assert unactivated(".venv/bin/arkitekt server\nmake demo\n") == []


def test_every_readme_command_from_the_venv_runs_after_activating_it() -> None:
    shells = [block for block in blocks(ROOT / "README.md") if block.lang in SHELLS]
    problems = [
        f"README.md:{block.line}: `{command}` without `source .venv/bin/activate` before it"
        for block in shells
        for command in unactivated(block.code)
    ]
    assert not problems, "\n".join(problems)
    assert any(tokens[0] == "arkitekt" for block in shells for tokens in _commands(block.code)), (
        "a guard that sees nothing fails: the README shows arkitekt commands"
    )
