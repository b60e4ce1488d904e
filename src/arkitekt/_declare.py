"""Declaring an app: :func:`easy`, and :class:`Arkitekt`, its classic spelling.

Example:
    >>> from arkitekt import Arkitekt, easy
    >>> app = easy("my-app", version="0.1.0", url="http://127.0.0.1:8000")
    >>> classic = Arkitekt("my-app", url="http://127.0.0.1:8000")  # the same, classic name
    >>> isinstance(classic, type(app))
    True

"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arkitekt._app import App
from arkitekt.errors import ConfigError

if TYPE_CHECKING:
    from arkitekt._settings import Settings
    from arkitekt.protocol.fakts import Manifest

__all__ = ["Arkitekt", "easy", "script_identifier"]


def easy(
    identifier: str,
    version: str = "0.1.0",
    *,
    url: str | None = None,
    token: str | None = None,
    headless: bool | None = None,
    config: str | os.PathLike[str] | None = None,
    scopes: list[str] | None = None,
    logo: str | None = None,
    **settings: Any,
) -> App:
    """Declare an app. Builds nothing remote and contacts nothing.

    Args:
        identifier: the app's unique name, e.g. ``"my-lab.segmenter"``.
        version: the app's version; approvals are per identifier and version.
        url: where to discover the backend (default: settings, then ``http://127.0.0.1:8000``).
        token: a static token for headless machines and CI (``arkitekt token create``).
        headless: never open a browser; print the approval link instead.
        config: a YAML settings file (default: ``$ARKITEKT_CONFIG`` or ``./arkitekt.yaml``).
        scopes: the permissions the app asks for.
        logo: the app's logo, shown on the approval page: a base64 ``data:image/...`` URL of
            at most 1,000 characters (a small icon; a logo at an address is not shown, as the
            operator's browser would contact it).
        **settings: any other :class:`~arkitekt.Settings` field.

    Raises:
        ConfigError: a setting is invalid (the message names the key and where it came from).

    """
    return App(*_declare(identifier, version, url, token, headless, config, scopes, logo, settings))


class Arkitekt(App):
    """An app, declared under the classic name: ``Arkitekt(...)`` is ``easy(...)``.

    Code written for the classic Arkitekt client (``from arkitekt import Arkitekt``, ``app =
    Arkitekt()``) runs unchanged. Without an identifier the app is named after the running
    script (``segment.py`` -> ``"segment"``); where there is no script (a notebook, the
    interactive interpreter) name it: ``Arkitekt("my-lab.segmenter")``.

    Args:
        identifier: the app's unique name (default: the running script's file name).
        version: the app's version; approvals are per identifier and version.
        url: see :func:`easy`, like every other argument.
        token: see :func:`easy`.
        headless: see :func:`easy`.
        config: see :func:`easy`.
        scopes: see :func:`easy`.
        logo: see :func:`easy`.
        **settings: any other :class:`~arkitekt.Settings` field.

    Raises:
        ConfigError: no identifier was given and there is no script to name the app after,
            or a setting is invalid.

    """

    def __init__(
        self,
        identifier: str | None = None,
        version: str = "0.1.0",
        *,
        url: str | None = None,
        token: str | None = None,
        headless: bool | None = None,
        config: str | os.PathLike[str] | None = None,
        scopes: list[str] | None = None,
        logo: str | None = None,
        **settings: Any,
    ) -> None:
        if identifier is None:
            identifier = script_identifier()
        super().__init__(
            *_declare(identifier, version, url, token, headless, config, scopes, logo, settings)
        )


def script_identifier() -> str:
    """The identifier of an app declared without one: the running script's file name.

    ``python -m pkg.tool`` names it ``"pkg.tool"``; characters an identifier may not hold
    (spaces, ...) become ``-`` (``"my script.py"`` -> ``"my-script"``).

    Raises:
        ConfigError: there is no script (a notebook, ``python -c``, the interactive prompt).

    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    if spec is not None and spec.name:  # python -m pkg.tool: "pkg.tool" (pkg: "pkg")
        name = spec.name.removesuffix(".__main__")
    elif isinstance(path, str) and path.endswith(".py"):
        name = Path(path).stem
    else:
        raise ConfigError(
            "Arkitekt() needs an identifier here: there is no script to name the app after "
            "(a notebook or the interactive prompt); name the app, e.g. "
            "Arkitekt('my-lab.segmenter') or easy('my-lab.segmenter')"
        )
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "-", name).strip("-._@+")
    if not cleaned:
        raise ConfigError(
            f"Arkitekt() cannot name the app after {name!r}; name it, e.g. "
            "Arkitekt('my-lab.segmenter')"
        )
    return cleaned


def _declare(
    identifier: str,
    version: str,
    url: str | None,
    token: str | None,
    headless: bool | None,
    config: str | os.PathLike[str] | None,
    scopes: list[str] | None,
    logo: str | None,
    settings: dict[str, Any],
) -> tuple[Manifest, Settings]:
    from pydantic import ValidationError

    from arkitekt._settings import load_settings
    from arkitekt.protocol.fakts import Manifest
    from arkitekt.protocol.settings_yaml import describe_problems

    loaded = load_settings(config, url=url, token=token, headless=headless, **settings)
    try:
        manifest = Manifest(identifier=identifier, version=version, scopes=scopes or [], logo=logo)
    except ValidationError as error:
        problems = describe_problems(error, lambda key: "argument")
        raise ConfigError("invalid app manifest:\n" + problems) from None
    return manifest, loaded
