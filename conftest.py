"""Fixtures for the whole repository: the session server, and the names docstring examples use.

Every docstring example under ``src`` is a test (``--doctest-modules``). An example may use
``app``: an app (``easy("doc-app", ...)``) of the session server, built afresh for each example
and not open yet; ``np`` is numpy and ``xr`` is xarray. The examples define everything else.

This file is not packaged; the fixtures of the tests alone live in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _pytest.doctest import DoctestModule

from arkitekt import easy
from arkitekt_server import EmbeddedServer, ServerSettings

SRC = Path(__file__).parent / "src"


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(
    file_path: Path,
) -> Generator[None, list[pytest.Collector], list[pytest.Collector]]:
    """Docstring examples are collected from ``src`` only.

    The modules under ``tests`` hold none, and some are scripts the tests start in their own
    processes (they read their environment when imported).
    """
    collected = yield
    if SRC in file_path.parents:
        return collected
    return [node for node in collected if not isinstance(node, DoctestModule)]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One auto-approving server for the whole session (use unique app identifiers)."""
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("server"),
        auto_approve=True,
        log_level="warning",
    )
    with EmbeddedServer(settings) as running:
        yield running


@pytest.fixture(scope="session")
def _doctest_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token cache of the doctest app: approved once, then every example reuses it."""
    return tmp_path_factory.mktemp("doctest-token-cache")


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, object]) -> None:
    """For docstring examples only: ``app`` (of the session server), ``np`` and ``xr``."""
    if not isinstance(request.node, pytest.DoctestItem):
        return
    server: EmbeddedServer = request.getfixturevalue("server")
    cache_dir: Path = request.getfixturevalue("_doctest_cache_dir")
    app = easy("doc-app", url=server.url, headless=True, cache_dir=cache_dir)
    doctest_namespace.update(app=app, np=np, xr=xr)
