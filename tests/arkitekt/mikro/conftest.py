"""Fixtures of the client mikro tests: names, leftovers, and each datalayer's server."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arkitekt import App, easy
from arkitekt_server import EmbeddedServer, ServerSettings

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


def s3_settings(endpoint: str, bucket: str) -> dict[str, Any]:
    """The ``s3`` server settings of a bucket on the test S3 endpoint (any key works there)."""
    return {
        "endpoint_url": endpoint,
        "bucket": bucket,
        "access_key_id": "arkitekt-test",
        "secret_access_key": "server-secret-not-for-clients",
    }


def bucket_keys(server: EmbeddedServer, prefix: str = "") -> list[str]:
    """Every key in the server's bucket below ``prefix`` (read with the server's own key)."""
    import boto3

    s3 = server.settings.s3
    assert s3 is not None
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key.get_secret_value(),
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """An auto-approving server whose images live in a bucket of the test S3 endpoint."""
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("s3-server"),
        auto_approve=True,
        log_level="warning",
        s3=s3_settings(s3_endpoint, f"mikro-{uuid.uuid4().hex[:12]}"),
    )
    with EmbeddedServer(settings) as running:
        yield running


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
