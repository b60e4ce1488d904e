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


def test_a_script_name_is_made_a_valid_identifier(tmp_path: Path) -> None:
    script = tmp_path / "my first script!.py"
    script.write_text(
        "from arkitekt import Arkitekt\nprint(Arkitekt(url='http://127.0.0.1:9').manifest.identifier)\n"
    )
    result = _run("", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "my-first-script"


def test_a_module_run_with_dash_m_is_named_after_its_module(tmp_path: Path) -> None:
    package = tmp_path / "labtools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "from arkitekt import Arkitekt\nprint(Arkitekt(url='http://127.0.0.1:9').manifest.identifier)\n"
    )
    (package / "segment.py").write_text((package / "__main__.py").read_text())
    for module, expected in (("labtools", "labtools"), ("labtools.segment", "labtools.segment")):
        result = subprocess.run(
            [sys.executable, "-m", module],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    [
                        str(tmp_path),
                        str(Path(arkitekt.__file__).parents[1]),
                        os.environ.get("PYTHONPATH", ""),
                    ]
                ),
            },
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


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
