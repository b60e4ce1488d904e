"""The public surface: a short top level that is cheap to import, and the extension module."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import arkitekt
import arkitekt.extension

COSTLY = ("httpx", "pydantic_settings", "dependency_injector", "xarray", "zarr", "dask", "numpy")


def test_import_arkitekt_loads_none_of_the_costly_libraries() -> None:
    probe = f"import sys, arkitekt; print(sorted(m for m in {COSTLY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_every_top_level_name_resolves() -> None:
    for name in arkitekt.__all__:
        assert getattr(arkitekt, name) is not None
    assert set(arkitekt.__all__) <= set(dir(arkitekt))


def test_the_version_comes_from_the_package_metadata() -> None:
    assert arkitekt.__version__ == version("arkitekt")


def test_the_extension_module_holds_the_service_authors_names() -> None:
    for name in arkitekt.extension.__all__:
        assert getattr(arkitekt.extension, name) is not None
    assert "Service" in arkitekt.extension.__all__
    assert "ScopedResource" in arkitekt.extension.__all__


def test_service_author_names_are_not_at_the_top_level() -> None:
    for name in ("syncify", "loopsafe", "ScopeKind", "current_scope", "ArkitektContainer"):
        assert name not in arkitekt.__all__
