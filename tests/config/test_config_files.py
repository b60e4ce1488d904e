"""The documented YAML files load, and document every setting there is."""

from __future__ import annotations

from pathlib import Path

import yaml

from arkitekt._settings import Settings, load_settings
from arkitekt_server._settings import ServerSettings, load_server_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _documented(path: Path) -> set[str]:
    """Keys set in the file or named in a commented-out `# key:` line."""
    keys = set(yaml.safe_load(path.read_text()) or {})
    for line in path.read_text().splitlines():
        stripped = line.removeprefix("# ").strip()
        if line.startswith("# ") and stripped.split(":")[0].isidentifier() and ": " in stripped:
            keys.add(stripped.split(":")[0])
    return keys


def test_server_yaml_loads_and_lists_every_setting(tmp_path: Path) -> None:
    path = CONFIG / "server.yaml"
    settings = load_server_settings(path, data_dir=tmp_path)
    assert settings == ServerSettings(data_dir=tmp_path)  # the file states the defaults
    assert _documented(path) >= set(ServerSettings.model_fields)


def test_app_example_loads_and_lists_every_setting() -> None:
    path = CONFIG / "app.example.yaml"
    settings = load_settings(path)
    assert settings == Settings()
    assert _documented(path) >= set(Settings.model_fields)
