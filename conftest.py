"""Fixtures for the whole repository: the session server, and the names docstring examples use.

Every docstring example under ``src`` is a test (``--doctest-modules``). An example may use
``app``: an app (``easy("doc-app", ...)``) of the session server, built afresh for each example
and not open yet; ``np`` is numpy and ``xr`` is xarray. The examples define everything else.

Database backends: a test under ``tests/`` that needs the ``backend`` fixture (directly, or
through ``server``, ``server_factory``, ``server_process``, ``database_url``) runs once per
backend, with the ids ``[sqlite]`` and ``[postgresql]``; the PostgreSQL variants skip (fail under
``CI=true``) without PostgreSQL. A test marked ``@pytest.mark.sqlite_only("why")`` runs on SQLite
alone; so does one that requests ``postgres_url`` (it picks
its databases itself). Docstring examples use SQLite.

This file is not packaged; the fixtures of the tests alone live in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from _pytest.doctest import DoctestModule

from arkitekt import easy
from arkitekt_server import EmbeddedServer, ServerSettings

ROOT = Path(__file__).parent
SRC = ROOT / "src"
collect_ignore = ["src/arkitekt_server/_migrations/env.py"]  # Alembic runs it; never imported
BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sqlite_only`` marker; keep servers' state files out of the user's home.

    ``arkitekt server`` processes started by the tests note themselves in
    ``ARKITEKT_SERVER_STATE_DIR`` (inherited by every child process): a folder of this run.
    """
    config.addinivalue_line(
        "markers", "sqlite_only(reason): run this test on the SQLite backend alone"
    )
    if "ARKITEKT_SERVER_STATE_DIR" not in os.environ:
        os.environ["ARKITEKT_SERVER_STATE_DIR"] = tempfile.mkdtemp(prefix="arkitekt-test-state-")
        config.add_cleanup(
            lambda: shutil.rmtree(os.environ.pop("ARKITEKT_SERVER_STATE_DIR"), ignore_errors=True)
        )


def _sqlite_only(metafunc: pytest.Metafunc) -> bool:
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return True
    if {"postgres_url", "postgres_admin_url"} & set(metafunc.fixturenames):
        return True  # it picks its databases itself
    path = metafunc.definition.path
    return path is None or ROOT / "tests" not in path.parents  # docstring examples, ...


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that needs a database backend once per backend (see the module)."""
    if "backend" in metafunc.fixturenames:
        backends = BACKENDS[:1] if _sqlite_only(metafunc) else BACKENDS
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test's servers: ``sqlite`` or ``postgresql``."""
    return str(getattr(request, "param", "sqlite"))


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
def server(
    tmp_path_factory: pytest.TempPathFactory, backend: str, request: pytest.FixtureRequest
) -> Iterator[EmbeddedServer]:
    """One auto-approving server per backend for the whole session (use unique app identifiers)."""
    options: dict[str, Any] = {}
    if backend == "postgresql":
        options["database_url"] = request.getfixturevalue("session_postgres_url")
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("server"),
        auto_approve=True,
        log_level="warning",
        **options,
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
