"""The pages read as user documentation, the README points only into the repository, the
performance page shows every benchmark's command, and the repository holds the license its
metadata names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from bench.__main__ import MODULES

from tests.docs.markdown import DOCS, ROOT, blocks

USER_PAGES = [
    ROOT / "README.md",
    *(DOCS / name for name in ["index.md", "guide.md", "rekuest.md", "classic.md"]),
    *(DOCS / name for name in ["server.md", "api.md", "deploy.md", "mikro.md", "performance.md"]),
]
# What a development log says and a user page must not.
DEVELOPMENT_LOG = [
    r"\bissue \d+",
    r"\bthe issue\b",
    r"\btargets? of\b",
    r"\bA/B\b",
    r"/tmp/",
    r"DESIGN\.md",
    r"shared folder",
]
# What a log of measurements says and the performance page must not (elsewhere a "session" is an
# HTTP, login or STS session).
PAGE_LOG = {
    "performance.md": [r"\bsessions?\b", r"\bhelpers?\b", r"\beverything merged\b"],
}


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda page: page.name)
def test_the_page_holds_no_development_log(page: Path) -> None:
    text = page.read_text()
    found = [
        f"line {text.count(chr(10), 0, match.start()) + 1}: {match[0]!r}"
        for pattern in [*DEVELOPMENT_LOG, *PAGE_LOG.get(page.name, [])]
        for match in re.finditer(pattern, text, re.IGNORECASE)
    ]
    assert not found, found


def test_the_performance_page_shows_every_benchmarks_command() -> None:
    shown: set[str] = set()
    for block in blocks(DOCS / "performance.md"):
        if block.lang == "sh":
            for names in re.findall(r"-m bench([\w ]*)", block.code):
                shown.update(names.split())
    benchmarks = {module.removeprefix("bench.") for module in MODULES}
    assert len(benchmarks) >= 11, benchmarks
    assert benchmarks <= shown, f"no `-m bench NAME` block for {sorted(benchmarks - shown)}"


def test_the_readme_links_only_into_the_repository() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert len(targets) >= 8, targets
    for target in targets:
        assert not re.match(r"\w+:", target), f"a link out of the repository: {target}"
        assert (ROOT / target.split("#", 1)[0]).exists(), f"no such file: {target}"


def test_the_readme_table_names_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## What is where") :].split("\n## ", 1)[0]
    checked = 0
    for row in re.findall(r"^\| (`[^|]+) \|", table, re.MULTILINE):
        first, *rest = re.findall(r"`([^`]+)`", row)
        folder = (ROOT / first.rstrip("/")).parent  # later names are beside the first
        for path in [ROOT / first, *(folder / name for name in rest)]:
            assert path.exists(), f"{path.relative_to(ROOT)} does not exist"
            checked += 1
    assert checked >= 25, checked


def test_the_license_is_the_one_the_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()
    assert project["license"] == "MIT"
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the arkitekt-lab authors" in text


def test_the_embedded_servers_port_is_documented_as_it_is() -> None:
    from arkitekt_server import EmbeddedServer, ServerSettings

    assert ServerSettings.model_fields["port"].default == 8000
    assert "``127.0.0.1:8000``" in (EmbeddedServer.__doc__ or "")
    server_md = (DOCS / "server.md").read_text()
    assert "`127.0.0.1`, port 8000); `port=0` picks a free port" in server_md
