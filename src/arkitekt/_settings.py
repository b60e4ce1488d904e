"""Typed settings of an app: explicit argument > environment > YAML file > defaults.

Environment variables are ``ARKITEKT_<FIELD>`` (nested groups with ``__``, e.g.
``ARKITEKT_MIKRO__PROGRESS=false``); the public names ``FAKTS_URL`` and ``FAKTS_TOKEN`` are
accepted for ``url`` and ``token``. The YAML file is the one named by the ``config`` argument or
``ARKITEKT_CONFIG``, else ``arkitekt.yaml`` in the working directory if it exists.
``config/app.example.yaml`` in the repository lists every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from arkitekt.errors import ConfigError
from arkitekt.protocol.hosts import discovery_url
from arkitekt.protocol.settings_yaml import LayeredSettings

__all__ = ["DEFAULT_URL", "MikroSettings", "RekuestSettings", "Settings", "load_settings"]

DEFAULT_URL = "http://127.0.0.1:8000"
CONFIG_ENV = "ARKITEKT_CONFIG"
DEFAULT_CONFIG_FILE = "arkitekt.yaml"


_DAY = 86_400.0  # durations are finite: inf or 1e300 would overflow the event loop's clock
_MAX_URL_CHARS = 2048


class MikroSettings(BaseModel):
    """Settings of the image service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    progress: bool = Field(
        default=True, description="Show a progress bar for long uploads on a terminal."
    )
    upload_concurrency: int = Field(
        default=8, ge=1, le=256, description="Chunk writes in flight at once."
    )


class RekuestSettings(BaseModel):
    """Settings of the function service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_workers: int = Field(default=8, ge=1, description="Sync functions running at once.")
    reconnect_max_seconds: float = Field(
        default=30.0, gt=0, description="Cap of the reconnect backoff."
    )


class Settings(LayeredSettings):
    """Everything an app can be configured with. All fields have sane defaults.

    Built directly, ``Settings(...)`` reads no YAML file (:func:`load_settings` looks for one);
    either way an invalid value raises :class:`~arkitekt.errors.ConfigError`.

    Example:
        >>> Settings(url="http://127.0.0.1:9000", headless=True).url
        'http://127.0.0.1:9000'
        >>> Settings(url="HTTP://Lab.example.org:443/").url  # one spelling per server
        'http://lab.example.org:443'

    """

    model_config = SettingsConfigDict(
        env_prefix="ARKITEKT_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        frozen=True,  # settings are values: build another app to change them
    )
    config_error = ConfigError
    config_title = "invalid arkitekt settings"
    config_label = "config file"
    config_env = CONFIG_ENV
    config_default_name = DEFAULT_CONFIG_FILE

    url: str = Field(
        default=DEFAULT_URL,
        validation_alias=AliasChoices("url", "ARKITEKT_URL", "FAKTS_URL"),
        description=(
            "Where to discover the backend (fakts): an http(s) URL. Without a scheme, https "
            "then http. Kept in one spelling (scheme and host lowercased, no default port, no "
            "trailing slash), so every spelling of a server finds its cached approval."
        ),
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("token", "ARKITEKT_TOKEN", "FAKTS_TOKEN"),
        description="A static token (from `arkitekt token create`) instead of a device-code grant.",
    )
    headless: bool = Field(
        default=False, description="Never open a browser; print the approval URL."
    )
    allow_insecure: bool = Field(
        default=False,
        description="Allow plain http to hosts other than loopback (credentials in clear text).",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        le=_DAY,
        description="Seconds any single request may take in all, its whole answer included.",
    )
    discovery_timeout: float = Field(
        default=3.0, gt=0, le=_DAY, description="Seconds discovery may take per URL."
    )
    approval_timeout: float = Field(
        default=300.0, gt=0, le=_DAY, description="Seconds to wait for a device-code approval."
    )
    cache: bool = Field(
        default=True, description="Cache the claim token so the next run needs no approval."
    )
    cache_dir: Path | None = Field(
        default=None, description="Where the claim token cache lives (default: per user)."
    )
    fakts: dict[str, Any] | None = Field(
        default=None,
        description="A static fakts configuration (groups); skips discovery entirely (offline).",
    )
    mikro: MikroSettings = Field(default_factory=MikroSettings)
    rekuest: RekuestSettings = Field(default_factory=RekuestSettings)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.strip() or len(value) > _MAX_URL_CHARS:
            raise ValueError(f"must be a URL of 1 to {_MAX_URL_CHARS} characters")
        if not value.strip().isprintable() or any(char.isspace() for char in value.strip()):
            raise ValueError("must not contain spaces or control characters")
        return discovery_url(value)

    @field_validator("cache_dir")
    @classmethod
    def _check_cache_dir(cls, value: Path | None) -> Path | None:
        if value is not None and "\0" in str(value):
            raise ValueError("must not contain a NUL character")
        return value


def load_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from arguments, environment and the YAML config file.

    Args:
        config: a YAML file to read instead of ``$ARKITEKT_CONFIG`` / ``./arkitekt.yaml``.
        **overrides: explicit values; ``None`` means "not given" and is dropped.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is invalid. The message names
            the key, the value's source (argument, environment variable or file) and the problem.

    """
    return Settings.load(config, **overrides)
