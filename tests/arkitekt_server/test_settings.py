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
