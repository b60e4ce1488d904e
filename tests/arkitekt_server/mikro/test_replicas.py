"""Two ``arkitekt server`` replicas (separate processes and data dirs) on one PostgreSQL database
and one S3 bucket: an image uploaded through one is found, read and rendered through the other,
and deleted through the other (its objects leave the bucket)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import xarray as xr

from arkitekt import easy
from arkitekt.mikro import from_xarray, get_image, search_images
from tests.arkitekt.mikro.buckets import s3_settings
from tests.helpers import ServerProcess, bearer_token


@pytest.fixture
def replicas(
    postgres_url: str, s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two started replicas sharing one database and one bucket."""
    env = {
        f"ARKITEKT_SERVER_S3__{key.upper()}": str(value)
        for key, value in s3_settings(s3_endpoint, s3_bucket).items()
    }
    made = tuple(
        ServerProcess(tmp_path / name, database_url=postgres_url, env=env) for name in "ab"
    )
    try:
        for replica in made:  # one after the other: the first one creates the bucket
            replica.start()
        yield made[0], made[1]
    finally:
        for replica in made:
            if replica.process is not None and replica.process.poll() is None:
                replica.stop()


def _objects(endpoint: str, bucket: str, prefix: str) -> list[str]:
    import boto3

    settings = s3_settings(endpoint, bucket)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=settings["access_key_id"],
        aws_secret_access_key=settings["secret_access_key"],
    )
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_an_image_stored_through_one_replica_is_served_by_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    first, second = replicas
    pixels = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    name = f"replicated-{uuid.uuid4().hex[:8]}"
    writer = easy("replica-writer", url=first.url, headless=True, cache_dir=tmp_path / "w")
    with writer:
        stored = from_xarray(xr.DataArray(pixels, dims=("z", "y", "x")), name=name)
        owner = {"Authorization": f"Bearer {bearer_token(writer)}"}
    assert stored.storage == "s3"
    assert [key for key in _objects(s3_endpoint, s3_bucket, "") if stored.id in key] != []

    reader = easy("replica-reader", url=second.url, headless=True, cache_dir=tmp_path / "r")
    with reader:
        found = search_images(name=name)
        assert [image.id for image in found.items] == [stored.id]
        again = get_image(stored.id)
        np.testing.assert_array_equal(again.data.sel(c=0, t=0).values, pixels)
        thumbnail = httpx.get(
            f"{second.url}/mikro/images/{stored.id}/thumbnail.png",
            headers={"Authorization": f"Bearer {bearer_token(reader)}"},
        )
        assert thumbnail.status_code == 200
        assert thumbnail.content.startswith(b"\x89PNG")
        # the writer's token, made through the first replica, deletes through the second
        assert (
            httpx.delete(f"{second.url}/mikro/images/{stored.id}", headers=owner).status_code == 204
        )
        assert search_images(name=name).items == []
    assert [key for key in _objects(s3_endpoint, s3_bucket, "") if stored.id in key] == []
