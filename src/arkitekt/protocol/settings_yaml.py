"""Settings from arguments, environment and a YAML file: the one loader of the app and server.

:class:`LayeredSettings` is the base of both settings classes (the app's ``Settings`` and the
server's ``ServerSettings``): explicit argument > environment > YAML file > defaults, and any
invalid value, however the settings are built, raises the class's ``config_error`` with one
line per problem naming the key, where its value came from and what is wrong
(:func:`describe_problems`). :meth:`LayeredSettings.load` finds the YAML file
(:meth:`~LayeredSettings.find_config_file`) and builds the settings from it.

The file is read by pydantic-settings' own :class:`~pydantic_settings.YamlConfigSettingsSource`
(:class:`YamlFile` changes only how a file is read: defensively, with the line and column of a
syntax error in the message). Which file, if any, travels with the call that builds the
settings, as the reserved keyword :data:`YAML_FILE` (the way pydantic-settings takes
``_env_file``): ``Settings(**values, _yaml_file=path)``; :func:`yaml_file_source` takes it out of
the arguments before they are validated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml
from pydantic import AliasChoices, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    YamlConfigSettingsSource,
)

__all__ = [
    "YAML_FILE",
    "LayeredSettings",
    "YamlFile",
    "describe_problems",
    "read_yaml_mapping",
    "yaml_file_source",
]

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


def describe_problems(error: ValidationError, source: Callable[[str], str]) -> str:
    """One line per problem of ``error``: the key, where its value came from, what is wrong.

    Args:
        error: pydantic's error.
        source: the source of a top-level key's value, e.g. ``"argument"``.

    """
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = loc[0] if loc else "?"
        problems.append(f"  {'.'.join(loc) or '?'} (from {source(key)}): {item['msg']}")
    return "\n".join(problems)


class LayeredSettings(BaseSettings):
    """Settings from explicit arguments > environment > a YAML file > defaults.

    A subclass sets the class variables below. Built directly (``Settings(...)``) it reads the
    file :meth:`default_config_file` names; :meth:`load` looks for one the way a program does.
    Either way an invalid value raises ``config_error``, naming each key and its source.
    """

    config_error: ClassVar[type[Exception]]
    """The exception of a bad file or value (e.g. ``ConfigError``)."""
    config_title: ClassVar[str]
    """The first line of a message about invalid values, e.g. ``"invalid arkitekt settings"``."""
    config_label: ClassVar[str]
    """What the YAML file is, for messages, e.g. ``"config file"``."""
    config_env: ClassVar[str]
    """The environment variable that names the YAML file, e.g. ``"ARKITEKT_CONFIG"``."""
    config_default_name: ClassVar[str | None] = None
    """A file looked for in the working directory by :meth:`load` when none is named."""

    def __init__(self, **values: Any) -> None:
        """Validate ``values`` (with the environment and the YAML file).

        Raises:
            Exception: ``config_error``, for a file that cannot be read or an invalid value.

        """
        try:
            super().__init__(**values)
        except ValidationError as error:
            init = {key: value for key, value in values.items() if key != YAML_FILE}
            path = values[YAML_FILE] if YAML_FILE in values else self.default_config_file()
            raise self.config_error(
                f"{self.config_title}:\n"
                + describe_problems(error, lambda key: self._source_of(key, init, path))
            ) from None

    @classmethod
    def default_config_file(cls) -> Path | None:
        """The YAML file read when the settings are built directly (default: none)."""
        return None

    @classmethod
    def find_config_file(cls, config: str | os.PathLike[str] | None) -> Path | None:
        """The YAML file: ``config``, else the one ``config_env`` names, else the default name.

        Raises:
            Exception: ``config_error``, if the named file does not exist.

        """
        if config is not None:
            path = Path(config)
            if not path.is_file():
                raise cls.config_error(
                    f"{cls.config_label} {str(path)!r} does not exist (given as the `config` "
                    "argument)"
                )
            return path
        if env := os.environ.get(cls.config_env):
            if not Path(env).is_file():
                raise cls.config_error(
                    f"{cls.config_label} {env!r} does not exist (named by ${cls.config_env})"
                )
            return Path(env)
        if cls.config_default_name is None:
            return None
        path = Path.cwd() / cls.config_default_name
        return path if path.is_file() else None

    @classmethod
    def load(cls, config: str | os.PathLike[str] | None = None, **overrides: Any) -> Self:
        """Build the settings from arguments, environment and the YAML file.

        Args:
            config: the YAML file (default: :meth:`find_config_file`'s).
            **overrides: explicit values; ``None`` means "not given" and is dropped.

        Raises:
            Exception: ``config_error``, for a missing or bad file or an invalid value.

        """
        path = cls.find_config_file(config)
        init = {key: value for key, value in overrides.items() if value is not None}
        return cls(**init, **{YAML_FILE: path})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, then environment, then the YAML file."""
        yaml_file = yaml_file_source(
            settings_cls, init_settings, cls.config_error, cls.config_label, cls.default_config_file
        )
        return init_settings, env_settings, yaml_file

    @classmethod
    def _source_of(cls, key: str, init: dict[str, Any], path: Path | None) -> str:
        """Where the value of ``key`` came from: argument, environment variable, file, default."""
        if key in init:
            return "argument"
        nested = cls.model_config.get("env_nested_delimiter")
        environment = [name.upper() for name in os.environ]
        for name in cls._env_names(key):
            if name in environment or (
                nested and any(env.startswith(f"{name}{nested}") for env in environment)
            ):
                return f"environment variable {name}"
        if path is not None and key in read_yaml_mapping(path, cls.config_error, cls.config_label):
            return f"config file {str(path)!r}"
        return "default"

    @classmethod
    def _env_names(cls, key: str) -> list[str]:
        """The environment variables that set ``key``: its upper-case aliases, else prefixed."""
        field = cls.model_fields.get(key)
        if field is not None and isinstance(field.validation_alias, AliasChoices):
            names = [
                n for n in field.validation_alias.choices if isinstance(n, str) and n.isupper()
            ]
            if names:
                return names
        return [f"{cls.model_config.get('env_prefix', '')}{key}".upper()]
