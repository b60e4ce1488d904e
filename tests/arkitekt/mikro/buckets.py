"""Helpers of the s3 datalayer tests (client and server): settings and a look into the bucket."""

from __future__ import annotations

from typing import Any

from arkitekt_server import EmbeddedServer

__all__ = ["bucket_keys", "s3_settings", "server_bucket"]


def s3_settings(endpoint: str, bucket: str) -> dict[str, Any]:
    """The ``s3`` server settings of a bucket on the test S3 endpoint (any key works there)."""
    return {
        "endpoint_url": endpoint,
        "bucket": bucket,
        "access_key_id": "arkitekt-test",
        "secret_access_key": "server-secret-not-for-clients",
    }


def server_bucket(server: EmbeddedServer) -> Any:
    """A boto3 client of the server's bucket with the server's own key."""
    import boto3

    s3 = server.settings.s3
    assert s3 is not None
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key.get_secret_value(),
    )


def bucket_keys(server: EmbeddedServer, prefix: str = "") -> list[str]:
    """Every key in the server's bucket below ``prefix`` (read with the server's own key)."""
    s3 = server.settings.s3
    assert s3 is not None
    pages = (
        server_bucket(server)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=s3.bucket, Prefix=prefix)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
