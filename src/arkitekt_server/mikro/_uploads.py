"""Upload routes of mikro: grants, credentials (s3 datalayer), finish (verify) and abort.

The http datalayer's chunk PUTs are in :mod:`arkitekt_server.mikro._chunk_puts`; the bucket's
side of grants and finishing in :mod:`arkitekt_server.mikro._bucket_uploads`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import uuid
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.hosts import is_loopback
from arkitekt.protocol.mikro import ImageRecord, S3Access, UploadGrant, UploadRequest
from arkitekt.protocol.text import echo
from arkitekt_server._auth import CurrentPrincipal, Principal
from arkitekt_server._db import get_session, utcnow
from arkitekt_server._urls import base_url
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._bucket_uploads import finish_in_bucket, grant_access
from arkitekt_server.mikro._chunk_puts import (
    DRAIN_SECONDS,
    FINISHING,
    drain,
    find_grant,
    upload_state,
)
from arkitekt_server.mikro._common import (
    DEFAULT_DATALAYER,
    GRANT_TTL,
    MAX_CHUNKS,
    UploadState,
    delete_image_row,
    documented,
    find_image,
    layout,
    mikro_state,
    not_found,
    parse_id,
    record,
)
from arkitekt_server.mikro._groups import level_rows, upload_verified
from arkitekt_server.mikro._models import DatasetRow, GrantRow, ImageRow, image_row

__all__ = ["router"]

log = logging.getLogger("arkitekt_server.mikro")

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]


@router.post(
    "/uploads/",
    status_code=status.HTTP_201_CREATED,
    responses=documented(400, 401, 404, 413, 422, 503),
)
async def create_upload(
    body: UploadRequest, request: Request, principal: CurrentPrincipal, session: Session
) -> UploadGrant:
    """Grant an upload: a directory (local), a store URL (http) or a bucket prefix with
    credentials that reach only it (s3) to write the zarr array to."""
    host = request.client.host if request.client is not None else None
    bucket = mikro_state(request.app).bucket
    datalayer: str
    if bucket is not None:
        datalayer = body.datalayer or "s3"
        if datalayer != "s3":
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"this server stores images in its S3 bucket; use the s3 datalayer, not "
                f"{datalayer}",
            )
    else:
        datalayer = body.datalayer or (DEFAULT_DATALAYER if is_loopback(host) else "http")
    if datalayer == "s3" and bucket is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "this server has no S3 bucket (its s3 settings are not set); use local or http",
        )
    if datalayer == "local" and not is_loopback(host):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "the local datalayer is only for clients on the server's machine; use http",
        )
    arrays = upload_verified(body).arrays()
    if sum(math.prod(array.counts) for array in arrays) > MAX_CHUNKS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"more than {MAX_CHUNKS} chunks")
    for array in arrays:
        if any(c > s for c, s in zip(array.chunks, array.shape, strict=True)):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"a chunk of level {array.prefix.rstrip('/')} is larger than the level",
            )
    if body.channel_names and len(body.channel_names) != body.shape[0]:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "one channel name per channel")
    body = await _resolve_links(session, body, principal)
    grant = GrantRow(
        id=str(uuid.uuid4()),
        owner_pk=principal.client_pk,
        owner=principal.identifier,
        datalayer=datalayer,
        request=body.model_dump(mode="json"),
        expires_at=utcnow() + GRANT_TTL,
    )
    if bucket is not None:
        # the grant first: no key can be written before the database knows whose they are
        session.add(grant)
        await session.commit()
        access = await grant_access(bucket, grant, session)
        return UploadGrant(id=grant.id, datalayer="s3", s3=access, expires_at=grant.expires_at)
    assert datalayer in ("local", "http")
    # The directory exists before the grant does (a grant without one would confuse the
    # sweeper and the chunk PUTs); it goes again if the grant cannot be stored.
    directory = layout(request).upload(grant.id)
    await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, mode=0o700))
    try:
        session.add(grant)
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(storage.remove, directory)
        raise
    return UploadGrant(
        id=grant.id,
        datalayer=datalayer,
        path=str(directory) if datalayer == "local" else None,
        url=base_url(request) + f"mikro/uploads/{grant.id}/store/" if datalayer == "http" else None,
        expires_at=grant.expires_at,
    )


@router.post("/uploads/{grant_id}/credentials/", responses=documented(401, 404, 409, 410, 503))
async def renew_credentials(
    grant_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> S3Access:
    """Fresh write credentials for an ``s3`` upload still open (an upload that outlives them);
    refused (409) once less than STS's shortest lifetime of the grant remains: finish then."""
    grant = await find_grant(session, grant_id, principal)
    bucket = mikro_state(request.app).bucket
    if grant.datalayer != "s3" or bucket is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this upload is not an s3 upload")
    if grant.state != "open":
        raise HTTPException(status.HTTP_409_CONFLICT, FINISHING)
    return await grant_access(bucket, grant, session)


async def _resolve_links(
    session: AsyncSession, body: UploadRequest, principal: Principal
) -> UploadRequest:
    """The request with its dataset and origins checked and in canonical form (404 naming
    the dataset or the origin that does not exist)."""
    dataset = None
    if body.dataset is not None:
        try:
            dataset = str(uuid.UUID(body.dataset))
        except ValueError:
            dataset = None
        if dataset is None or await session.get(DatasetRow, dataset) is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no such dataset {echo(body.dataset)} (or not visible)"
            )
    origins = []
    for position, origin in enumerate(body.origins):
        try:
            origins.append((await find_image(session, origin, principal)).id)
        except HTTPException as error:
            if error.status_code != status.HTTP_404_NOT_FOUND:
                raise
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"origins[{position}]: no such image {echo(origin)} (or it is not visible to you)",
            ) from None
    return body.model_copy(update={"dataset": dataset, "origins": origins})


@router.post(
    "/uploads/{grant_id}/finish/",
    status_code=status.HTTP_201_CREATED,
    responses=documented(400, 401, 404, 409, 410, 503),
)
async def finish_upload(
    grant_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> ImageRecord:
    """Verify the store and create the image (it becomes visible now).

    Chunk PUTs that arrive from now on are refused (409); PUTs in progress end first.
    """
    grant = await find_grant(session, grant_id, principal)
    uploads = mikro_state(request.app).uploads
    upload = uploads.setdefault(grant.id, upload_state(grant))
    if upload.finishing:
        raise HTTPException(status.HTTP_409_CONFLICT, "this upload is already being finished")
    upload.finishing = True
    upload.settled = anyio.Event()
    try:
        image = await _finish(grant, request, session, upload)
    except BaseException:
        upload.finishing = False
        raise
    finally:
        upload.settled.set()
    uploads.pop(grant.id, None)
    return image


async def _finish(
    grant: GrantRow, request: Request, session: AsyncSession, upload: UploadState
) -> ImageRecord:
    await drain(upload)
    claimed = await session.execute(
        update(GrantRow)
        .where(GrantRow.id == grant.id, GrantRow.state == "open")
        .values(state="finishing")
    )
    await session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise HTTPException(status.HTTP_409_CONFLICT, "this upload is already being finished")
    body = UploadRequest.model_validate(grant.request)
    bucket = mikro_state(request.app).bucket
    if grant.datalayer == "s3" and bucket is not None:
        return await finish_in_bucket(grant, request, session, bucket, body)
    dirs = layout(request)
    source, target = dirs.upload(grant.id), dirs.store(grant.id)
    grant_key, moved = grant.id, False
    kept = json.dumps(
        {"request": grant.request, "owner": grant.owner, "created_at": utcnow().isoformat()}
    )
    try:
        checked = await anyio.to_thread.run_sync(
            storage.verify_store, storage.DiskLocation(source), body
        )
        # the record first: a store in stores/ always has what adopting it needs
        await anyio.to_thread.run_sync(
            storage.write_key, dirs.records, f"{grant.id}.json", kept.encode()
        )
        await anyio.to_thread.run_sync(source.rename, target)
        moved = True
        image = image_row(
            grant.id,
            body,
            owner_pk=grant.owner_pk,
            owner=grant.owner,
            dataset_id=body.dataset,
            meta_sha256=checked.meta_sha256,
            levels=level_rows(checked),
        )
        session.add(image)
        await session.delete(grant)
        await session.commit()
    except BaseException as error:
        # Whatever failed, the upload goes back to "open": the client may fix it or abort it.
        with anyio.CancelScope(shield=True):
            await session.rollback()
            if moved:
                target.rename(source)
            storage.remove(dirs.record(grant_key))
            reopen = update(GrantRow).where(GrantRow.id == grant_key).values(state="open")
            await session.execute(reopen)
            await session.commit()
        if isinstance(error, storage.StoreInvalidError):
            detail = f"upload not accepted: {error}"
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail) from None
        raise
    return record(image, request)


@router.delete(
    "/uploads/{grant_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(401, 404, 409),
)
async def abort_upload(
    grant_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> Response:
    """Abandon an upload: its directory is removed at once.

    An abort that meets a finish in progress waits for it: a finish that failed is aborted
    as usual; one that created the image deletes it again (the client aborts only when it
    never saw the finish succeed, so it has told its caller nothing was stored).
    """
    key = parse_id(grant_id, "upload")
    row = await session.get(GrantRow, key)
    if row is None or row.owner_pk != principal.client_pk or row.state == "abandoned":
        raise not_found("upload")
    uploads = mikro_state(request.app).uploads
    upload = uploads.get(row.id)
    if upload is not None and upload.finishing and upload.settled is not None:
        with anyio.move_on_after(DRAIN_SECONDS):
            await upload.settled.wait()
        row = await session.get(GrantRow, key, populate_existing=True)
        if row is None:
            image = await session.get(ImageRow, key)
            if image is None or image.owner_pk != principal.client_pk:
                raise not_found("upload")
            await delete_image_row(request, session, image)
            return Response(status_code=status.HTTP_204_NO_CONTENT)
    if row.state != "open" or (upload is not None and upload.finishing):
        raise HTTPException(status.HTTP_409_CONFLICT, "this upload is being finished")
    # abandoned first: should the removal not complete, the sweep finishes it (the directory
    # is never left to a grant the database forgot)
    row.state = "abandoned"
    await session.commit()
    if upload is not None:  # chunk PUTs in progress end before the directory goes (one that
        upload.finishing = True  # made a folder while it was removed would leave it behind)
        with contextlib.suppress(HTTPException):
            await drain(upload)
    uploads.pop(row.id, None)
    bucket = mikro_state(request.app).bucket
    if row.datalayer == "s3" and bucket is not None:
        where: storage.Location = bucket.location(row.id)
    else:
        where = storage.DiskLocation(layout(request).upload(row.id))
    try:
        await anyio.to_thread.run_sync(where.remove)
        removed = not await anyio.to_thread.run_sync(where.exists)
    except Exception as error:  # the store is unreachable: the sweep removes it later
        log.warning("mikro: removing aborted upload %s failed: %s", row.id, type(error).__name__)
        removed = False
    # an s3 grant's credentials may still write until they lapse: its row stays (so the sweep
    # removes what they write) until then
    if removed and row.datalayer != "s3":
        await session.delete(row)
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
