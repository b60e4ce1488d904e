"""The fenced code blocks of the repository's markdown pages, as the docs tests read them.

Conventions of the pages (the info string after the opening fence):

- ``python``: a self-contained program; the tests run it in their own process, alone, against a
  server they found through ``FAKTS_URL``.
- ``python {.agent}``: a program that serves functions until Ctrl+C (``app.rekuest.run()``);
  the tests run it as a script in its own process before the page's other blocks, wait for its
  ``serving ...`` line and stop it with SIGTERM after them.
- ``python {.pytest}``: a test module; the tests run pytest on it in its own process.
- ``sh``: commands; the tests check that every ``arkitekt`` command and option named exists,
  and so do the ``make`` targets, the scripts and the benchmarks.

Any other ``python`` info string is an error, so that no block is skipped unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PYTHON_KINDS = {"": "run", "{.agent}": "agent", "{.pytest}": "pytest"}

_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w+-]*)(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the block's first code line, 1-based
    lang: str
    info: str  # the rest of the info string, e.g. ``{.agent}``
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """``run``, ``agent`` or ``pytest`` for a python block (KeyError for an unknown one)."""
        return PYTHON_KINDS[self.info]

    def padded(self) -> str:
        """The code, preceded by blank lines so that a traceback names the page's line."""
        return "\n" * (self.line - 1) + self.code


def pages() -> list[Path]:
    """README.md and every page of docs/, in a stable order."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, in order, dedented by its fence's indentation."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["code"].splitlines()) + "\n"
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start("code")) + 1,
                lang=match["lang"],
                info=match["info"].strip(),
                code=code,
            )
        )
    return found


def python_blocks(page: Path) -> list[Block]:
    """The ``python`` blocks of a page."""
    return [block for block in blocks(page) if block.lang == "python"]


def inline_commands(page: Path, program: str) -> list[tuple[int, str]]:
    """Inline code spans of the prose that run ``program`` (``arkitekt approve CODE``)."""
    text = page.read_text()
    found = []
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for match in re.finditer(rf"`({re.escape(program)} [^`\n]+)`", outside):
        found.append((outside.count("\n", 0, match.start()) + 1, match[1]))
    return found
