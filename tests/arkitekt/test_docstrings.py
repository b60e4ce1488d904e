"""Public docstrings name public paths: a reader following one never lands in a private module."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import pytest

PUBLIC_MODULES = [
    "arkitekt",
    "arkitekt.errors",
    "arkitekt.extension",
    "arkitekt.testing",
    "arkitekt.integrations.fastapi",
    "arkitekt.fakts",
    "arkitekt.mikro",
    "arkitekt.rekuest",
    "arkitekt.transport",
    "arkitekt.protocol.fakts",
    "arkitekt.protocol.hosts",
    "arkitekt.protocol.mikro",
    "arkitekt.protocol.mikro_metadata",
    "arkitekt.protocol.outbox",
    "arkitekt.protocol.redact",
    "arkitekt.protocol.rekuest",
    "arkitekt.protocol.rekuest_definitions",
    "arkitekt.protocol.rekuest_frames",
    "arkitekt.protocol.rekuest_messages",
    "arkitekt.protocol.settings_yaml",
    "arkitekt.protocol.text",
    "arkitekt_server",
]
PRIVATE_PATH = re.compile(r"\barkitekt(?:_server)?(?:\.[A-Za-z]\w*)*\._\w+")


def _docstrings(module_name: str) -> dict[str, str]:
    """Every docstring a reader of ``module_name`` meets: its names', and their members'."""
    module = importlib.import_module(module_name)
    found = {module_name: module.__doc__ or ""}
    for name in getattr(module, "__all__", []):
        value: Any = getattr(module, name)
        found[f"{module_name}.{name}"] = inspect.getdoc(value) or ""
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                doc = getattr(attribute, "__doc__", None)
                if isinstance(doc, str) and not isinstance(attribute, str | int | float):
                    found[f"{module_name}.{name}.{member}"] = doc
    return found


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_docstrings_point_at_public_names(module_name: str) -> None:
    private = {
        where: PRIVATE_PATH.findall(doc)
        for where, doc in _docstrings(module_name).items()
        if PRIVATE_PATH.search(doc)
    }
    assert private == {}
