"""The s3 datalayer after verification: an uploader's credentials outlive its grant.

STS hands out credentials for at least 900 s, so an uploader may still write below its image's
prefix after `finish`, an abort or a delete. Reads must stay bounded by what was verified, and
the sweep must go on removing late keys until those credentials lapsed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from zarr.codecs import ZstdCodec

from arkitekt.protocol.mikro import S3Access, UploadRequest
from arkitekt_server import EmbeddedServer
from arkitekt_server._db import Database, utcnow
from arkitekt_server.mikro._bucket import MIN_SECONDS
from arkitekt_server.mikro._models import GrantRow, ImageRow
from arkitekt_server.mikro._storage import DiskLocation, StoreInvalidError, verify_store
from tests.arkitekt.mikro.buckets import bucket_keys
from tests.arkitekt_server.mikro.small_store import CHUNKS, SHAPE, store_keys
from tests.arkitekt_server.mikro.test_bucket import _grant, _sweep, _write


def _run_db(server: EmbeddedServer, statement: Any) -> None:
    async def run() -> None:
        database = Database.in_dir(server.settings.data_dir)
        try:
            async with database.sessions() as session:
                await session.execute(statement)
                await session.commit()
        finally:
            await database.dispose()

    asyncio.run(run())


def _row(server: EmbeddedServer, table: type[Any], key: str) -> Any:
    async def run() -> Any:
        database = Database.in_dir(server.settings.data_dir)
        try:
            async with database.sessions() as session:
                return await session.get(table, key)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _finished(http: httpx.Client, compressor: Any = None) -> tuple[str, S3Access]:
    grant = _grant(http).json()
    access = S3Access.model_validate(grant["s3"])
    _write(access, store_keys(compressor))
    answer = http.post(f"/uploads/{grant['id']}/finish/")
    assert answer.status_code == 201, answer.text
    return grant["id"], access


# -- reads after finish ----------------------------------------------------------------------
def test_a_zarr_json_rewritten_after_finish_is_refused_not_decoded(
    s3_http: httpx.Client, zstd_bomb: Callable[[int, int], bytes]
) -> None:
    image, access = _finished(s3_http, ZstdCodec())
    meta = json.loads(store_keys(ZstdCodec())["0/zarr.json"])
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 1, 1, 64, 64]
    raw = 64 * 64 * 2  # what each chunk may decode to if the new zarr.json were believed
    _write(access, {"0/zarr.json": json.dumps(meta).encode()})  # still valid: the grant's keys
    _write(access, {key: zstd_bomb(raw, raw) for key in ("0/c/0/0/0/0/0", "0/c/0/0/1/0/0")})

    thumbnail = s3_http.get(f"/images/{image}/thumbnail.png")
    assert thumbnail.status_code == 422, thumbnail.text
    assert "zarr.json is not the one verified" in thumbnail.json()["detail"]
    served = s3_http.get(f"/images/{image}/store/0/zarr.json")  # the http read path refuses too
    assert served.status_code == 422
    assert "zarr.json is not the one verified" in served.json()["detail"]
    assert s3_http.get(f"/images/{image}").status_code == 200  # the image itself stays


def test_an_image_without_a_kept_hash_is_bounded_by_its_row(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    image, access = _finished(s3_http)
    unhashed = {"meta_sha256": None, "levels": [{"chunks": CHUNKS, "sha256": None}]}
    _run_db(s3_server, update(ImageRow).where(ImageRow.id == image).values(**unhashed))
    meta = json.loads(store_keys()["0/zarr.json"])
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 1, 1, 8, 8]
    _write(access, {"0/zarr.json": json.dumps(meta).encode()})
    thumbnail = s3_http.get(f"/images/{image}/thumbnail.png")
    assert thumbnail.status_code == 422, thumbnail.text
    assert "chunk_grid is" in thumbnail.json()["detail"]


# -- credentials that outlive their grant ----------------------------------------------------
def test_credentials_until_is_recorded_and_renewal_refused_near_the_grants_end(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    before = utcnow()
    grant = _grant(s3_http).json()
    row = _row(s3_server, GrantRow, grant["id"])
    assert row.credentials_until >= before + dt.timedelta(seconds=MIN_SECONDS)
    soon = utcnow() + dt.timedelta(seconds=MIN_SECONDS - 10)
    _run_db(s3_server, update(GrantRow).where(GrantRow.id == grant["id"]).values(expires_at=soon))
    refused = s3_http.post(f"/uploads/{grant['id']}/credentials/")
    assert refused.status_code == 409, refused.text
    assert "finish the upload now" in refused.json()["detail"]


def test_keys_written_after_the_grant_expired_are_swept_until_its_credentials_lapse(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    grant = _grant(s3_http).json()
    access = S3Access.model_validate(grant["s3"])
    _write(access, store_keys())
    lapse = _row(s3_server, GrantRow, grant["id"]).credentials_until
    ends = utcnow() + dt.timedelta(seconds=60)  # the grant ends long before its credentials
    _run_db(s3_server, update(GrantRow).where(GrantRow.id == grant["id"]).values(expires_at=ends))

    _sweep(s3_server, ends + dt.timedelta(seconds=60))
    assert bucket_keys(s3_server, access.prefix) == []
    _write(access, {"zarr.json": b"late", "0/c/0/0/0/0/0": b"late"})  # the credentials still work
    _sweep(s3_server, ends + dt.timedelta(seconds=600))
    assert bucket_keys(s3_server, access.prefix) == []
    assert _row(s3_server, GrantRow, grant["id"]) is not None  # kept: they may write again
    _sweep(s3_server, lapse + dt.timedelta(seconds=1))
    assert _row(s3_server, GrantRow, grant["id"]) is None


def test_a_deleted_images_prefix_is_swept_until_its_uploaders_credentials_lapse(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    image, access = _finished(s3_http)
    lapse = _row(s3_server, ImageRow, image).credentials_until
    assert lapse is not None
    assert s3_http.delete(f"/images/{image}").status_code == 204
    assert bucket_keys(s3_server, access.prefix) == []
    _write(access, store_keys())  # the uploader's credentials outlive the image
    _sweep(s3_server, utcnow())
    assert bucket_keys(s3_server, access.prefix) == []
    assert s3_http.get(f"/images/{image}").status_code == 404
    _sweep(s3_server, lapse + dt.timedelta(seconds=1))
    assert _row(s3_server, GrantRow, image) is None  # the tombstone goes once they lapsed


# -- listing ---------------------------------------------------------------------------------
class _Counted(DiskLocation):
    """A store directory that counts the keys its listing yielded."""

    listed = 0

    def entries(self) -> Iterator[tuple[str, int]]:
        for entry in super().entries():
            self.listed += 1
            yield entry


def test_verification_stops_listing_at_the_first_unexpected_key(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    for index in range(500):
        (tmp_path / "junk" / str(index)).write_bytes(b"")
    location = _Counted(tmp_path)
    with pytest.raises(StoreInvalidError, match="unexpected file 'junk/"):
        verify_store(
            location, UploadRequest(name="junk", shape=SHAPE, chunks=CHUNKS, dtype="uint16")
        )
    assert location.listed == 1


def test_removing_a_prefix_deletes_every_page_of_keys(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    grant = _grant(s3_http).json()
    access = S3Access.model_validate(grant["s3"])
    client = boto3.client(  # one client (thread-safe) for the 1001 keys: one more than a page
        "s3",
        endpoint_url=access.endpoint_url,
        region_name=access.region,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        aws_session_token=access.session_token,
    )
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: client.put_object(
                    Bucket=access.bucket, Key=f"{access.prefix}/junk/{i}", Body=b""
                ),
                range(1001),
            )
        )
    assert len(bucket_keys(s3_server, access.prefix)) == 1001
    assert s3_http.delete(f"/uploads/{grant['id']}/").status_code == 204
    assert bucket_keys(s3_server, access.prefix) == []
