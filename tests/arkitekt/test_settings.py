from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arkitekt import easy, load_settings
from arkitekt._settings import DEFAULT_URL, Settings
from arkitekt.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "ARKITEKT_URL",
        "FAKTS_URL",
        "ARKITEKT_TOKEN",
        "FAKTS_TOKEN",
        "ARKITEKT_CONFIG",
        "ARKITEKT_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.url == DEFAULT_URL == "http://127.0.0.1:8000"
    assert settings.token is None
    assert settings.discovery_timeout == 3.0
    assert settings.mikro.progress is True


def test_precedence_argument_over_env_over_yaml_over_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "arkitekt.yaml").write_text("url: http://from-yaml:1\ntimeout: 7\nheadless: true\n")
    assert load_settings().url == "http://from-yaml:1"
    monkeypatch.setenv("ARKITEKT_URL", "http://from-env:2")
    settings = load_settings()
    assert settings.url == "http://from-env:2"
    assert settings.timeout == 7  # still from YAML
    assert settings.headless is True
    assert load_settings(url="http://from-arg:3").url == "http://from-arg:3"
    assert easy("x", url="http://from-arg:3").settings.url == "http://from-arg:3"


def test_public_fakts_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKTS_URL", "http://fakts-url:4")
    monkeypatch.setenv("FAKTS_TOKEN", "s3cret")
    settings = load_settings()
    assert settings.url == "http://fakts-url:4"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_nested_env_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARKITEKT_MIKRO__PROGRESS", "false")
    assert load_settings().mikro.progress is False


def test_config_file_from_env_and_argument(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("url: http://one:1\n")
    two.write_text("url: http://two:2\n")
    monkeypatch.setenv("ARKITEKT_CONFIG", str(one))
    assert load_settings().url == "http://one:1"
    assert load_settings(two).url == "http://two:2"
    assert easy("x", config=two).settings.url == "http://two:2"


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "arkitekt.yaml"
    path.write_text("url: http://ok\ntimeout: [1, 2\n")
    with pytest.raises(ConfigError, match=r"arkitekt\.yaml.*line \d+, column \d+"):
        load_settings()


def test_invalid_value_in_yaml_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "arkitekt.yaml").write_text("timeout: soon\n")
    with pytest.raises(ConfigError, match=r"timeout \(from config file '.*arkitekt\.yaml'\)"):
        load_settings()


def test_unknown_key_in_yaml_is_named(tmp_path: Path) -> None:
    (tmp_path / "arkitekt.yaml").write_text("urll: http://typo\n")
    with pytest.raises(ConfigError, match=r"urll \(from config file"):
        load_settings()


def test_invalid_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARKITEKT_TIMEOUT", "-1")
    with pytest.raises(
        ConfigError, match=r"timeout \(from environment variable ARKITEKT_TIMEOUT\)"
    ):
        load_settings()


def test_invalid_argument_is_named() -> None:
    with pytest.raises(ConfigError, match=r"discovery_timeout \(from argument\)"):
        easy("x", discovery_timeout=0)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "arkitekt.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings()


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARKITEKT_CONFIG", "/nonexistent/arkitekt.yaml")
    with pytest.raises(ConfigError, match=r"/nonexistent/arkitekt\.yaml.*ARKITEKT_CONFIG"):
        load_settings()


def test_settings_built_directly_read_no_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "arkitekt.yaml").write_text("url: http://from-yaml:1\n")
    assert Settings().url == DEFAULT_URL  # only load_settings looks for the file
    assert load_settings().url == "http://from-yaml:1"


def test_two_loads_at_once_each_read_their_own_file(tmp_path: Path) -> None:
    """The file travels with its call (no process-wide state): threads do not mix them up."""
    paths = []
    for n in range(8):
        path = tmp_path / f"app-{n}.yaml"
        path.write_text(f"url: http://host-{n}:1\n")
        paths.append(path)
    with ThreadPoolExecutor(4) as pool:
        urls = list(pool.map(lambda path: load_settings(path).url, paths * 4))
    assert urls == [f"http://host-{n}:1" for n in range(8)] * 4


def test_settings_built_directly_refuse_invalid_values_as_config_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Settings(...)`` fails like ``load_settings``: a ConfigError naming key and source."""
    with pytest.raises(ConfigError, match=r"url \(from argument\): .*spaces") as caught:
        Settings(url="bad url")
    assert str(caught.value).startswith("invalid arkitekt settings:\n")
    monkeypatch.setenv("FAKTS_URL", "bad url")
    with pytest.raises(ConfigError, match=r"url \(from environment variable FAKTS_URL\)"):
        Settings()
    monkeypatch.delenv("FAKTS_URL")
    monkeypatch.setenv("ARKITEKT_MIKRO__UPLOAD_CONCURRENCY", "0")
    with pytest.raises(
        ConfigError,
        match=r"mikro\.upload_concurrency \(from environment variable ARKITEKT_MIKRO\)",
    ):
        Settings()


def test_a_missing_config_file_given_as_argument_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'/nonexistent/a\.yaml' does not exist \(given as"):
        load_settings("/nonexistent/a.yaml")
