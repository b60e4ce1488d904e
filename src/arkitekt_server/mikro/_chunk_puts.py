"""The http datalayer's chunk PUTs, and what finishing an upload shares with them: finding an
upload's grant, its cached state, and waiting for PUTs in progress to end."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import NoReturn

import anyio
from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import UploadRequest
from arkitekt.protocol.text import echo
from arkitekt_server._auth import CurrentPrincipal, Principal
from arkitekt_server._db import utcnow
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._common import (
    UploadState,
    documented,
    layout,
    mikro_state,
    not_found,
    parse_id,
)
from arkitekt_server.mikro._groups import upload_verified
from arkitekt_server.mikro._models import GrantRow

__all__ = ["DRAIN_SECONDS", "FINISHING", "drain", "find_grant", "router", "upload_state"]

router = APIRouter(tags=["mikro"])


async def find_grant(session: AsyncSession, grant_id: str, principal: Principal) -> GrantRow:
    """The caller's open (or finishing) grant: 404 when it is none of theirs, 410 expired."""
    row = await session.get(GrantRow, parse_id(grant_id, "upload"))
    if row is None or row.owner_pk != principal.client_pk or row.state == "abandoned":
        raise not_found("upload")
    if row.expires_at <= utcnow():
        raise HTTPException(status.HTTP_410_GONE, "the upload grant expired; start again")
    return row


DRAIN_SECONDS = 60.0
"""How long ``finish`` waits for chunk PUTs in progress before it gives up with 409."""


def upload_state(row: GrantRow) -> UploadState:
    """The cached state of an http upload's grant."""
    return UploadState(
        id=row.id,
        owner_pk=row.owner_pk,
        datalayer=row.datalayer,
        layout=upload_verified(UploadRequest.model_validate(row.request)),
        expires_at=row.expires_at,
    )


async def _openfind_grant(request: Request, grant_id: str, principal: Principal) -> UploadState:
    uploads = mikro_state(request.app).uploads
    cached = uploads.get(grant_id)
    if cached is None:
        async with request.app.state.database.sessions() as session:
            row = await find_grant(session, grant_id, principal)
        if row.state != "open":
            raise HTTPException(status.HTTP_409_CONFLICT, FINISHING)
        # a finish that started meanwhile has its own entry: use it (it says "finishing")
        cached = uploads.setdefault(row.id, upload_state(row))
    if cached.owner_pk != principal.client_pk:
        raise not_found("upload")
    if cached.expires_at <= utcnow():
        raise HTTPException(status.HTTP_410_GONE, "the upload grant expired; start again")
    if cached.datalayer != "http":
        raise HTTPException(status.HTTP_409_CONFLICT, "this upload is not an http upload")
    return cached


FINISHING = "this upload is being finished (or was finished): it takes no more chunks"


_FOLDERS_REMEMBERED = 4096  # per upload; past it the set starts again (mkdir is idempotent)


def _parents(directory: Path, key: str, made: set[str]) -> None:
    """Create the folders of ``key`` below ``directory``, never ``directory`` itself (gone
    when the upload was finished or removed: then this raises FileNotFoundError).

    ``made`` holds the folders made already: most PUTs share them, and a folder's ``mkdir``
    calls (one per level of the key) cost more than writing a small chunk.
    """
    folder = key.rpartition("/")[0]
    if not folder or folder in made:
        return
    current = directory
    for part in folder.split("/"):
        current = current / part
        current.mkdir(exist_ok=True)
    if len(made) >= _FOLDERS_REMEMBERED:
        made.clear()
    made.add(folder)


@router.put(
    "/uploads/{grant_id}/store/{key:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(400, 401, 404, 409, 410, 413),
)
async def put_key(
    grant_id: str, key: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """Store one key (a ``zarr.json`` or a chunk of a level) of an http upload."""
    grant = await _openfind_grant(request, grant_id, principal)
    limit = storage.key_limit(key, grant.layout)
    if limit is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{echo(key)} is not a key of this image")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "chunk too large")
    if grant.finishing:
        raise HTTPException(status.HTTP_409_CONFLICT, FINISHING)
    directory = layout(request).upload(grant.id)
    target = directory / key
    # Parts (~256 KiB) go straight to a temporary file, renamed into place when complete:
    # page-cache writes this small are cheaper inline than a thread hand-off per part.
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    grant.writers += 1  # finish waits for this write to end before it looks at the store
    try:
        _parents(directory, key, grant.folders)
        size = 0
        with temporary.open("wb") as sink:
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "chunk too large")
                sink.write(part)
        os.replace(temporary, target)
    except FileNotFoundError:  # the directory went: finished elsewhere, aborted or swept
        pass
    else:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    finally:
        grant.writers -= 1
        if not grant.writers and grant.drained is not None:
            grant.drained.set()
        temporary.unlink(missing_ok=True)
    await _gone(request, grant, principal)


async def _gone(request: Request, grant: UploadState, principal: Principal) -> NoReturn:
    """Answer a PUT whose upload directory vanished: 404/410/409 as the grant now is."""
    uploads = mikro_state(request.app).uploads
    if grant.finishing:
        raise HTTPException(status.HTTP_409_CONFLICT, FINISHING)
    if uploads.get(grant.id) is grant:
        del uploads[grant.id]
    async with request.app.state.database.sessions() as session:
        row = await find_grant(session, grant.id, principal)  # 404 or 410 when it is gone
    if row.state != "open":
        raise HTTPException(status.HTTP_409_CONFLICT, FINISHING)
    raise HTTPException(status.HTTP_409_CONFLICT, "the upload's directory is gone; start again")


async def drain(upload: UploadState) -> None:
    """Wait for the upload's PUTs in progress to end (409 when they do not within a minute)."""
    if upload.writers:
        upload.drained = anyio.Event()
        with anyio.move_on_after(DRAIN_SECONDS):
            await upload.drained.wait()
        upload.drained = None
    if upload.writers:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "chunks of this upload are still being written; finish once every write has ended",
        )
