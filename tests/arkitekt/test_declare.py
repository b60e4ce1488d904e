"""Declaring an app: ``easy()`` and its classic spelling ``Arkitekt()``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import arkitekt
from arkitekt import App, Arkitekt, ConfigError, easy


def test_arkitekt_is_easy_under_the_classic_name(tmp_path: Path) -> None:
    classic = Arkitekt("classic-app", "2.0", url="http://127.0.0.1:9", cache_dir=tmp_path)
    modern = easy("classic-app", "2.0", url="http://127.0.0.1:9", cache_dir=tmp_path)
    assert isinstance(classic, App)
    assert classic.manifest == modern.manifest
    assert classic.settings == modern.settings


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    paths = [str(Path(arkitekt.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    return subprocess.run(
        [sys.executable, *args], input=code, capture_output=True, text=True, env=env, timeout=60
    )


def test_arkitekt_without_identifier_is_named_after_the_script(tmp_path: Path) -> None:
    script = tmp_path / "segment_nuclei.py"
    script.write_text(
        "from arkitekt import Arkitekt\n"
        "app = Arkitekt(url='http://127.0.0.1:9')\n"
        "print(app.manifest.identifier, app.manifest.version)\n"
    )
    result = _run("", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "segment_nuclei 0.1.0"


def test_arkitekt_without_identifier_and_without_a_script_says_what_to_do() -> None:
    result = _run(
        "from arkitekt import Arkitekt, ConfigError\n"
        "try:\n    Arkitekt()\nexcept ConfigError as error:\n    print(error)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Arkitekt() needs an identifier here" in result.stdout
    assert "Arkitekt('my-lab.segmenter')" in result.stdout


def test_an_invalid_identifier_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid app manifest"):
        Arkitekt("")
