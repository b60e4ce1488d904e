"""The API table of docs/mikro.md names every function ``arkitekt.mikro`` exports."""

from __future__ import annotations

import inspect
import re

import arkitekt.mikro
from tests.docs.markdown import DOCS


def _table(page: str, heading: str) -> str:
    text = (DOCS / page).read_text()
    return text[text.index(f"\n## {heading}\n") :].split("\n## ", 2)[1]


def test_the_mikro_api_table_names_every_public_function_and_its_twin() -> None:
    section = _table("mikro.md", "API")
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`(\w+)\(", rows))
    twins = set(re.findall(r"`(a\w+)`", section.split("|", 1)[0]))  # "an async twin (`a...`)"
    functions = {
        name
        for name in arkitekt.mikro.__all__
        if inspect.isfunction(getattr(arkitekt.mikro, name)) and not name.startswith("a")
    }
    assert len(functions) >= 7, functions  # a guard that sees nothing fails
    assert functions <= documented, f"not in the API table: {sorted(functions - documented)}"
    assert {"afrom_file", "afrom_xarray"} <= twins, twins
