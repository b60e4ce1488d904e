"""Offline checks of a compose stack that a schema cannot make: what the file refers to exists.

No container engine runs where the tests do, so ``docker compose config`` is not at hand. The
compose-spec JSON schema (``check-jsonschema --builtin-schema vendor.compose-spec``) checks the
shape; :func:`problems` checks the references: every service a ``depends_on`` names (with a
health check where it waits for ``service_healthy``), every named volume and network, every
``${VAR}`` (defined in ``.env.example`` or given a default), every build context, Dockerfile and
mounted file, and that every ``ARKITEKT_SERVER_*`` variable is a real server setting.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

__all__ = [
    "MissingVariableError",
    "Reference",
    "interpolate",
    "problems",
    "read_env_file",
    "references",
    "server_env_names",
]

SERVER_PREFIX = "ARKITEKT_SERVER_"
# Compose interpolation: `$$` (a literal `$`), `${NAME[op arg]}` or `$NAME`.
_DOLLAR = re.compile(r"\$(?:(?P<escape>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?", re.DOTALL)


class MissingVariableError(ValueError):
    """A ``${VAR:?message}`` (or ``${VAR?message}``) whose variable is not set."""


@dataclass(frozen=True)
class Reference:
    """One ``${...}`` in a compose value: the variable, its operator (``""`` for none), its text."""

    name: str
    op: str
    arg: str

    @property
    def has_default(self) -> bool:
        """Compose never needs the variable: it has a default, or is only used when set."""
        return self.op in (":-", "-", ":+", "+")


def references(value: str) -> Iterator[Reference | str]:
    """The variable references in one compose string; a malformed ``${...}`` as its text."""
    for match in _DOLLAR.finditer(value):
        if match["escape"]:
            continue
        if match["plain"]:
            yield Reference(match["plain"], "", "")
            continue
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            yield match[0]
        else:
            yield Reference(braced["name"], braced["op"] or "", braced["arg"] or "")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``value`` with its variables replaced as compose replaces them from ``env``.

    Raises:
        MissingVariableError: a required (``:?``/``?``) variable is missing, with its message.
    """

    def one(match: re.Match[str]) -> str:
        if match["escape"]:
            return "$"
        if match["plain"]:
            return env.get(match["plain"], "")
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            raise ValueError(f"invalid interpolation {match[0]!r}")
        name, op, arg = braced["name"], braced["op"] or "", braced["arg"] or ""
        current = env.get(name)
        unset_or_empty = not current if op.startswith(":") else current is None
        if op in (":-", "-"):
            return interpolate(arg, env) if unset_or_empty else str(current)
        if op in (":?", "?"):
            if unset_or_empty:
                raise MissingVariableError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if unset_or_empty else interpolate(arg, env)
        return current or ""

    return _DOLLAR.sub(one, value)


def read_env_file(text: str) -> dict[str, str]:
    """The ``NAME=value`` lines of an ``.env`` file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip().strip("'\"")
    return env


def server_env_names(settings: type[BaseModel], prefix: str = SERVER_PREFIX) -> set[str]:
    """Every environment variable a settings class reads: ``PREFIX_FIELD``, nested with ``__``."""
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        name = prefix + field_name.upper()
        names.add(name)
        for nested in _models_in(field.annotation):
            names |= server_env_names(nested, name + "__")
    return names


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation may hold (``S3 | None`` holds ``S3``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def _strings(node: object) -> Iterator[str]:
    """Every string of a parsed YAML document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _names(node: object) -> list[str]:
    """The names of a list-or-mapping entry (``depends_on``, ``networks``)."""
    if isinstance(node, Mapping):
        return [str(key) for key in node]
    if isinstance(node, list):
        return [str(item) for item in node]
    return []


def _environment(service: Mapping[str, Any]) -> list[str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return [str(item).split("=", 1)[0] for item in environment]
    return [str(key) for key in environment]


def _healthy(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck")
    return isinstance(check, Mapping) and bool(check.get("test")) and not check.get("disable")


def _volume_problems(name: str, service: Mapping[str, Any], stack: _Stack) -> Iterator[str]:
    for volume in service.get("volumes") or []:
        if isinstance(volume, Mapping):
            kind, source = volume.get("type", "volume"), str(volume.get("source", ""))
        else:
            parts = str(volume).split(":")
            if len(parts) == 1:
                continue  # an anonymous volume: nothing to refer to
            source = parts[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind" and not (stack.folder / source).exists():
            yield f"service {name}: mounted file or folder {source} does not exist"
        elif kind == "volume" and source and source not in stack.volumes:
            yield f"service {name}: volume {source} is not declared under volumes:"


def _build_problems(name: str, service: Mapping[str, Any], folder: Path) -> Iterator[str]:
    build = service.get("build")
    if build is None:
        return
    context_text = build if isinstance(build, str) else str(build.get("context", "."))
    context = folder / context_text
    if not context.is_dir():
        yield f"service {name}: build context {context_text} is no folder"
        return
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    if not (context / dockerfile).is_file():
        yield f"service {name}: Dockerfile {dockerfile} does not exist in {context_text}"


@dataclass(frozen=True)
class _Stack:
    folder: Path
    services: Mapping[str, Any]
    volumes: set[str]
    networks: set[str]


def problems(
    compose_text: str, env_example_text: str, folder: Path, setting_names: set[str]
) -> list[str]:
    """What the compose file refers to that does not exist; empty when every reference holds.

    Args:
        compose_text: the compose file.
        env_example_text: the documented ``.env`` that defines the stack's variables.
        folder: the compose file's folder (relative paths start there).
        setting_names: every ``ARKITEKT_SERVER_*`` variable the server reads.
    """
    compose = yaml.safe_load(compose_text)
    if not isinstance(compose, Mapping) or not isinstance(compose.get("services"), Mapping):
        return ["the file has no services: mapping"]
    env = read_env_file(env_example_text)
    stack = _Stack(
        folder,
        compose["services"],
        set(compose.get("volumes") or {}),
        set(compose.get("networks") or {}) | {"default"},
    )
    found: list[str] = []
    used: set[str] = set()
    for text in _strings(compose):
        for ref in references(text):
            if isinstance(ref, str):
                found.append(f"malformed interpolation {ref}")
                continue
            used.add(ref.name)
            if not ref.has_default and ref.name not in env:
                found.append(f"variable {ref.name} has no default and is not in .env.example")
    found.extend(f".env.example: {name} is used nowhere" for name in sorted(env.keys() - used))
    for name, service in stack.services.items():
        depends = service.get("depends_on")
        for target in _names(depends):
            if target not in stack.services:
                found.append(f"service {name}: depends on {target}, which is no service")
                continue
            wants = depends.get(target) if isinstance(depends, Mapping) else None
            healthy = isinstance(wants, Mapping) and wants.get("condition") == "service_healthy"
            if healthy and not _healthy(stack.services[target]):
                found.append(f"service {name}: waits for {target} to be healthy; it has no check")
        found.extend(
            f"service {name}: network {network} is not declared under networks:"
            for network in _names(service.get("networks"))
            if network not in stack.networks
        )
        found.extend(_volume_problems(name, service, stack))
        found.extend(_build_problems(name, service, folder))
        found.extend(
            f"service {name}: env_file {path} does not exist"
            for path in _names(service.get("env_file"))
            if not (folder / path).is_file()
        )
        found.extend(
            f"service {name}: {variable} is no server setting"
            for variable in _environment(service)
            if variable.startswith(SERVER_PREFIX) and variable not in setting_names
        )
    found.extend(
        f".env.example: {variable} is no server setting"
        for variable in env
        if variable.startswith(SERVER_PREFIX) and variable not in setting_names
    )
    return found
