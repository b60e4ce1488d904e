"""The ``s3`` datalayer's side of uploads: write credentials for a grant, and finishing an
upload in the bucket (verified where the client wrote it: nothing moves)."""

from __future__ import annotations

import functools
import logging

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request, status
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import ImageRecord, S3Access, UploadRequest
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._bucket import Bucket
from arkitekt_server.mikro._common import record
from arkitekt_server.mikro._models import GrantRow, image_row

__all__ = ["finish_in_bucket", "grant_access"]

log = logging.getLogger("arkitekt_server.mikro")


async def grant_access(bucket: Bucket, grant: GrantRow) -> S3Access:
    """Write credentials for the grant's prefix, never outliving the grant (503 when STS fails:
    the grant stays open, the client may ask again)."""
    try:
        return await anyio.to_thread.run_sync(
            functools.partial(bucket.access, grant.id, writable=True, until=grant.expires_at)
        )
    except Exception as error:
        log.error("mikro: %s gave no upload credentials: %s", bucket.where, type(error).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the object store gave no upload credentials (the server's log says why); try again",
        ) from None


async def finish_in_bucket(
    grant: GrantRow, request: Request, session: AsyncSession, bucket: Bucket, body: UploadRequest
) -> ImageRecord:
    """Verify the store where the client wrote it (its prefix in the bucket: an image keeps its
    grant's id, so nothing moves) and create the image."""
    grant_key = grant.id
    try:
        await anyio.to_thread.run_sync(
            storage.verify_store,
            bucket.location(grant.id),
            list(body.shape),
            list(body.chunks),
            body.dtype,
        )
        image = image_row(
            grant.id, body, owner_pk=grant.owner_pk, owner=grant.owner, dataset_id=body.dataset
        )
        session.add(image)
        await session.delete(grant)
        await session.commit()
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await session.rollback()
            reopen = update(GrantRow).where(GrantRow.id == grant_key).values(state="open")
            await session.execute(reopen)
            await session.commit()
        if isinstance(error, storage.StoreInvalidError):
            detail = f"upload not accepted: {error}"
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail) from None
        if isinstance(error, Exception) and _is_store_error(error):
            log.error("mikro: verifying %s failed: %s", grant_key, type(error).__name__)
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the object store could not be read to verify the upload; finish again later",
            ) from None
        raise
    return record(image, request)


def _is_store_error(error: Exception) -> bool:
    from obstore.exceptions import BaseError

    return isinstance(error, BaseError | OSError)
