"""HTTP routes of mikro: images (search, get, delete, store keys) and datasets.

Also the helpers the upload routes (:mod:`.uploads`) and the browser view (:mod:`.viewer`) share.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import (
    DatasetIn,
    DatasetRecord,
    ImagePage,
    ImageRecord,
)
from arkitekt_server._net import base_url, is_loopback
from arkitekt_server.auth import CurrentPrincipal, Principal
from arkitekt_server.db import get_session, utcnow
from arkitekt_server.mikro import storage
from arkitekt_server.mikro.models import DatasetRow, ImageRow, TagRow
from arkitekt_server.settings import ServerSettings

__all__ = [
    "DEFAULT_DATALAYER",
    "GRANT_TTL",
    "MAX_CHUNKS",
    "META_MAX_BYTES",
    "find_image",
    "layout",
    "not_found",
    "parse_id",
    "record",
    "router",
    "visible",
]

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]

DEFAULT_DATALAYER = "local"
"""The datalayer of loopback clients that do not ask for one (others always get ``http``);
advertised as ``datalayer`` in the claimed ``mikro`` config group."""
GRANT_TTL = dt.timedelta(hours=6)
"""An upload not finished within this time is abandoned and swept."""
MAX_CHUNKS = 1_000_000
"""The most chunks one image may have (a bound on verification work)."""
META_MAX_BYTES = 1 << 20
"""The largest ``zarr.json`` (and metadata) accepted."""


def layout(request: Request) -> storage.Layout:
    """The mikro directories of this server."""
    settings: ServerSettings = request.app.state.settings
    return storage.Layout(settings.data_dir)


def not_found(what: str = "image") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no such {what} (or it is not visible to you)")


def parse_id(value: str, what: str = "image") -> str:
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


def record(row: ImageRow, request: Request) -> ImageRecord:
    """The wire form of an image; ``local_path`` only for clients on this machine."""
    host = request.client.host if request.client is not None else None
    path = layout(request).store(row.id)
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
        dtype=row.dtype,
        created_at=row.created_at,
        owner=row.owner,
        store=base_url(request) + f"mikro/images/{row.id}/store/",
        local_path=str(path) if is_loopback(host) else None,
    )


# -- images --------------------------------------------------------------------------------
@router.get("/images/")
async def search_images(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    name: str | None = None,
    tag: str | None = None,
    dataset: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ImagePage:
    """Images visible to the caller, newest first, filtered by name part, tag and dataset."""
    where = [visible(principal)]
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(ImageRow.name.ilike(f"%{escaped}%", escape="\\"))
    if tag:
        where.append(ImageRow.id.in_(select(TagRow.image_id).where(TagRow.tag == tag)))
    if dataset:
        with contextlib.suppress(ValueError):  # not an id: nothing matches
            dataset = str(uuid.UUID(dataset))  # any spelling of the id finds its images
        where.append(ImageRow.dataset_id == dataset)
    total = await session.scalar(select(func.count()).select_from(ImageRow).where(*where))
    rows = await session.scalars(
        select(ImageRow)
        .where(*where)
        .order_by(ImageRow.created_at.desc(), ImageRow.id)
        .limit(limit)
        .offset(offset)
    )
    items = [record(row, request) for row in rows]
    return ImagePage(items=items, total=total or 0, offset=offset, limit=limit)


@router.get("/images/{image_id}")
async def get_image(
    image_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> ImageRecord:
    """One image's record."""
    return record(await find_image(session, image_id, principal), request)


@router.delete("/images/{image_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_image(
    image_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> Response:
    """Delete an image and its store (only the app that stored it may)."""
    row = await find_image(session, image_id, principal)
    if row.owner_pk != principal.client_pk:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the app that stored it may delete it")
    await session.delete(row)
    await session.commit()
    _stores.pop((layout(request).root, row.id), None)
    dirs = layout(request)
    await anyio.to_thread.run_sync(storage.remove, dirs.store(row.id))
    await anyio.to_thread.run_sync(storage.remove, dirs.thumb(row.id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@dataclass(frozen=True)
class _Store:
    id: str
    owner_pk: int
    private: bool
    counts: list[int]


# What a store read needs of an image, by id. These fields never change; a deleted image
# leaves the cache (and its files are gone anyway), so each chunk read costs no database query
# besides the bearer-token check.
_stores: dict[tuple[Path, str], _Store] = {}  # by server directory (several may share a process)
_STORES_MAX = 4096


async def _readable(request: Request, image_id: str, principal: Principal) -> _Store:
    key = parse_id(image_id)
    root = layout(request).root
    store = _stores.get((root, key))
    if store is None:
        async with request.app.state.database.sessions() as session:
            row = await session.get(ImageRow, key)
        if row is None:
            raise not_found()
        if len(_stores) >= _STORES_MAX:
            _stores.clear()
        store = _stores[(root, key)] = _Store(
            row.id, row.owner_pk, row.private, storage.grid(row.shape, row.chunks)
        )
    if store.private and store.owner_pk != principal.client_pk:
        raise not_found()
    return store


@router.get("/images/{image_id}/store/{key:path}")
async def get_key(
    image_id: str, key: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """One key of an image's zarr store (the http datalayer's read path)."""
    store = await _readable(request, image_id, principal)
    if not storage.check_key(key, store.counts):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key")
    path = layout(request).store(store.id) / key
    try:  # chunks are a few MiB at most: one read beats streaming it in 64 KiB pieces
        data = await anyio.to_thread.run_sync(path.read_bytes)
    except OSError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key") from None
    media = "application/json" if key == "zarr.json" else "application/octet-stream"
    return Response(data, media_type=media)


# -- datasets ------------------------------------------------------------------------------
def _dataset(row: DatasetRow) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        owner=row.owner,
    )


@router.post("/datasets/", status_code=status.HTTP_201_CREATED)
async def create_dataset(
    body: DatasetIn, principal: CurrentPrincipal, session: Session
) -> DatasetRecord:
    """Create a dataset (visible to every app of the deployment)."""
    row = DatasetRow(
        id=str(uuid.uuid4()),
        name=body.name,
        description=body.description,
        owner_pk=principal.client_pk,
        owner=principal.identifier,
        created_at=utcnow(),
    )
    session.add(row)
    await session.commit()
    return _dataset(row)


@router.get("/datasets/")
async def list_datasets(principal: CurrentPrincipal, session: Session) -> list[DatasetRecord]:
    """Every dataset, newest first."""
    rows = await session.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc()))
    return [_dataset(row) for row in rows]
