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
