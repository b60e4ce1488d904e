"""Typed server settings: explicit argument > environment > YAML file > defaults.

Environment variables are ``ARKITEKT_SERVER_<FIELD>`` (e.g. ``ARKITEKT_SERVER_PORT=9000``).
The YAML file is the one given as ``config`` or named by ``ARKITEKT_SERVER_CONFIG``; there is no
implicit default file. ``config/server.yaml`` in the repository documents every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from arkitekt.protocol.hosts import host_of
from arkitekt.protocol.settings_yaml import LayeredSettings
from arkitekt_server._dburl import normalize_url
from arkitekt_server._errors import ArkitektServerError

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "S3Settings",
    "ServerConfigError",
    "ServerSettings",
    "load_server_settings",
]

ENV_PREFIX = "ARKITEKT_SERVER_"
# Durations are finite and bounded: inf, nan or 1e300 seconds would overflow timedelta (and the
# event loop's clock) where they are used, or keep a revoked token trusted forever.
_HOUR = 3600
_DAY = 24 * _HOUR
_YEAR = 366 * _DAY
CONFIG_ENV = "ARKITEKT_SERVER_CONFIG"


class ServerConfigError(ArkitektServerError):
    """The server configuration (arguments, environment or YAML file) is invalid."""


class S3Settings(BaseModel):
    """Where images are stored when the ``s3`` datalayer is on (one S3-compatible bucket).

    The server's own key needs to read, write, list and delete in the bucket (creating it if
    it is missing) and to call STS ``AssumeRole``: each upload or read gets credentials from it
    whose session policy reaches only that image's prefix.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str = Field(
        description="The S3 API's URL, e.g. http://127.0.0.1:9000 (MinIO) or "
        "https://s3.eu-central-1.amazonaws.com; STS is asked at the same URL."
    )
    bucket: str = Field(min_length=3, max_length=63, description="The bucket (created if missing).")
    access_key_id: str = Field(min_length=1, description="The server's access key id.")
    secret_access_key: SecretStr = Field(description="The server's secret key (never logged).")
    region: str = Field(default="us-east-1", min_length=1, description="The bucket's region.")
    prefix: str = Field(
        default="arkitekt/",
        max_length=200,
        description="Keys of this deployment start with it (images/<id>/ below it).",
    )
    role_arn: str = Field(
        default="arn:aws:iam::000000000000:role/arkitekt-mikro",
        min_length=20,
        description="The role STS AssumeRole is asked for (AWS: a role the server's key may "
        "assume, allowed to use the bucket; MinIO ignores it).",
    )
    credentials_seconds: int = Field(
        default=900,
        ge=900,
        le=12 * _HOUR,
        description="Lifetime of the scoped credentials an upload or a read gets (STS allows "
        "900 s to 12 h; clients renew them through the server, which stops renewing an "
        "upload's once it is finished or has less than 900 s left). An upload's may outlive "
        "its abort, finish or delete by up to this long: the server sweeps its prefix until "
        "they lapsed.",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in ("", ".", "..") for part in value.split("/")) and value:
            raise ValueError("must be folder names separated by '/' (no empty, '.' or '..')")
        if any(ch in value for ch in "*?$\\\0") or not value.isprintable():
            raise ValueError("must not contain '*', '?', '$', backslashes or control characters")
        return f"{value}/" if value else ""


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("arkitekt-server")


def _default_state_dir() -> Path:
    return platformdirs.user_state_path("arkitekt-server")


class ServerSettings(LayeredSettings):
    """Everything the server can be configured with. Every field has a sane default.

    Built directly or by :func:`load_server_settings`, an invalid value raises
    :class:`ServerConfigError`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, env_nested_delimiter="__"
    )
    config_error = ServerConfigError
    config_title = "invalid arkitekt server settings"
    config_label = "server config file"
    config_env = CONFIG_ENV

    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port).")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite database (unless database_url names another), image "
        "stores and the operator secret live.",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where a running `arkitekt server` notes its URL and data directory, so "
        "that operator commands (approve, clients, ...) find it without --data-dir.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="The database: postgresql://USER:PASSWORD@HOST:PORT/DATABASE (also "
        "postgres:// and postgresql+asyncpg://) or sqlite:///PATH; default: SQLite in data_dir. "
        "Never shown with its password.",
    )
    auto_approve: bool = Field(
        default=False,
        description="Approve device codes of loopback clients at once (single-user machines).",
    )
    operator_secret: SecretStr | None = Field(
        default=None,
        description="The secret the operator signs in with on the approval page (at least 16 "
        "characters); default: a random one kept in <data_dir>/operator-secret (mode 0600), "
        "printed by `arkitekt server` at start when its output is a terminal.",
    )
    device_code_ttl_seconds: float = Field(
        default=300.0,
        gt=0,
        le=_DAY,
        allow_inf_nan=False,
        description="Longest time a device code waits for approval (at most a day).",
    )
    max_pending_device_codes: int = Field(
        default=200,
        ge=1,
        description="The most device codes that may wait for a decision at once; more starts "
        "are answered 429 until some are decided or expire (start/ needs no token).",
    )
    max_pending_device_codes_per_address: int = Field(
        default=10,
        ge=1,
        description="The most device codes one client address may have waiting at once.",
    )
    access_token_ttl_seconds: int = Field(
        default=3600,
        gt=0,
        le=_YEAR,
        description="Lifetime of a bearer token from the token endpoint (at most a year).",
    )
    claim_token_ttl_seconds: int = Field(
        default=30 * _DAY,
        ge=0,
        le=10 * _YEAR,
        description="Lifetime of an approval (claim token and client credentials), at most ten "
        "years; 0: no expiry.",
    )
    rekuest_retention_seconds: float = Field(
        default=7 * _DAY,
        gt=0,
        le=10 * _YEAR,
        allow_inf_nan=False,
        description="How long finished rekuest assignments (results, errors, logs) are kept "
        "(at most ten years).",
    )
    rekuest_cancel_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds an agent has to confirm that it cancelled an assignment; then the "
        "assignment ends as cancelled without it (its caller's slot is free again).",
    )
    rekuest_agent_grace_seconds: float = Field(
        default=15.0,
        gt=0,
        le=_DAY,
        allow_inf_nan=False,
        description="Seconds the assignments of an agent that disconnected wait at least (or "
        "their call's `wait`, if longer) for it or another provider; then they fail (at most a "
        "day).",
    )
    rekuest_max_attempts: int = Field(
        default=3,
        gt=0,
        le=1000,
        description="Deliveries of one rekuest assignment before it is failed as lost (its agent "
        "disconnected while running it each time).",
    )
    rekuest_lease_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=_HOUR,
        allow_inf_nan=False,
        description="PostgreSQL: seconds a replica's claim on the assignments of its agents "
        "lasts; it renews them every third of it. A replica that dies (its lease lapsed) "
        "loses its agents and their assignments go to whichever replica their agents reach.",
    )
    rekuest_rescan_seconds: float = Field(
        default=2.0,
        ge=0.05,
        le=600,
        allow_inf_nan=False,
        description="PostgreSQL: seconds between a replica's scans for work and messages it "
        "may have missed a notification of (LISTEN/NOTIFY wakes it at once otherwise).",
    )
    rekuest_resume_seconds: float = Field(
        default=60.0,
        gt=0,
        le=_DAY,
        allow_inf_nan=False,
        description="Seconds the calls of a caller whose connection dropped keep running for "
        "it to reconnect and resume them; then they are cancelled (at most a day).",
    )
    rekuest_max_pending_calls: int = Field(
        default=10_000,
        gt=0,
        description="Unfinished rekuest assignments one app may have at once (calls waiting "
        "for an agent or running); more are refused (429 over HTTP, `refused` on the socket).",
    )
    rekuest_max_pending_argument_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="The encoded bytes of the arguments of one app's unfinished rekuest "
        "assignments, summed; a call that would exceed it is refused like one too many.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=_HOUR,
        allow_inf_nan=False,
        description="Seconds a checked bearer token is trusted without asking the database "
        "again, at most an hour; revocations by the CLI take effect within this time (0: check "
        "every request).",
    )
    public_url: str | None = Field(
        default=None,
        description="URL clients reach the server at (e.g. behind a proxy); default: as requested.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names clients may reach the server by, besides loopback, the "
        "public_url host and a non-wildcard `host`; requests naming any other Host are refused "
        "(against DNS rebinding). '*' allows any.",
    )
    deployment_name: str = Field(
        default="arkitekt", min_length=1, description="Name shown to apps and in the config."
    )
    public_apps: list[str] = Field(
        default_factory=list,
        description="Identifiers of public apps that may use retrieve/ without approval.",
    )
    max_body_bytes: int = Field(
        default=2 << 20,
        ge=1024,
        description="Largest request body (bytes) a route accepts unless it declares its own "
        "(image chunk uploads and rekuest's HTTP calls do); larger ones are answered 413 before "
        "they are read. 2 MiB: a parsed JSON body takes up to ~30 times its size in memory, "
        "and image metadata is at most 1 MiB.",
    )
    log_level: str = Field(default="info", description="Log level of the server process.")
    s3: S3Settings | None = Field(
        default=None,
        description="An S3-compatible bucket for images (the s3 datalayer); default: none, "
        "images live in data_dir.",
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def trusted_hosts(self) -> list[str]:
        """Every Host header value (without port) the server answers to."""
        hosts = {"127.0.0.1", "localhost", "::1", *self.allowed_hosts}
        if self.host not in ("0.0.0.0", "::", ""):  # noqa: S104  (comparing, not binding)
            hosts.add(self.host)
        if self.public_url is not None:
            hosts.add(host_of(self.public_url))
        return sorted(hosts)

    @field_validator("operator_secret")
    @classmethod
    def _check_operator_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters (or unset: the server makes one)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(normalize_url(value.get_secret_value()))

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug")
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return value.lower()

    @classmethod
    def default_config_file(cls) -> Path | None:
        """Built directly, ``ServerSettings(...)`` reads ``$ARKITEKT_SERVER_CONFIG`` if set."""
        return cls.find_config_file(None)


def load_server_settings(
    config: str | os.PathLike[str] | None = None, **overrides: Any
) -> ServerSettings:
    """Build :class:`ServerSettings` from arguments, environment and the YAML file.

    Args:
        config: a YAML file to read instead of ``$ARKITEKT_SERVER_CONFIG``.
        **overrides: explicit values; ``None`` means "not given" and is dropped.

    Raises:
        ServerConfigError: the file cannot be read or parsed, or a value is invalid. The message
            names each bad key, where its value came from and what is wrong.
    """
    return ServerSettings.load(config, **overrides)
