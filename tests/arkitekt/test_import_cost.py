"""What importing arkitekt pulls in: costly modules are imported when first used.

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


def _loaded(code: str, *, setup: str = "") -> set[str]:
    """The modules of DATA, SERVICES and SERVER a fresh interpreter imports running ``code``.

    Modules already imported by ``setup`` (run first) do not count.
    """
    watched = [*DATA, *SERVICES, *SERVER]
    probe = "\n".join(
        [
            "import json, sys",
            setup,
            "before = set(sys.modules)",
            code,
            f"print(json.dumps([m for m in {watched!r} if m in set(sys.modules) - before]))",
        ]
    )
    paths = [str(Path(arkitekt.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


_EAGER_TOP_LEVEL = "arkitekt._container" in _loaded("import arkitekt")
# `import arkitekt` itself is made lazy (PEP 562) in arkitekt/__init__.py; until then it
# imports the container, the services and (through dependency-injector) FastAPI.
needs_lazy_top_level = pytest.mark.xfail(
    _EAGER_TOP_LEVEL, reason="`import arkitekt` still imports the app eagerly", strict=True
)


@pytest.mark.parametrize(
    "code", ["import arkitekt.mikro", "from arkitekt.mikro import from_xarray, get_image"]
)
def test_importing_mikro_imports_no_array_library(code: str) -> None:
    assert _loaded(code).isdisjoint(DATA)


@needs_lazy_top_level
@pytest.mark.parametrize(
    "code", ["import arkitekt.mikro", "from arkitekt.mikro import from_xarray, get_image"]
)
def test_importing_mikro_imports_no_service(code: str) -> None:
    assert _loaded(code).isdisjoint([*SERVICES, *SERVER])


@needs_lazy_top_level
def test_building_the_cli_imports_neither_services_nor_the_server() -> None:
    loaded = _loaded("from arkitekt._cli import build\nbuild()")
    assert loaded.isdisjoint([*DATA, *SERVICES, *SERVER]), loaded


def test_the_server_commands_are_added_without_importing_the_server() -> None:
    loaded = _loaded(
        "from arkitekt_server._cli import register\nregister(typer.Typer())",
        setup="import arkitekt, typer",
    )
    assert loaded.isdisjoint([*SERVICES, *SERVER]), loaded
