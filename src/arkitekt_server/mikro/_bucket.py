"""The ``s3`` datalayer on the server: the bucket, its start-up check and scoped credentials.

The server's own key (``s3`` settings) never leaves the server. A client gets credentials from
STS ``AssumeRole`` whose inline session policy reaches only one image's prefix
(:func:`scoped_policy`): put, get and delete (uploads) or get alone (reads) on
``arn:aws:s3:::BUCKET/PREFIX/*``, and ``ListBucket`` only for keys under that prefix. S3 grants
what both the role and the session policy allow, so the policy bounds them whatever the role
may do. Credentials live ``credentials_seconds`` (900 s by default, STS's shortest); an open
upload's client renews them through the server, which stops renewing once the upload is
finished, so an uploader can rewrite its own finished image for at most that long (see
:mod:`~arkitekt_server.mikro._bucket_uploads` for how the sweep outlasts them). Nothing the
server reads trusts what a store says now: every read is bounded by the image's verified row
and refuses a ``zarr.json`` changed since
(:func:`~arkitekt_server.mikro._storage.open_bounded`). Everything here that talks to the
store blocks: call it in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from arkitekt.protocol.mikro import S3_RETRY, S3Access
from arkitekt_server._errors import ServerStartError
from arkitekt_server._settings import S3Settings
from arkitekt_server.mikro._locations import BucketLocation

__all__ = ["MIN_SECONDS", "Bucket", "credential_seconds", "scoped_policy"]

MIN_SECONDS = 900
"""The shortest lifetime STS grants."""
_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 2}}
_WRITE_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload")


def scoped_policy(bucket: str, prefix: str, *, writable: bool) -> dict[str, Any]:
    """The session policy of credentials that reach only the keys below ``prefix``.

    Args:
        bucket: the bucket's name.
        prefix: the store root (``<deployment prefix>images/<id>``), no trailing ``/``.
        writable: allow put and delete (an upload), else get only (a read).

    Returns:
        The IAM policy document (JSON-ready).

    Raises:
        ValueError: ``prefix`` is empty, ends in ``/`` or holds a wildcard (it would widen the
            policy beyond one image).

    """
    if not prefix or prefix.endswith("/") or any(ch in prefix for ch in "*?$"):
        raise ValueError(f"not a store prefix: {prefix!r}")
    actions = list(_WRITE_ACTIONS) if writable else ["s3:GetObject"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": actions,
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
            },
        ],
    }


def credential_seconds(configured: int, until: dt.datetime | None, now: dt.datetime) -> int:
    """How long scoped credentials live: as configured, never past ``until`` (an upload
    grant's expiry), never less than STS allows."""
    seconds = configured
    if until is not None:
        seconds = min(seconds, math.floor((until - now).total_seconds()))
    return max(MIN_SECONDS, seconds)


@dataclass(frozen=True)
class Bucket:
    """The server's bucket (see the module docstring)."""

    settings: S3Settings
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """boto3 clients by service, made once (they are thread-safe; making one costs ~50 ms)."""

    @property
    def where(self) -> str:
        """The endpoint and bucket, for messages (never a key)."""
        return f"the S3 store at {self.settings.endpoint_url} (bucket {self.settings.bucket!r})"

    def prefix(self, image_id: str) -> str:
        """The store root of an image (or an upload: an image keeps its grant's id)."""
        return f"{self.settings.prefix}images/{uuid.UUID(image_id)}"

    def location(self, image_id: str) -> BucketLocation:
        """The keys of an image's (or an upload's) store, read with the server's key."""
        prefix = self.prefix(image_id)
        name = f"s3://{self.settings.bucket}/{prefix}"
        return BucketLocation(self.object_store(prefix), name)

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self._new_client(service)
        return client

    def _new_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        settings = self.settings
        return boto3.client(
            service,
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key.get_secret_value(),
            config=Config(signature_version="s3v4" if service == "s3" else None, **_TIMEOUTS),
        )

    def object_store(self, prefix: str) -> Any:
        """An obstore ``S3Store`` of the server's own key, rooted at ``prefix``."""
        from obstore.store import S3Store

        settings = self.settings
        return S3Store(
            settings.bucket,
            prefix=prefix,
            endpoint=settings.endpoint_url,
            access_key_id=settings.access_key_id,
            secret_access_key=settings.secret_access_key.get_secret_value(),
            region=settings.region,
            virtual_hosted_style_request=False,
            client_options={
                "allow_http": settings.endpoint_url.startswith("http://"),
                "timeout": dt.timedelta(seconds=60),
                "connect_timeout": dt.timedelta(seconds=5),
            },
            retry_config=S3_RETRY,
        )

    def access(self, image_id: str, *, writable: bool, until: dt.datetime | None) -> S3Access:
        """Credentials for one image's prefix (STS ``AssumeRole`` with :func:`scoped_policy`).

        Args:
            image_id: the image (or upload grant) id.
            writable: an upload's credentials (put, get, delete), else read-only.
            until: they must not outlive this (an upload grant's expiry), if given.

        """
        prefix = self.prefix(image_id)
        seconds = credential_seconds(self.settings.credentials_seconds, until, _now())
        answer = self._client("sts").assume_role(
            RoleArn=self.settings.role_arn,
            RoleSessionName=f"mikro-{image_id}"[:64],
            Policy=json.dumps(scoped_policy(self.settings.bucket, prefix, writable=writable)),
            DurationSeconds=seconds,
        )
        credentials = answer["Credentials"]
        return S3Access(
            endpoint_url=self.settings.endpoint_url,
            bucket=self.settings.bucket,
            prefix=prefix,
            region=self.settings.region,
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials.get("SessionToken"),
            expires_at=min(credentials["Expiration"], until or credentials["Expiration"]),
            writable=writable,
        )

    def check(self) -> None:
        """At start-up: reach the bucket (create it if missing), write, read and delete a probe
        key with the server's key, and get scoped credentials from STS.

        Raises:
            ServerStartError: in one line naming the endpoint and bucket (never the secret),
                what failed and what to check.

        """
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        s3 = self._client("s3")
        step = "could not be reached"
        hint = "the endpoint_url, that the store is running, and the network"
        try:
            try:
                s3.head_bucket(Bucket=self.settings.bucket)
            except ClientError as error:
                if _code(error) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                step, hint = "has no such bucket and could not create it", _CREATE_HINT
                self._create(s3)
            step, hint = "refused to store a probe key", _WRITE_HINT
            probe = f"{self.settings.prefix}.arkitekt-probe-{uuid.uuid4().hex}"
            s3.put_object(Bucket=self.settings.bucket, Key=probe, Body=b"probe")
            s3.get_object(Bucket=self.settings.bucket, Key=probe)["Body"].read()
            s3.delete_object(Bucket=self.settings.bucket, Key=probe)
            step, hint = "gave no scoped credentials (STS AssumeRole)", _STS_HINT
            self.access(str(uuid.uuid4()), writable=False, until=None)
        except ClientError as error:
            code = _code(error)
            if code in _CREDENTIAL_CODES:
                hint = "access_key_id and secret_access_key (the server's key)"
            elif code in ("403", "AccessDenied", "Forbidden"):
                hint = f"the permissions of the server's key ({hint})"
            raise ServerStartError(f"{self.where} {step}: {code}; check {hint}") from None
        except ParamValidationError:
            problem = "the bucket name is not valid"
            raise ServerStartError(f"{self.where} {problem}; check {_CREATE_HINT}") from None
        except (BotoCoreError, ValueError) as error:
            problem = type(error).__name__
            raise ServerStartError(f"{self.where} {step}: {problem}; check {hint}") from None

    def _create(self, s3: Any) -> None:
        arguments: dict[str, Any] = {"Bucket": self.settings.bucket}
        if self.settings.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        s3.create_bucket(**arguments)


_CREATE_HINT = (
    "the bucket name (3-63 lowercase letters, digits, dots, hyphens) and that the server's "
    "key may create it"
)
_WRITE_HINT = "that the server's key may put, get and delete objects in the bucket"
_STS_HINT = (
    "that the store offers STS AssumeRole at the endpoint_url, that the server's key may "
    "assume role_arn (AWS), and credentials_seconds"
)
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "AuthFailure"}
)


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))[:100]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
