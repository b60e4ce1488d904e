"""The public surface: a short top level that is cheap to import, and the extension module."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import version

import pytest

import arkitekt
import arkitekt.extension
import arkitekt.rekuest
import arkitekt.transport

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
    assert arkitekt.__version__ == version("arkitekt-lab")


def test_the_extension_module_holds_the_service_authors_names() -> None:
    for name in arkitekt.extension.__all__:
        assert getattr(arkitekt.extension, name) is not None
    assert "Service" in arkitekt.extension.__all__
    assert "ScopedResource" in arkitekt.extension.__all__
    assert arkitekt.extension.Transport is arkitekt.transport.Transport


def test_service_author_names_are_not_at_the_top_level() -> None:
    for name in ("syncify", "loopsafe", "ScopeKind", "current_scope", "ArkitektContainer"):
        assert name not in arkitekt.__all__


LAZY_MODULES = ("arkitekt", "arkitekt.extension", "arkitekt.mikro", "arkitekt.rekuest")


@pytest.mark.parametrize("name", [*LAZY_MODULES, "arkitekt_server"])
def test_dir_lists_exactly_the_exported_names(name: str) -> None:
    module = importlib.import_module(name)
    for exported in module.__all__:
        getattr(module, exported)  # loading lazy names adds nothing to dir() either
    assert [n for n in dir(module) if not n.startswith("__")] == sorted(module.__all__)


@pytest.mark.parametrize(
    "name", ["syncify", "loopsafe", "ScopeKind", "current_scope", "ArkitektContainer"]
)
def test_a_name_moved_to_the_extension_module_says_where(name: str) -> None:
    with pytest.raises(AttributeError, match=f"moved to arkitekt.extension.*import {name}"):
        getattr(arkitekt, name)
    assert not hasattr(arkitekt, name)
    assert getattr(arkitekt.extension, name) is not None


def test_the_renamed_call_event_says_its_new_name() -> None:
    with pytest.raises(AttributeError, match="renamed to CallEvent"):
        arkitekt.rekuest.Event  # noqa: B018


@pytest.mark.parametrize("name", [*LAZY_MODULES, "arkitekt_server"])
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'Provid'$"):
        importlib.import_module(name).Provid  # noqa: B018
