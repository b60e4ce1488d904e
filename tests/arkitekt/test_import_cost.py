"""What importing arkitekt's modules pulls in: costly modules are imported when first used.

``import arkitekt`` itself is checked in ``test_public_api.py``.

Each case runs in a fresh interpreter and lists the costly modules present in ``sys.modules``
afterwards; nothing is timed (``bench/imports.py`` measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import arkitekt

DATA = ("xarray", "zarr", "dask", "numpy")
"""Imported when an image is stored or its pixels are read."""

SERVICES = ("arkitekt._container", "arkitekt.mikro._service", "arkitekt.rekuest._service")
"""Imported when an app is built."""

SERVER = ("fastapi", "uvicorn", "sqlalchemy")
"""Imported when a server command runs."""


def _loaded(code: str) -> set[str]:
    """The modules of DATA, SERVICES and SERVER a fresh interpreter has after ``code``."""
    watched = [*DATA, *SERVICES, *SERVER]
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    )
    paths = [str(Path(arkitekt.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code", ["import arkitekt.mikro", "from arkitekt.mikro import from_xarray, get_image"]
)
def test_importing_mikro_imports_no_array_library_and_no_service(code: str) -> None:
    loaded = _loaded(code)
    assert loaded.isdisjoint([*DATA, *SERVICES, *SERVER]), loaded


def test_building_the_cli_imports_neither_services_nor_the_server() -> None:
    loaded = _loaded("from arkitekt._cli import build\nbuild()")
    assert loaded.isdisjoint([*DATA, *SERVICES, *SERVER]), loaded


def test_the_server_commands_are_added_without_importing_the_server() -> None:
    loaded = _loaded(
        "import typer\nfrom arkitekt_server._cli import register\nregister(typer.Typer())"
    )
    assert loaded.isdisjoint([*SERVICES, *SERVER]), loaded
