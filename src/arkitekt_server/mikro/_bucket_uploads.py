"""The ``s3`` datalayer's side of uploads: write credentials for a grant, and finishing an
upload in the bucket (verified where the client wrote it: nothing moves).

Write credentials live at least :data:`~arkitekt_server.mikro._bucket.MIN_SECONDS` (STS's
shortest), so they may outlive an abort, a finish or a delete. Before any are handed out the
grant records until when they stay valid (``credentials_until``); an image keeps that time, an
aborted grant or a deleted image leaves a tombstone (an ``abandoned`` grant) until then, and the
sweep removes the prefix's keys again until it has passed. A renewal is refused once less than
``MIN_SECONDS`` of the grant remain, so no credentials outlive the grant itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request, status
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import ImageRecord, S3Access, UploadRequest
from arkitekt_server._db import utcnow
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._bucket import MIN_SECONDS, Bucket, credential_seconds
from arkitekt_server.mikro._common import record
from arkitekt_server.mikro._groups import level_rows
from arkitekt_server.mikro._models import GrantRow, image_row

__all__ = ["credentials_lapse", "finish_in_bucket", "grant_access"]

CLOCK_SLACK = dt.timedelta(seconds=60)
"""Added to the recorded lifetime of credentials (the store's clock may run behind ours)."""

log = logging.getLogger("arkitekt_server.mikro")


def credentials_lapse(grant: GrantRow) -> dt.datetime:
    """When the write credentials handed out for a grant's prefix are surely invalid (a grant
    from before this was recorded: its credentials never outlived it by more than STS's
    shortest lifetime)."""
    if grant.credentials_until is not None:
        return grant.credentials_until
    return grant.expires_at + dt.timedelta(seconds=MIN_SECONDS) + CLOCK_SLACK


async def grant_access(bucket: Bucket, grant: GrantRow, session: AsyncSession) -> S3Access:
    """Write credentials for the grant's prefix (503 when STS fails: the grant stays open, the
    client may ask again).

    Until when they stay valid is committed first (``credentials_until``), so the sweep knows
    before anyone holds them.

    Raises:
        HTTPException: 409 when less than STS's shortest lifetime of the grant remains (they
            would outlive it: finish the upload now); 503 when STS fails.

    """
    now = utcnow()
    if grant.expires_at - now < dt.timedelta(seconds=MIN_SECONDS):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"less than {MIN_SECONDS} s of this upload grant remain: no new credentials (they "
            "would outlive it); finish the upload now, or start a new one",
        )
    seconds = credential_seconds(bucket.settings.credentials_seconds, grant.expires_at, now)
    until = now + dt.timedelta(seconds=seconds) + CLOCK_SLACK
    if grant.credentials_until is None or grant.credentials_until < until:
        grant.credentials_until = until
        await session.commit()
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
        checked = await anyio.to_thread.run_sync(
            storage.verify_store, bucket.location(grant.id), body
        )
        image = image_row(
            grant.id,
            body,
            owner_pk=grant.owner_pk,
            owner=grant.owner,
            dataset_id=body.dataset,
            meta_sha256=checked.meta_sha256,
            levels=level_rows(checked),
            credentials_until=credentials_lapse(grant),
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
