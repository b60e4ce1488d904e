"""The s3 datalayer on the server: scoped credentials, start-up refusals, sweeping, hostile stores.

The test S3 server (moto) hands out STS credentials but enforces no policy, so what the
credentials may reach is tested on the policy the server builds and sends to STS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from zarr.codecs import ZstdCodec

from arkitekt.protocol.mikro import S3Access
from arkitekt_server import EmbeddedServer, ServerSettings, ServerStartError
from arkitekt_server._db import Database, utcnow
from arkitekt_server._settings import S3Settings, ServerConfigError
from arkitekt_server.mikro import sweep
from arkitekt_server.mikro._bucket import MIN_SECONDS, Bucket, credential_seconds, scoped_policy
from arkitekt_server.mikro._common import GRANT_TTL, MikroState
from arkitekt_server.mikro._storage import Layout
from tests.arkitekt.mikro.buckets import bucket_keys, s3_settings
from tests.arkitekt_server.mikro.small_store import CHUNKS, SHAPE, store_keys
from tests.helpers import free_port

ID = "0b6f3c8e-5a43-4c1e-9d1c-7f2a3b4c5d6e"


# -- the policy ------------------------------------------------------------------------------
def _resources(policy: dict[str, Any]) -> list[str]:
    return [r for statement in policy["Statement"] for r in statement["Resource"]]


def test_upload_credentials_reach_only_the_images_prefix() -> None:
    prefix = f"arkitekt/images/{ID}"
    policy = scoped_policy("lab", prefix, writable=True)
    objects, listing = policy["Statement"]
    assert objects == {
        "Effect": "Allow",
        "Action": [
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
        ],
        "Resource": [f"arn:aws:s3:::lab/{prefix}/*"],
    }
    assert listing == {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": ["arn:aws:s3:::lab"],
        "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
    }
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    for resource in _resources(policy):  # a wildcard only right after the image's prefix
        assert resource == "arn:aws:s3:::lab" or resource == f"arn:aws:s3:::lab/{prefix}/*"
        assert "*" not in resource.removesuffix(f"{prefix}/*")
    assert len(json.dumps(policy, separators=(",", ":"))) < 2048  # STS's limit for a policy


def test_read_credentials_may_only_get_and_list_the_images_prefix() -> None:
    prefix = f"p/images/{ID}"
    policy = scoped_policy("lab", prefix, writable=False)
    assert [s["Action"] for s in policy["Statement"]] == [["s3:GetObject"], ["s3:ListBucket"]]
    assert _resources(policy) == [f"arn:aws:s3:::lab/{prefix}/*", "arn:aws:s3:::lab"]


@pytest.mark.parametrize("prefix", ["", "images/", "images/*", "a?b", "x$y"])
def test_a_prefix_that_would_widen_the_policy_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a store prefix"):
        scoped_policy("lab", prefix, writable=True)


def test_an_images_prefix_is_built_from_its_id_only() -> None:
    bucket = Bucket(S3Settings.model_validate(s3_settings("http://127.0.0.1:1", "lab")))
    assert bucket.prefix(ID.upper()) == f"arkitekt/images/{ID}"
    for hostile in ("../other", "*", f"{ID}/..", ""):
        with pytest.raises(ValueError, match="UUID"):
            bucket.prefix(hostile)


def test_credentials_live_as_configured_never_past_the_grant_never_below_sts_minimum() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert credential_seconds(3600, None, now) == 3600
    assert credential_seconds(3600, now + dt.timedelta(seconds=2000), now) == 2000
    assert credential_seconds(3600, now + dt.timedelta(seconds=10), now) == MIN_SECONDS


def test_s3_settings_come_from_the_environment_and_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in s3_settings("http://127.0.0.1:9000/", "lab").items():
        monkeypatch.setenv(f"ARKITEKT_SERVER_S3__{key.upper()}", value)
    monkeypatch.setenv("ARKITEKT_SERVER_S3__PREFIX", "/deploy/one/")
    settings = ServerSettings(data_dir=tmp_path)
    assert settings.s3 is not None
    assert (settings.s3.endpoint_url, settings.s3.bucket) == ("http://127.0.0.1:9000", "lab")
    assert settings.s3.prefix == "deploy/one/"
    assert "server-secret" not in repr(settings)
    for key, value in (("CREDENTIALS_SECONDS", "60"), ("PREFIX", "a/../b"), ("PREFIX", "a*")):
        monkeypatch.setenv(f"ARKITEKT_SERVER_S3__{key}", value)
        with pytest.raises(ServerConfigError, match=key.lower()):
            ServerSettings(data_dir=tmp_path)
        monkeypatch.delenv(f"ARKITEKT_SERVER_S3__{key}")


# -- grants ----------------------------------------------------------------------------------
@pytest.fixture
def sts_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the server asks STS (the real call goes through, recorded)."""
    calls: list[dict[str, Any]] = []
    real = Bucket._client

    class Recording:
        def __init__(self, client: Any) -> None:
            self.client = client

        def assume_role(self, **arguments: Any) -> Any:
            calls.append(arguments)
            return self.client.assume_role(**arguments)

    def recording(self: Bucket, service: str) -> Any:
        client = real(self, service)
        return Recording(client) if service == "sts" else client

    monkeypatch.setattr(Bucket, "_client", recording)
    return calls


def _grant(http: httpx.Client, **change: Any) -> httpx.Response:
    body = {"name": "bucket", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}
    return http.post("/uploads/", json=body | change)


def _write(access: S3Access, keys: dict[str, bytes]) -> None:
    """Write keys as the client does: with the grant's credentials, below its prefix."""
    client = boto3.client(
        "s3",
        endpoint_url=access.endpoint_url,
        region_name=access.region,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        aws_session_token=access.session_token,
    )
    for key, value in keys.items():
        client.put_object(Bucket=access.bucket, Key=f"{access.prefix}/{key}", Body=value)


def test_an_upload_grant_carries_scoped_expiring_credentials_never_the_servers_key(
    s3_server: EmbeddedServer, s3_http: httpx.Client, sts_calls: list[dict[str, Any]]
) -> None:
    settings = s3_server.settings.s3
    assert settings is not None
    answer = _grant(s3_http)
    assert answer.status_code == 201, answer.text
    assert settings.secret_access_key.get_secret_value() not in answer.text
    grant = answer.json()
    access = S3Access.model_validate(grant["s3"])
    prefix = f"{settings.prefix}images/{grant['id']}"
    assert (grant["datalayer"], access.prefix, access.bucket) == ("s3", prefix, settings.bucket)
    assert access.writable
    assert access.access_key_id != settings.access_key_id
    assert access.session_token
    expires = dt.datetime.fromisoformat(grant["expires_at"])
    assert utcnow() < access.expires_at <= expires
    (call,) = sts_calls
    assert json.loads(call["Policy"]) == scoped_policy(settings.bucket, prefix, writable=True)
    assert MIN_SECONDS <= call["DurationSeconds"] <= GRANT_TTL.total_seconds()
    assert call["RoleArn"] == settings.role_arn

    renewed = s3_http.post(f"/uploads/{grant['id']}/credentials/")
    assert renewed.status_code == 200, renewed.text
    assert S3Access.model_validate(renewed.json()).prefix == prefix
    assert len(sts_calls) == 2

    _write(access, store_keys())
    finished = s3_http.post(f"/uploads/{grant['id']}/finish/")
    assert finished.status_code == 201, finished.text
    assert finished.json()["storage"] == "s3"
    assert finished.json()["local_path"] is None
    assert s3_http.post(f"/uploads/{grant['id']}/credentials/").status_code == 404

    read = s3_http.post(f"/images/{grant['id']}/access/")
    assert read.status_code == 200, read.text
    assert not S3Access.model_validate(read.json()).writable
    assert json.loads(sts_calls[-1]["Policy"]) == scoped_policy(
        settings.bucket, prefix, writable=False
    )
    # the http read path serves an image in the bucket too, bounded as on disk
    assert (
        s3_http.get(f"/images/{grant['id']}/store/0/c/0/0/1/0/1").content
        == store_keys()["0/c/0/0/1/0/1"]
    )
    thumbnail = s3_http.get(f"/images/{grant['id']}/thumbnail.png")
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("datalayer", ["local", "http"])
def test_a_server_with_a_bucket_refuses_other_datalayers(
    s3_http: httpx.Client, datalayer: str
) -> None:
    answer = _grant(s3_http, datalayer=datalayer)
    assert answer.status_code == 400
    assert "S3 bucket" in answer.json()["detail"]


# -- hostile stores in the bucket ------------------------------------------------------------
def _zstd_bomb_keys(bomb: Callable[[int, int], bytes]) -> dict[str, bytes]:
    keys = store_keys(ZstdCodec())
    keys["0/c/0/0/0/0/0"] = bomb(1 << 30, 1 << 30)  # declares 1 GiB, ~33 KB stored
    return keys


def _non_canonical(_: Callable[[int, int], bytes]) -> dict[str, bytes]:
    keys = store_keys()
    keys["0/c/00/0/0/0/0"] = keys.pop("0/c/0/0/0/0/0")
    return keys


def _oversized(_: Callable[[int, int], bytes]) -> dict[str, bytes]:
    return store_keys() | {"0/c/0/0/1/0/1": bytes(1 << 17)}  # far beyond any 64-byte chunk


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        (_non_canonical, "unexpected file '0/c/00/0/0/0/0'"),
        (_oversized, "more than the"),
        (_zstd_bomb_keys, "declares 1073741824"),
    ],
)
def test_a_hostile_store_in_the_bucket_is_refused_like_on_disk(
    s3_server: EmbeddedServer,
    s3_http: httpx.Client,
    zstd_bomb: Callable[[int, int], bytes],
    build: Callable[[Callable[[int, int], bytes]], dict[str, bytes]],
    refusal: str,
) -> None:
    grant = _grant(s3_http).json()
    _write(S3Access.model_validate(grant["s3"]), build(zstd_bomb))
    refused = s3_http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400, refused.text
    assert refusal in refused.json()["detail"]
    assert s3_http.get(f"/images/{grant['id']}").status_code == 404  # no half image
    assert s3_http.delete(f"/uploads/{grant['id']}/").status_code == 204
    assert bucket_keys(s3_server, S3Access.model_validate(grant["s3"]).prefix) == []


# -- sweeping --------------------------------------------------------------------------------
def _sweep(server: EmbeddedServer, now: dt.datetime) -> int:
    assert server.settings.s3 is not None
    state = MikroState(bucket=Bucket(server.settings.s3))

    async def run() -> int:
        database = Database.in_dir(server.settings.data_dir)
        try:
            return await sweep(database, Layout(server.settings.data_dir), now=now, state=state)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_the_sweep_deletes_an_abandoned_grants_keys_in_the_bucket_and_nothing_else(
    s3_server: EmbeddedServer, s3_http: httpx.Client
) -> None:
    settings = s3_server.settings.s3
    assert settings is not None
    image = _grant(s3_http).json()
    _write(S3Access.model_validate(image["s3"]), store_keys())
    assert s3_http.post(f"/uploads/{image['id']}/finish/").status_code == 201
    abandoned = _grant(s3_http).json()
    _write(S3Access.model_validate(abandoned["s3"]), store_keys())
    unknown = f"{settings.prefix}images/{uuid.uuid4()}/zarr.json"  # no grant or image knows it
    outside = "someone-elses/zarr.json"
    for key in (unknown, outside):
        _write(S3Access.model_validate(image["s3"] | {"prefix": key.rsplit("/", 1)[0]}),
               {"zarr.json": b"{}"})  # fmt: skip
    before = set(bucket_keys(s3_server))

    _sweep(s3_server, utcnow())  # nothing expired: nothing goes
    assert set(bucket_keys(s3_server)) == before
    later = utcnow() + GRANT_TTL + dt.timedelta(seconds=1)
    assert _sweep(s3_server, later) >= 1
    gone = {k for k in before if k.startswith(f"{settings.prefix}images/{abandoned['id']}/")}
    assert len(gone) == 6  # the group's and level 0's zarr.json, 4 chunks
    assert set(bucket_keys(s3_server)) == before - gone  # the image, unknown and other keys stay
    assert s3_http.get(f"/images/{image['id']}").status_code == 200


# -- start-up refusals -----------------------------------------------------------------------
def test_an_unreachable_store_stops_the_server_in_one_line_without_the_secret(
    server_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    for key, value in s3_settings(f"http://127.0.0.1:{port}", "lab-bucket").items():
        monkeypatch.setenv(f"ARKITEKT_SERVER_S3__{key.upper()}", value)
    server_process.start(wait=False)
    output = server_process.finish()
    assert server_process.process.returncode != 0
    line = next(line for line in output.splitlines() if "refused to start" in line)
    assert "arkitekt server refused to start: mikro: the S3 store at " in line
    assert f"http://127.0.0.1:{port} (bucket 'lab-bucket') could not be reached" in line
    assert "check the endpoint_url" in line
    assert "server-secret" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("name", ["bad_bucket!", "with space"])
def test_a_bucket_that_cannot_exist_stops_the_server(
    s3_endpoint: str, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = S3Settings.model_validate(s3_settings(s3_endpoint, name))
    with pytest.raises(ServerStartError) as refused:
        Bucket(settings).check()
    message = str(refused.value)
    assert message.startswith(f"the S3 store at {s3_endpoint} (bucket {name!r})")
    assert "check the bucket name" in message
    assert "\n" not in message
    assert "server-secret" not in message
    server = EmbeddedServer(
        ServerSettings(
            host="127.0.0.1", port=0, data_dir=tmp_path, log_level="warning", s3=settings
        )
    )
    with pytest.raises(ServerStartError):
        server.start()


@pytest.mark.parametrize(
    ("operation", "code", "hint"),
    [
        ("head_bucket", "InvalidAccessKeyId", "check access_key_id and secret_access_key"),
        ("head_bucket", "SignatureDoesNotMatch", "check access_key_id and secret_access_key"),
        ("put_object", "AccessDenied", "check the permissions of the server's key (that the"),
    ],
)
def test_wrong_credentials_or_permissions_stop_the_server_naming_what_to_check(
    operation: str, code: str, hint: str
) -> None:
    # The test S3 server accepts any key and allows everything: its refusals are stubbed.
    from botocore.stub import Stubber

    settings = S3Settings.model_validate(s3_settings("http://127.0.0.1:1", "lab-bucket"))
    bucket = Bucket(settings)
    client = bucket._new_client("s3")
    stub = Stubber(client)
    if operation == "put_object":
        stub.add_response("head_bucket", {}, {"Bucket": "lab-bucket"})
    stub.add_client_error(operation, service_error_code=code, http_status_code=403)
    bucket._clients["s3"] = client
    with stub, pytest.raises(ServerStartError) as refused:
        bucket.check()
    message = str(refused.value)
    assert message.startswith("the S3 store at http://127.0.0.1:1 (bucket 'lab-bucket') ")
    assert f": {code}; {hint}" in message
    assert "server-secret" not in message


def test_a_store_without_sts_stops_the_server_saying_so(s3_endpoint: str, s3_bucket: str) -> None:
    from botocore.stub import Stubber

    bucket = Bucket(S3Settings.model_validate(s3_settings(s3_endpoint, s3_bucket)))
    sts = bucket._new_client("sts")
    stub = Stubber(sts)  # the bucket part is real; an S3 store without STS is stubbed
    stub.add_client_error("assume_role", service_error_code="NotImplemented", http_status_code=501)
    bucket._clients["sts"] = sts
    with stub, pytest.raises(ServerStartError) as refused:
        bucket.check()
    message = str(refused.value)
    assert "gave no scoped credentials (STS AssumeRole): NotImplemented" in message
    assert "check that the store offers STS AssumeRole at the endpoint_url" in message
    assert s3_bucket in bucket_names(s3_endpoint)  # the missing bucket was created first


def bucket_names(endpoint: str) -> list[str]:
    """The names of the buckets at the test endpoint."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    return [item["Name"] for item in client.list_buckets()["Buckets"]]
