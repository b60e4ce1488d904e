"""YAML settings files, for the app's settings and the server's (both pydantic-settings classes).

The file is read by pydantic-settings' own :class:`~pydantic_settings.YamlConfigSettingsSource`
(:class:`YamlFile` changes only how a file is read: defensively, with the line and column of a
syntax error in the message). Which file, if any, travels with the call that builds the
settings, as the reserved keyword :data:`YAML_FILE` (the way pydantic-settings takes
``_env_file``): ``Settings(**values, _yaml_file=path)``; :func:`yaml_file_source` takes it out of
the arguments before they are validated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    YamlConfigSettingsSource,
)

__all__ = ["YAML_FILE", "YamlFile", "read_yaml_mapping", "yaml_file_source"]

YAML_FILE = "_yaml_file"
"""The keyword argument of a settings class that names its YAML file (``None``: no file)."""


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


class YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, reading its file with :func:`read_yaml_mapping`.

    Args:
        settings_cls: the settings class.
        path: the file (``None``: no file, the source is empty).
        error: the exception a bad file raises.
        label: what the file is, for messages.

    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        path: Path | None,
        error: type[Exception],
        label: str,
    ) -> None:
        self._error, self._label = error, label
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_yaml_mapping(Path(str(file_path)), self._error, self._label)


def yaml_file_source(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    error: type[Exception],
    label: str,
    default: Callable[[], Path | None] = lambda: None,
) -> YamlFile:
    """The YAML source of one instantiation: the file named by :data:`YAML_FILE`, or ``default()``.

    Called from ``settings_customise_sources``; the keyword is taken out of ``init_settings``,
    so it is never validated as a field.

    Args:
        settings_cls: the settings class.
        init_settings: the source of the explicit arguments.
        error: the exception a bad file raises.
        label: what the file is, for messages.
        default: the file when the call names none (for example from an environment variable).

    """
    if isinstance(init_settings, InitSettingsSource) and YAML_FILE in init_settings.init_kwargs:
        path: Path | None = init_settings.init_kwargs.pop(YAML_FILE)
    else:
        path = default()
    return YamlFile(settings_cls, path, error, label)
