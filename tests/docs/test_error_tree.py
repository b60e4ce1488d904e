"""The error tree is written twice for two readers (``arkitekt.errors`` and docs/api.md): same tree,
and true to the classes."""

from __future__ import annotations

import re
from pathlib import Path

import arkitekt.errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)\b")


def _tree(lines: list[str]) -> list[tuple[int, str]]:
    """(depth, class name) per line of a drawn tree."""
    found = []
    for line in lines:
        match = LINE.match(line)
        if match and (match["indent"] or match["name"] == "ArkitektError"):
            found.append((len(match["indent"]) // 4, match["name"]))
    return found


def _module_tree() -> list[tuple[int, str]]:
    doc = arkitekt.errors.__doc__ or ""
    start = doc.index("    ArkitektError\n")
    block = doc[start:].split("\n\n", 1)[0]
    return _tree([line.removeprefix("    ") for line in block.splitlines()])


def _docs_tree() -> list[tuple[int, str]]:
    text = DOC.read_text()
    start = text.index("```text\nArkitektError\n") + len("```text\n")
    return _tree(text[start : text.index("```", start)].splitlines())


def test_the_docs_draw_the_same_tree_as_the_module() -> None:
    module = _module_tree()
    assert len(module) == len(arkitekt.errors.__all__)
    assert _docs_tree() == module


def test_the_drawn_tree_is_true_to_the_classes() -> None:
    parents: list[str] = []
    for depth, name in _module_tree():
        cls = getattr(arkitekt.errors, name)
        del parents[depth:]
        if parents:
            assert getattr(arkitekt.errors, parents[-1]) in cls.__bases__, name
        parents.append(name)
    assert {name for _, name in _module_tree()} == set(arkitekt.errors.__all__)
