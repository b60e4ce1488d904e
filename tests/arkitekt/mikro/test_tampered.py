"""Reads of an image whose bucket keys changed after the upload finished.

An uploader's credentials outlive its upload (STS's shortest lifetime is 900 s), so the keys in
the bucket may no longer be what the server verified. The client reads them only as far as the
image's record bounds them: a clear error, never a huge allocation.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from arkitekt import easy
from arkitekt.errors import MikroError
from arkitekt.mikro import from_xarray, get_image
from arkitekt_server import EmbeddedServer
from tests.arkitekt.mikro.buckets import server_bucket


def _stored(
    server: EmbeddedServer, tmp_path: Path, read_through: str | None = None
) -> tuple[Any, str, str]:
    """An app (reading through ``read_through``), and the id and key prefix of an image it
    stored in the bucket (one chunk)."""
    app = easy("tampered", url=server.url, headless=True, cache_dir=tmp_path / "cache")
    app.mikro.datalayer = read_through  # type: ignore[assignment]
    app.__enter__()
    pixels = xr.DataArray(np.arange(128, dtype="uint16").reshape(2, 8, 8), dims=["z", "y", "x"])
    image = from_xarray(pixels, name="tampered", datalayer="s3")
    assert image.chunks == (1, 1, 2, 8, 8)
    assert server.settings.s3 is not None
    return app, image.id, f"{server.settings.s3.prefix}images/{image.id}"


def test_a_store_whose_metadata_no_longer_matches_the_record_is_refused(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    app, image_id, prefix = _stored(s3_server, tmp_path)
    bucket, name = server_bucket(s3_server), s3_server.settings.s3.bucket  # type: ignore[union-attr]
    try:
        level = f"{prefix}/0/zarr.json"
        meta = json.loads(bucket.get_object(Bucket=name, Key=level)["Body"].read())
        meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 1, 1, 4096, 4096]
        bucket.put_object(Bucket=name, Key=level, Body=json.dumps(meta))
        with pytest.raises(MikroError) as refused:
            get_image(image_id).data  # noqa: B018
    finally:
        app.__exit__(None, None, None)
    message = str(refused.value)
    assert f"the store of image {image_id!r} does not hold what its record says" in message
    assert "chunks is [1, 1, 1, 4096, 4096], the record says [1, 1, 2, 8, 8]" in message


@pytest.mark.parametrize("datalayer", ["s3", "http"])
def test_a_chunk_declaring_more_than_the_record_allows_is_not_decoded(
    s3_server: EmbeddedServer, tmp_path: Path, datalayer: str
) -> None:
    app, image_id, prefix = _stored(s3_server, tmp_path, datalayer)
    bucket, name = server_bucket(s3_server), s3_server.settings.s3.bucket  # type: ignore[union-attr]
    key = f"{prefix}/0/c/0/0/0/0/0"
    try:
        good = bucket.get_object(Bucket=name, Key=key)["Body"].read()
        lying = good[:4] + struct.pack("<I", 1 << 24) + good[8:]  # blosc: 16 MiB decoded
        bucket.put_object(Bucket=name, Key=key, Body=lying)
        with pytest.raises(MikroError) as refused:
            get_image(image_id).data.values  # noqa: B018
    finally:
        app.__exit__(None, None, None)
    message = str(refused.value)
    assert f"the store of image {image_id!r} does not hold what its record says" in message
    assert "'0/c/0/0/0/0/0' declares 16777216 decoded bytes" in message
