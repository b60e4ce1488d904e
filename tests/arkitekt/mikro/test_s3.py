"""The s3 datalayer's refusals on the client: a bucket that says no becomes an arkitekt error.

The test S3 server accepts any credentials, so the refusals of a real store (403 AccessDenied,
400 ExpiredToken) are played by the recording server, which also plays the mikro API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from arkitekt import App, easy
from arkitekt.errors import PermissionDeniedError, UploadError
from arkitekt.mikro import from_xarray, get_image
from arkitekt.protocol.mikro import ImageRecord, S3Access
from arkitekt.protocol.ome import group_document
from arkitekt_server import EmbeddedServer
from tests.helpers import bearer_token

ID = "0b6f3c8e-5a43-4c1e-9d1c-7f2a3b4c5d6e"
PREFIX = f"p/images/{ID}"
SECRET = "the-scoped-secret-key"


def _s3_error(code: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{code}</Message><Resource>/b/{PREFIX}</Resource></Error>"
    ).encode()


def _access(url: str, *, expired: bool = False, writable: bool = True) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=-1 if expired else 1)
    return S3Access(
        endpoint_url=url,
        bucket="b",
        prefix=PREFIX,
        region="us-east-1",
        access_key_id="ASIA-SCOPED",
        secret_access_key=SECRET,
        session_token="token",
        expires_at=expires,
        writable=writable,
    ).model_dump(mode="json")


def _refuse_every_key(server: Any, code: int, error: str) -> None:
    for key in ("zarr.json", "0/c/0/0/0/0/0"):
        server.answers[f"/b/{PREFIX}/{key}"] = (
            code,
            _s3_error(error),
            {"content-type": "application/xml"},
        )


def test_an_upload_the_bucket_refuses_is_an_upload_error_and_is_aborted(
    recording_server: Any, record_app: Callable[..., App]
) -> None:
    server = recording_server
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    grant = {"id": ID, "datalayer": "s3", "s3": _access(server.url), "expires_at": expires}
    server.answers["/mikro/uploads/"] = (201, grant)
    server.answers[f"/mikro/uploads/{ID}/"] = (204, b"")
    _refuse_every_key(server, 403, "AccessDenied")
    with record_app(mikro={"datalayer": "s3"}), pytest.raises(UploadError) as refused:
        from_xarray(xr.DataArray(np.ones((4, 4), "uint8"), dims=["y", "x"]), name="no")
    message = str(refused.value)
    assert f"the object store refused reading {server.url} bucket 'b' key {PREFIX}/" in message
    assert "do not reach it" in message
    assert "nothing was stored" in message
    assert SECRET not in message
    assert ("DELETE", f"/mikro/uploads/{ID}/") in server.seen  # the grant was aborted


def test_a_read_with_expired_credentials_is_a_permission_error_saying_so(
    recording_server: Any, record_app: Callable[..., App]
) -> None:
    server = recording_server
    record = ImageRecord(
        id=ID,
        name="in a bucket",
        shape=(1, 1, 1, 4, 4),
        chunks=(1, 1, 1, 4, 4),
        dtype="uint8",
        created_at=dt.datetime.now(dt.UTC),
        owner="o",
        store=server.url + f"/mikro/images/{ID}/store/",
        storage="s3",
    ).model_dump(mode="json")
    server.answers[f"/mikro/images/{ID}"] = (200, record)
    server.answers[f"/mikro/images/{ID}/access/"] = (
        200,
        _access(server.url, expired=True, writable=False),
    )
    _refuse_every_key(server, 400, "ExpiredToken")
    with record_app():
        image = get_image(ID)
        with pytest.raises(PermissionDeniedError) as refused:
            image.data.values  # noqa: B018
    message = str(refused.value)
    assert "the credentials from the server expired" in message
    assert f"{server.url} bucket 'b'" in message
    assert SECRET not in message
    assert ("POST", f"/mikro/images/{ID}/access/") in server.seen
    assert ("GET", f"/mikro/images/{ID}/store/zarr.json") not in server.seen  # not via http


def test_credentials_are_renewed_through_the_server_near_their_expiry() -> None:
    from arkitekt.mikro._s3 import Credentials

    soon = S3Access.model_validate(_access("http://127.0.0.1:1") | {"session_token": "first"})
    soon = soon.model_copy(
        update={"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)}
    )
    later = soon.model_copy(
        update={"session_token": "second", "expires_at": soon.expires_at + dt.timedelta(hours=1)}
    )
    renewals: list[S3Access] = []

    def renew() -> S3Access:
        renewals.append(later)
        return later

    provider = Credentials(soon, renew)
    assert provider()["token"] == "second"  # 30 s left: renewed before use
    assert provider()["token"] == "second"  # an hour left: kept
    assert len(renewals) == 1
    assert provider()["expires_at"] == later.expires_at
    assert "second" not in repr(later)  # never in a log line
    assert SECRET not in repr(later)


def test_an_upload_outliving_its_credentials_renews_them_through_the_server(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    import httpx
    import zarr
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    app = easy("renewing", url=s3_server.url, headless=True, cache_dir=tmp_path / "cache")
    with app:
        body = {"name": "renewed", "shape": [1, 1, 1, 4, 4], "chunks": [1, 1, 1, 2, 2]}
        grant = httpx.post(
            s3_server.url + "/mikro/uploads/",
            json=body | {"dtype": "uint8"},
            headers={"Authorization": f"Bearer {bearer_token(app)}"},
        ).json()
        first = S3Access.model_validate(grant["s3"])
        soon = first.model_copy(  # as if the upload had run for all but 30 s of their life
            update={"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)}
        )
        renew = s3_server.url + f"/mikro/uploads/{grant['id']}/credentials/"
        store = app.mikro._bucket_store(soon, renew)
        array = zarr.create_array(
            store, name="0", shape=(1, 1, 1, 4, 4), chunks=(1, 1, 1, 2, 2), dtype="uint8",
            dimension_names=["t", "c", "z", "y", "x"], config={"write_empty_chunks": True},
        )  # fmt: skip
        array[:] = np.arange(16, dtype=np.uint8).reshape(1, 1, 1, 4, 4)
        group = group_document((1, 1, 1, 4, 4), {}, [], [(0.0, 255.0, 0.0, 15.0)])
        sync(store.set("zarr.json", default_buffer_prototype().buffer.from_bytes(group)))
        renewed = store.access
        assert renewed.session_token != first.session_token  # fresh ones, from STS
        assert renewed.expires_at > soon.expires_at
        assert renewed.prefix == first.prefix
        answer = httpx.post(
            s3_server.url + f"/mikro/uploads/{grant['id']}/finish/",
            headers={"Authorization": f"Bearer {bearer_token(app)}"},
        )
        assert answer.status_code == 201, answer.text


def _store_of(data: xr.DataArray) -> Any:
    """The (checked) store a lazily read ``Image.data`` reads through."""
    return data.variable._data.array._array.store_path.store


def test_an_image_read_again_reuses_its_bucket_store_while_its_credentials_last(
    s3_server: EmbeddedServer, tmp_path: Path
) -> None:
    pixels = np.arange(32, dtype=np.uint16).reshape(2, 4, 4)
    app = easy("rereading", url=s3_server.url, headless=True, cache_dir=tmp_path / "cache")
    with app:
        stored = from_xarray(xr.DataArray(pixels, dims=["z", "y", "x"]), name="read again")
        first = get_image(stored.id).data
        np.testing.assert_array_equal(first.values[0, 0], pixels)
        second = get_image(stored.id).data
        kept = _store_of(second)
        assert kept is _store_of(first)  # no new credentials, client or zarr.json read
        np.testing.assert_array_equal(second.values[0, 0], pixels)
        bucket = kept._store
        bucket.credentials.access = bucket.access.model_copy(  # as if granted long ago
            update={"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)}
        )
        third = get_image(stored.id).data
        assert _store_of(third) is not kept  # they run out soon: new ones from the server
        assert _store_of(third)._store.access.expires_at > bucket.access.expires_at
        np.testing.assert_array_equal(third.values[0, 0], pixels)
