"""Fixtures of the client mikro tests: names, leftovers, and each datalayer's server."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arkitekt import App, easy
from arkitekt_server import EmbeddedServer
from tests.arkitekt.mikro.buckets import bucket_keys

_names = itertools.count()


@pytest.fixture
def new_uploads(server: EmbeddedServer) -> Callable[[], set[Path]]:
    """Upload directories of the session server that appeared since the test started."""
    path = server.settings.data_dir / "mikro" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    before = set(path.iterdir())
    return lambda: set(path.iterdir()) - before


@pytest.fixture
def unique() -> str:
    """A name no other test uses (the session server is shared)."""
    return f"img-{next(_names)}-{np.random.default_rng().integers(1 << 30)}"


@pytest.fixture(params=["local", "http", "s3"])
def datalayer(request: pytest.FixtureRequest) -> str:
    """Each datalayer in turn (``s3``: on :func:`s3_server`)."""
    return str(request.param)


@pytest.fixture
def layer_server(datalayer: str, request: pytest.FixtureRequest) -> EmbeddedServer:
    """The server of this datalayer: the session server, or the bucket's for ``s3``."""
    name = "s3_server" if datalayer == "s3" else "server"
    server: EmbeddedServer = request.getfixturevalue(name)
    return server


@pytest.fixture
def layer_connect(
    layer_server: EmbeddedServer, datalayer: str, tmp_path: Path
) -> Callable[..., App]:
    """Build apps of :func:`layer_server` that upload and read through ``datalayer``."""

    def build(identifier: str | None = None, **kwargs: Any) -> App:
        kwargs.setdefault("headless", True)
        kwargs.setdefault("cache_dir", tmp_path / "token-cache")
        name = identifier or f"layer-app-{next(_names)}"
        app = easy(name, url=layer_server.url, **kwargs)
        app.mikro.datalayer = datalayer  # type: ignore[assignment]
        return app

    return build


@pytest.fixture
def leftovers(layer_server: EmbeddedServer, datalayer: str) -> Callable[[], set[str]]:
    """Upload directories (disk) or upload keys (bucket) that appeared since the test started:
    what an interrupted upload could leave behind."""
    if datalayer == "s3":
        before = set(bucket_keys(layer_server))
        return lambda: set(bucket_keys(layer_server)) - before
    path = layer_server.settings.data_dir / "mikro" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    seen = {str(p) for p in path.iterdir()}
    return lambda: {str(p) for p in path.iterdir()} - seen
