"""The server's settings: explicit argument > environment > YAML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from arkitekt_server._settings import (
    CONFIG_ENV,
    ServerConfigError,
    ServerSettings,
    load_server_settings,
)


def test_server_settings_read_the_file_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("port: 9123\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert ServerSettings(data_dir=tmp_path).port == 9123
    assert load_server_settings(data_dir=tmp_path).port == 9123
    assert load_server_settings(data_dir=tmp_path, port=9124).port == 9124
    path.write_text("port: [1\n")
    with pytest.raises(ServerConfigError, match=r"server\.yaml.*line \d+, column \d+"):
        ServerSettings(data_dir=tmp_path)


def test_server_settings_built_directly_refuse_invalid_values_as_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ServerSettings(...)`` fails like ``load_server_settings``, naming key and source."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ServerConfigError, match=r"port \(from argument\)") as caught:
        ServerSettings(data_dir=tmp_path, port=70000)
    assert str(caught.value).startswith("invalid arkitekt server settings:\n")
    path = tmp_path / "server.yaml"
    path.write_text("log_level: loud\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with pytest.raises(ServerConfigError, match=r"log_level \(from config file '.*server\.yaml'\)"):
        ServerSettings(data_dir=tmp_path)


def test_a_missing_server_config_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(ServerConfigError, match=r"gone\.yaml' does not exist \(named by \$"):
        load_server_settings(data_dir=tmp_path)
    with pytest.raises(ServerConfigError, match=r"other\.yaml' does not exist \(given as"):
        load_server_settings(tmp_path / "other.yaml", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://me:s3cr3t@db:5432/ark", "postgresql+asyncpg://me:s3cr3t@db:5432/ark"),
        ("postgres://me@db/ark", "postgresql+asyncpg://me@db/ark"),
        ("postgresql+asyncpg://me:p%40ss@db/ark", "postgresql+asyncpg://me:p%40ss@db/ark"),
        ("sqlite:////srv/ark.sqlite3", "sqlite+aiosqlite:////srv/ark.sqlite3"),
    ],
)
def test_a_database_url_is_spelled_for_the_servers_drivers_and_kept_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str, used: str
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    settings = ServerSettings(data_dir=tmp_path, database_url=given)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == used
    assert "s3cr3t" not in repr(settings)
    assert "p%40ss" not in repr(settings)
    monkeypatch.setenv("ARKITEKT_SERVER_DATABASE_URL", given)
    from_env = load_server_settings(data_dir=tmp_path).database_url
    assert from_env is not None
    assert from_env.get_secret_value() == used
    monkeypatch.delenv("ARKITEKT_SERVER_DATABASE_URL")
    path = tmp_path / "server.yaml"
    path.write_text(f"database_url: {given}\n")
    from_file = load_server_settings(path, data_dir=tmp_path).database_url
    assert from_file is not None
    assert from_file.get_secret_value() == used
    assert ServerSettings(data_dir=tmp_path).database_url is None  # default: SQLite in data_dir


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("mysql://me:hunter2-pw@db/ark", "the scheme 'mysql' is not supported; use postgresql://"),
        ("postgresql://me:hunter2-pw@db:notaport/ark", "is not a database URL; write"),
        ("postgresql://me:hunter2-pw@db:5432", "names no database"),
        ("sqlite://", "names no file"),
        ("postgresql://me:hunter2@pw@db/ark", "unescaped '@' in its user or password"),
    ],
)
def test_a_bad_database_url_is_refused_without_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str, problem: str
) -> None:
    monkeypatch.setenv("ARKITEKT_SERVER_DATABASE_URL", given)
    with pytest.raises(ServerConfigError) as refused:
        load_server_settings(data_dir=tmp_path)
    message = str(refused.value)
    assert "database_url (from environment variable ARKITEKT_SERVER_DATABASE_URL)" in message
    assert problem in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://ark:hunter2-pw@db.example/ark",
        "postgresql://ark@db.example/ark?password=hunter2-pw",
        "postgresql://ark@db.example/ark?sslmode=verify-full&sslpassword=hunter2-pw",
        "postgresql://ark:hunter2-pw@db.example/ark?Password=hunter2-pw&application_name=x",
    ],
)
def test_a_database_url_is_shown_without_any_password(tmp_path: Path, given: str) -> None:
    from arkitekt_server._db import Database
    from arkitekt_server._dburl import endpoint, shown_url

    shown = shown_url(given)
    assert "hunter2" not in shown
    assert shown.startswith("postgresql://ark")
    assert "db.example/ark" in shown
    assert "***" in shown
    assert "sslmode=verify-full" in shown or "sslmode" not in given  # the rest stays readable
    assert "hunter2" not in endpoint(given)
    database = Database.of(given, tmp_path)  # opens no connection
    assert "hunter2" not in repr(database)
    assert "hunter2" not in database.endpoint
