"""What the routes of mikro share: limits, ids, visibility, the wire form of an image, and the
per-server caches (on ``app.state.mikro``, so several servers in one process never mix)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request, status
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.hosts import is_loopback
from arkitekt.protocol.mikro import ImageRecord
from arkitekt_server._auth import Principal
from arkitekt_server._db import utcnow
from arkitekt_server._service import documented as responses_for
from arkitekt_server._settings import ServerSettings
from arkitekt_server._urls import base_url
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._bucket import Bucket
from arkitekt_server.mikro._chunks import META_MAX_BYTES
from arkitekt_server.mikro._groups import from_row
from arkitekt_server.mikro._models import GrantRow, ImageRow

__all__ = [
    "DEFAULT_DATALAYER",
    "GRANT_TTL",
    "MAX_CHUNKS",
    "META_MAX_BYTES",
    "MikroState",
    "StoreInfo",
    "UploadState",
    "delete_image_row",
    "documented",
    "find_image",
    "image_location",
    "layout",
    "mikro_state",
    "not_found",
    "parse_id",
    "record",
    "tombstone",
    "verified",
    "visible",
]

DEFAULT_DATALAYER = "local"
"""The datalayer of loopback clients that do not ask for one (others always get ``http``);
advertised as ``datalayer`` in the claimed ``mikro`` config group."""
GRANT_TTL = dt.timedelta(hours=1)
"""An upload not finished within this time is abandoned and swept (at 50 MB/s, 180 GB)."""
MAX_CHUNKS = 1_000_000
"""The most chunks one image may have (a bound on verification work)."""


_REASONS = {
    400: "The body is not JSON, or does not fit the upload or the store (the detail says).",
    401: "No valid bearer token.",
    403: "Not the owner.",
    404: "No such image, upload or dataset (or it is not visible to you).",
    409: "The upload is being finished, was finished, or its directory is gone.",
    410: "The upload grant expired; start again.",
    413: "The body is larger than the chunk (or document) can be.",
    422: "A parameter or body field is invalid (the detail names it and the limit).",
    503: "The object store (the s3 datalayer's bucket or STS) did not answer; try again.",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may refuse with these status codes."""
    return responses_for(_REASONS, *codes)


@dataclass(frozen=True)
class StoreInfo:
    """What a store read needs of an image (these fields never change)."""

    id: str
    owner_pk: int
    private: bool
    max_chunk_bytes: int
    """The largest chunk file the store may hold (a larger one is not read)."""
    location: storage.Location
    """Where its keys are."""
    verified: storage.Verified
    """What its store was verified to hold (its ``zarr.json`` is served only if still so)."""


@dataclass
class UploadState:
    """An http upload grant as chunk PUTs see it, and who writes to it right now.

    ``finishing`` is set while ``finish`` verifies and moves the store: new PUTs are refused
    (409) and ``finish`` waits until ``writers`` (PUTs in progress) drops to zero.
    """

    id: str
    owner_pk: int
    datalayer: str
    layout: storage.Verified
    """The arrays (levels) the upload's store must hold."""
    expires_at: dt.datetime
    writers: int = 0
    finishing: bool = False
    drained: anyio.Event | None = None
    """Set when ``writers`` drops to zero (only while a finish waits for that)."""
    settled: anyio.Event | None = None
    """Set when a finish has ended, either way (an abort waits for that)."""
    folders: set[str] = field(default_factory=set)
    """Folders of the upload's store made already (a PUT skips their ``mkdir`` calls)."""


@dataclass
class MikroState:
    """The caches of one server's mikro, so a chunk read or write needs no database query
    besides the bearer-token check. Entries leave when their image or grant goes."""

    stores: dict[str, StoreInfo] = field(default_factory=dict)
    uploads: dict[str, UploadState] = field(default_factory=dict)
    reported: set[Path] = field(default_factory=set)
    """Unknown directories the sweep has logged already (each is logged once)."""
    bucket: Bucket | None = None
    """The bucket of the ``s3`` datalayer, when the server has one (set at start)."""


def mikro_state(app: FastAPI) -> MikroState:
    """The mikro caches of this server app (created on first use)."""
    state = getattr(app.state, "mikro", None)
    if not isinstance(state, MikroState):
        state = app.state.mikro = MikroState()
    return state


def layout(request: Request) -> storage.Layout:
    """The mikro directories of this server."""
    settings: ServerSettings = request.app.state.settings
    return storage.Layout(settings.data_dir)


def image_location(app: FastAPI, image_id: str) -> storage.Location:
    """Where an image's store is: its directory on disk if there is one, else (with a bucket)
    its prefix in the bucket. Blocking (a stat): call it in a worker thread."""
    directory = storage.Layout(app.state.settings.data_dir).store(image_id)
    bucket = mikro_state(app).bucket
    if bucket is None or directory.is_dir():
        return storage.DiskLocation(directory)
    return bucket.location(image_id)


def not_found(what: str = "image") -> HTTPException:
    """A 404 that does not tell whether the thing exists but is not visible to the caller.

    Args:
        what: the kind of thing, for the message ("image", "upload", "dataset").

    Returns:
        The exception to raise.

    """
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no such {what} (or it is not visible to you)")


def parse_id(value: str, what: str = "image") -> str:
    """The canonical form of an id (a UUID), or 404 when ``value`` is not one.

    Args:
        value: the id as the client sent it.
        what: the kind of thing, for the 404 message.

    Returns:
        The id in canonical (lowercase, hyphenated) form.

    Raises:
        HTTPException: 404 when ``value`` is not a UUID.

    """
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found(what) from None


def visible(principal: Principal | None) -> Any:
    """The SQL condition: images this principal may read (``None``: the local viewer)."""
    if principal is None:
        return ImageRow.private.is_(False)
    return or_(ImageRow.private.is_(False), ImageRow.owner_pk == principal.client_pk)


async def find_image(session: AsyncSession, image_id: str, principal: Principal | None) -> ImageRow:
    """An image the principal may read, or 404 (never 403: no leak of private ids)."""
    row = await session.scalar(
        select(ImageRow).where(ImageRow.id == parse_id(image_id), visible(principal))
    )
    if row is None:
        raise not_found()
    return row


def verified(row: ImageRow) -> storage.Verified:
    """What an image's store was verified to hold (reads are bounded by it)."""
    return from_row(row.shape, row.chunks, row.dtype, row.meta_sha256, row.levels)


def record(row: ImageRow, request: Request) -> ImageRecord:
    """The wire form of an image; ``local_path`` only for clients on this machine.

    With a bucket, an image whose directory is not on this disk is in the bucket.
    """
    host = request.client.host if request.client is not None else None
    path = layout(request).store(row.id)
    in_bucket = mikro_state(request.app).bucket is not None and not path.is_dir()
    return ImageRecord(
        id=row.id,
        name=row.name,
        tags=[tag.tag for tag in row.tags],
        dataset=row.dataset_id,
        origins=row.origins,
        channel_names=row.channel_names,
        pixel_size=row.pixel_size,
        metadata=row.extra,
        private=row.private,
        shape=tuple(row.shape),
        chunks=tuple(row.chunks),
        level_chunks=[tuple(level["chunks"]) for level in row.levels or []],
        dtype=row.dtype,
        created_at=row.created_at,
        owner=row.owner,
        store=base_url(request) + f"mikro/images/{row.id}/store/",
        local_path=str(path) if is_loopback(host) and not in_bucket else None,
        storage="s3" if in_bucket else "disk",
    )


def tombstone(image: ImageRow, now: dt.datetime) -> GrantRow | None:
    """The abandoned grant that keeps a deleted image's prefix swept while its uploader's
    credentials may still write there (``None``: they lapsed, or it never had any)."""
    until = image.credentials_until
    if until is None or until <= now:
        return None
    return GrantRow(
        id=image.id,
        owner_pk=image.owner_pk,
        owner=image.owner,
        datalayer="s3",
        request={},
        state="abandoned",
        created_at=now,
        expires_at=until,
        credentials_until=until,
    )


def _move(source: Path, target: Path) -> None:
    if source.exists():
        os.replace(source, target)


async def delete_image_row(request: Request, session: AsyncSession, row: ImageRow) -> None:
    """Delete an image and its files, crash-safe.

    The store moves to ``trash/`` first (and back if the delete does not commit); the row
    goes; then the files. A crash in between leaves either the image whole, or a trash entry
    whose row is gone (the start-up check empties it) — never a store the database forgot.
    A store in the bucket is deleted once the row's delete committed (a crash in between
    leaves keys no image names, never an image without its keys); while its uploader's
    credentials may still write there, a :func:`tombstone` commits with the delete so the
    sweep removes what they write.
    """
    dirs = layout(request)
    where = await anyio.to_thread.run_sync(image_location, request.app, row.id)
    if isinstance(where, storage.BucketLocation):
        grave = tombstone(row, utcnow())
        await session.delete(row)
        if grave is not None:
            await session.flush()  # the image's row goes before a grant takes its id
            session.add(grave)
        await session.commit()
        mikro_state(request.app).stores.pop(row.id, None)
        await anyio.to_thread.run_sync(storage.remove, dirs.thumb(row.id))
        await anyio.to_thread.run_sync(where.remove)
        return
    store, trashed = dirs.store(row.id), dirs.trash / row.id
    await anyio.to_thread.run_sync(_move, store, trashed)
    try:
        await session.delete(row)
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_move, trashed, store)
        raise
    mikro_state(request.app).stores.pop(row.id, None)
    for path in (trashed, dirs.thumb(row.id), dirs.record(row.id)):
        await anyio.to_thread.run_sync(storage.remove, path)
