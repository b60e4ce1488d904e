"""containers/ validated offline: the compose file against the compose-spec schema, every
reference in it, the server settings it sets, the proxy in front of the replicas.

No container engine runs here; what a schema cannot see, ``compose_check`` checks, and each of
its checks is shown to refuse a broken stack.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import BaseModel

from arkitekt_server import EmbeddedServer, ServerSettings
from arkitekt_server._settings import load_server_settings
from tests.containers.compose_check import (
    MissingVariableError,
    interpolate,
    problems,
    read_env_file,
    server_env_names,
)

FOLDER = Path(__file__).resolve().parents[2] / "containers"
COMPOSE = FOLDER / "compose.yaml"
ENV_EXAMPLE = FOLDER / ".env.example"
CADDYFILE = FOLDER / "Caddyfile"
DISCOVERY = "/.well-known/fakts"
DOMAIN = "arkitekt.example.org"
REPLICAS = ("arkitekt-1", "arkitekt-2")
# Settings other parts of issue 10 add to ServerSettings (PostgreSQL, the s3 datalayer).
SCALE_OUT_SETTINGS = {
    "ARKITEKT_SERVER_DATABASE_URL",
    "ARKITEKT_SERVER_S3__ENDPOINT_URL",
    "ARKITEKT_SERVER_S3__BUCKET",
    "ARKITEKT_SERVER_S3__ACCESS_KEY_ID",
    "ARKITEKT_SERVER_S3__SECRET_ACCESS_KEY",
    "ARKITEKT_SERVER_S3__REGION",
}
SETTINGS = server_env_names(ServerSettings)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _filled_env() -> dict[str, str]:
    """.env.example as an operator fills it in: the domain and every secret set."""
    env = read_env_file(ENV_EXAMPLE.read_text())
    filled = {name: value or "0123456789abcdef" * 4 for name, value in env.items()}
    return filled | {"ARKITEKT_DOMAIN": DOMAIN}


def _environment(service: str, env: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][service]["environment"]
    return {name: interpolate(str(value), env) for name, value in raw.items()}


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_compose_file_follows_the_compose_spec() -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healtcheck:\n", 1))
    result = _check_jsonschema(broken)
    assert result.returncode != 0
    assert "healtcheck" in result.stdout + result.stderr


def test_every_reference_of_the_stack_exists() -> None:
    found = problems(COMPOSE.read_text(), ENV_EXAMPLE.read_text(), FOLDER, SETTINGS)
    assert found == []


def test_every_server_variable_is_a_real_setting() -> None:
    assert SCALE_OUT_SETTINGS <= SETTINGS
    assert problems(COMPOSE.read_text(), ENV_EXAMPLE.read_text(), FOLDER, SETTINGS) == []
    assert ServerSettings.model_config.get("env_nested_delimiter") == "__"


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        node = compose
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def change(compose: dict[str, Any]) -> None:
        node = compose
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


ENV = ("services", "arkitekt-2", "environment")
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown service": (
        _set(("services", "arkitekt-2", "depends_on", "postgre"), {"condition": "service_started"}),
        "service arkitekt-2: depends on postgre, which is no service",
    ),
    "no health check": (
        _drop(("services", "minio", "healthcheck")),
        "waits for minio to be healthy; it has no check",
    ),
    "undeclared volume": (
        _set(("services", "postgres", "volumes"), ["pg-data:/var/lib/postgresql/data"]),
        "service postgres: volume pg-data is not declared",
    ),
    "undeclared network": (
        _set(("services", "caddy", "networks"), ["edge"]),
        "service caddy: network edge is not declared",
    ),
    "missing mounted file": (
        _set(("services", "caddy", "volumes"), ["./Caddyfile.prod:/etc/caddy/Caddyfile:ro"]),
        "service caddy: mounted file or folder ./Caddyfile.prod does not exist",
    ),
    "missing build context": (
        _set(("services", "arkitekt-1", "build"), {"context": "../server"}),
        "service arkitekt-1: build context ../server is no folder",
    ),
    "missing Dockerfile": (
        _set(
            ("services", "migrate", "build"),
            {"context": "..", "dockerfile": "containers/Containerfile"},
        ),
        "service migrate: Dockerfile containers/Containerfile does not exist",
    ),
    "undefined variable": (
        _set((*ENV, "ARKITEKT_SERVER_LOG_LEVEL"), "${LOG_LEVEL}"),
        "variable LOG_LEVEL has no default and is not in .env.example",
    ),
    "malformed variable": (
        _set((*ENV, "ARKITEKT_SERVER_LOG_LEVEL"), "${LOG LEVEL}"),
        "malformed interpolation ${LOG LEVEL}",
    ),
    "misspelt setting": (
        _set((*ENV, "ARKITEKT_SERVER_PUBLIC_ULR"), "https://${ARKITEKT_DOMAIN}"),
        "service arkitekt-2: ARKITEKT_SERVER_PUBLIC_ULR is no server setting",
    ),
    "no services": (lambda compose: compose.clear(), "the file has no services: mapping"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_checker_refuses_a_broken_reference(case: str) -> None:
    change, expected = BROKEN[case]
    compose = copy.deepcopy(_compose())
    change(compose)
    found = problems(yaml.safe_dump(compose), ENV_EXAMPLE.read_text(), FOLDER, SETTINGS)
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda text: text + "ARKITEKT_SERVER_S3__BUKET=images\n",
            ".env.example: ARKITEKT_SERVER_S3__BUKET is no server setting",
        ),
        (
            lambda text: re.sub(r"(?m)^POSTGRES_PASSWORD=.*\n", "", text),
            "variable POSTGRES_PASSWORD has no default and is not in .env.example",
        ),
        (
            lambda text: text + "ARKITEKT_DOMAIN_NAME=arkitekt.example.org\n",
            ".env.example: ARKITEKT_DOMAIN_NAME is used nowhere",
        ),
    ],
)
def test_the_checker_refuses_a_broken_env_example(
    change: Callable[[str], str], expected: str
) -> None:
    env_text = change(ENV_EXAMPLE.read_text())
    found = problems(COMPOSE.read_text(), env_text, FOLDER, SETTINGS)
    assert expected in found


def test_nested_settings_are_read_with_a_double_underscore() -> None:
    class Store(BaseModel):
        bucket: str

    class Settings(BaseModel):
        port: int
        s3: Store | None = None

    assert server_env_names(Settings, "X_") == {"X_PORT", "X_S3", "X_S3__BUCKET"}


def test_the_env_example_commits_no_secret_and_dot_env_stays_out_of_git() -> None:
    env = read_env_file(ENV_EXAMPLE.read_text())
    secrets = [name for name in env if re.search("PASSWORD|SECRET", name)]
    assert len(secrets) == 4
    assert all(env[name] == "" for name in secrets)
    assert ".env" in (FOLDER / ".gitignore").read_text().split()


def test_an_unfilled_env_is_refused_naming_the_variable() -> None:
    env = read_env_file(ENV_EXAMPLE.read_text()) | {"ARKITEKT_DOMAIN": DOMAIN}
    env.pop("POSTGRES_PASSWORD")
    with pytest.raises(MissingVariableError, match=re.escape("set POSTGRES_PASSWORD in .env")):
        _environment("arkitekt-1", env)


def test_the_replicas_run_on_one_valid_server_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _filled_env()
    environments = [_environment(name, env) for name in REPLICAS]
    assert all(environment == environments[0] for environment in environments)
    monkeypatch.delenv("ARKITEKT_SERVER_CONFIG", raising=False)
    for name, value in environments[0].items():
        monkeypatch.setenv(name, value)
    settings = load_server_settings()
    assert settings.public_url == f"https://{DOMAIN}"
    assert settings.operator_secret is not None  # one secret for every replica
    assert environments[0]["ARKITEKT_SERVER_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environments[0]["ARKITEKT_SERVER_DATABASE_URL"]
    assert environments[0]["ARKITEKT_SERVER_S3__ENDPOINT_URL"] == f"https://{DOMAIN}:9443"


def _caddy_sites(env: dict[str, str]) -> dict[str, list[str]]:
    """Each site address of the Caddyfile with its upstreams, Caddy's ``{$VAR}`` replaced."""
    text = CADDYFILE.read_text()
    text = re.sub(r"\{\$(\w+)(?::([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), text)
    sites: dict[str, list[str]] = {}
    site = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            site = line.rstrip(" {")
            sites[site] = []
        elif line.strip().startswith("reverse_proxy "):
            sites[site] += line.strip().removesuffix("{").split()[1:]
    return sites


def test_the_proxy_serves_the_public_url_and_balances_every_replica() -> None:
    env = _filled_env()
    server = _environment("arkitekt-1", env)
    sites = _caddy_sites(_environment("caddy", env))
    public = urlsplit(server["ARKITEKT_SERVER_PUBLIC_URL"])
    endpoint = urlsplit(server["ARKITEKT_SERVER_S3__ENDPOINT_URL"])
    assert public.scheme == endpoint.scheme == "https"
    assert sorted(sites[public.netloc]) == [f"{name}:8000" for name in REPLICAS]
    assert sites[endpoint.netloc] == ["minio:9000"]
    compose = _compose()
    replicas = [
        name
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("arkitekt-server") and "command" not in service
    ]
    assert sorted(replicas) == list(REPLICAS)
    # The proxy reaches the replicas, and they reach the S3 endpoint through it by its name.
    caddy_networks = compose["services"]["caddy"]["networks"]
    assert all("front" in compose["services"][name]["networks"] for name in REPLICAS)
    assert caddy_networks["front"]["aliases"] == ["${ARKITEKT_DOMAIN}"]
    assert "ports" not in compose["services"]["arkitekt-1"]  # only the proxy is published


def test_the_health_checks_use_the_unauthenticated_discovery_route(
    server: EmbeddedServer,
) -> None:
    compose = _compose()
    for name in (*REPLICAS, "migrate"):
        check = compose["services"][name]["healthcheck"]
        assert check.get("disable") or f"http://127.0.0.1:8000{DISCOVERY}" in check["test"][-1]
    assert f"health_uri {DISCOVERY}" in CADDYFILE.read_text()
    dockerfile = (FOLDER / "Dockerfile").read_text()
    assert f"http://127.0.0.1:8000{DISCOVERY}" in dockerfile
    assert re.search(r"^FROM python:3\.1[1-9]-slim$", dockerfile, re.MULTILINE)
    assert 'pip install ".[server]"' in dockerfile
    assert re.search(r"^USER arkitekt$", dockerfile, re.MULTILINE)  # not root
    answer = httpx.get(server.url.rstrip("/") + DISCOVERY, timeout=10)  # no token
    assert answer.status_code == 200
    assert answer.json()["base_url"].endswith("/f/")


def _caddy_validate(caddyfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy); Caddyfile unchecked")
    home = str(tmp_path / "caddy-home")
    env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
    return subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(caddyfile)],
        capture_output=True, text=True, timeout=120, check=False,
        env=env | {"ARKITEKT_DOMAIN": DOMAIN, "ARKITEKT_S3_PORT": "9443"},
    )  # fmt: skip


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    result = _caddy_validate(CADDYFILE, tmp_path)
    assert result.returncode == 0, result.stderr


def test_caddy_refuses_a_broken_caddyfile(tmp_path: Path) -> None:
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("lb_policy round_robin", "lb_policy rund"))
    result = _caddy_validate(broken, tmp_path)
    assert result.returncode != 0
    assert "rund" in result.stderr


def _compose_commands(text: str) -> list[tuple[str, list[str]]]:
    """(subcommand, services) of each ``docker compose exec|run|stop|up`` in a page."""
    takes_value = {"-v", "--volume", "--entrypoint", "-e", "--env", "-u", "--user", "-w"}
    commands = []
    for match in re.finditer(r"docker compose (exec|run|stop|up)\b([^\n`#]*)", text):
        words, services, skip = match[2].split(), [], False
        for word in words:
            if skip or word.startswith("-"):
                skip = not skip and word in takes_value
                continue
            services.append(word)
            if match[1] in ("exec", "run"):
                break  # the rest is the command run in the container
        commands.append((match[1], services))
    return commands


def test_the_deployment_guide_matches_the_stack() -> None:
    guide = (FOLDER.parent / "docs" / "deploy.md").read_text()
    services = set(_compose()["services"])
    assert {name for name in services if f"`{name}`" not in guide} == set()
    env = read_env_file(ENV_EXAMPLE.read_text())
    assert {name for name in env if f"`{name}`" not in guide} == set()
    commands = _compose_commands(guide)
    assert len(commands) >= 15
    named = {service for _, names in commands for service in names}
    assert named - services - {"arkitekt-3"} == set()  # arkitekt-3: the replica it adds
    assert "docker compose run --rm migrate" in guide
