"""YAML settings files: read one defensively, feed it to pydantic-settings as a source.

Used by the app's settings (:mod:`arkitekt._settings`) and the server's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

__all__ = ["YamlSource", "read_yaml_mapping"]


class YamlSource(PydanticBaseSettingsSource):
    """A settings source over an already parsed YAML mapping."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value of one field, if the file sets it."""
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml_mapping(path: Path, error: type[Exception], label: str) -> dict[str, Any]:
    """The mapping in a YAML file (empty for an empty file).

    Args:
        path: the file.
        error: the exception to raise, with a message naming the file (and line and column).
        label: what the file is, for messages, e.g. ``"config file"``.

    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(problem, "problem", None) or str(problem)
        raise error(f"could not parse {label} {str(path)!r}{where}: {what}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"could not read {label} {str(path)!r}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(
            f"{label} {str(path)!r} must hold a mapping of settings (key: value), "
            f"not a {type(data).__name__}"
        )
    return data
