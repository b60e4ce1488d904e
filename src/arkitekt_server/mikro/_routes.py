"""HTTP routes of mikro: images (search, get, delete, store keys) and datasets."""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import (
    MAX_ID_CHARS,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TAG_CHARS,
    DatasetIn,
    DatasetRecord,
    ImagePage,
    ImageRecord,
    S3Access,
)
from arkitekt.protocol.text import StoredText
from arkitekt_server._auth import CurrentPrincipal, Principal
from arkitekt_server._db import get_session, utcnow
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._chunks import META_MAX_BYTES
from arkitekt_server.mikro._common import (
    StoreInfo,
    delete_image_row,
    documented,
    find_image,
    image_location,
    mikro_state,
    not_found,
    parse_id,
    record,
    verified,
    visible,
)
from arkitekt_server.mikro._models import DatasetRow, ImageRow, TagRow

__all__ = ["image_filter", "router"]

log = logging.getLogger("arkitekt_server.mikro")

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]


# -- images --------------------------------------------------------------------------------
def image_filter(
    principal: Principal | None,
    *,
    name: str | None = None,
    tag: str | None = None,
    dataset: str | None = None,
) -> list[Any]:
    """The SQL conditions of a search: images visible to ``principal`` (``None``: the local
    browser view) whose name holds ``name`` (case-insensitive), tagged ``tag``, in ``dataset``."""
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
    return where


@router.get("/images/", responses=documented(401, 422))
async def search_images(
    request: Request,
    principal: CurrentPrincipal,
    session: Session,
    name: Annotated[StoredText | None, Query(max_length=500)] = None,
    tag: Annotated[StoredText | None, Query(max_length=MAX_TAG_CHARS)] = None,
    dataset: Annotated[StoredText | None, Query(max_length=MAX_ID_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ImagePage:
    """Images visible to the caller, newest first, filtered by name part, tag and dataset."""
    where = image_filter(principal, name=name, tag=tag, dataset=dataset)
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


@router.get("/images/{image_id}", responses=documented(401, 404))
async def get_image(
    image_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> ImageRecord:
    """One image's record."""
    return record(await find_image(session, image_id, principal), request)


@router.delete(
    "/images/{image_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(401, 403, 404),
)
async def delete_image(
    image_id: str, request: Request, principal: CurrentPrincipal, session: Session
) -> Response:
    """Delete an image and its store (only the app that stored it may)."""
    row = await find_image(session, image_id, principal)
    if row.owner_pk != principal.client_pk:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the app that stored it may delete it")
    await delete_image_row(request, session, row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_STORES_MAX = 4096


async def _readable(request: Request, image_id: str, principal: Principal) -> StoreInfo:
    key = parse_id(image_id)
    stores = mikro_state(request.app).stores
    store = stores.get(key)
    if store is None:
        async with request.app.state.database.sessions() as session:
            row = await session.get(ImageRow, key)
        if row is None:
            raise not_found()
        if len(stores) >= _STORES_MAX:
            stores.clear()
        where = await anyio.to_thread.run_sync(image_location, request.app, row.id)
        checked = verified(row)
        store = stores[key] = StoreInfo(
            row.id,
            row.owner_pk,
            row.private,
            max(META_MAX_BYTES, checked.max_chunk_bytes()),  # zarr.json may be up to 1 MiB
            where,
            checked,
        )
    if store.private and store.owner_pk != principal.client_pk:
        raise not_found()
    return store


@router.get(
    "/images/{image_id}/store/{key:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **documented(401, 404, 422)},
)
async def get_key(
    image_id: str, key: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """One key of an image's zarr store (the http datalayer's read path)."""
    store = await _readable(request, image_id, principal)
    limit = storage.key_limit(key, store.verified)
    if limit is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key")
    try:  # chunks are a few MiB at most: one read beats streaming it in 64 KiB pieces
        data = await anyio.to_thread.run_sync(store.location.read, key, limit)
    except OSError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key") from None
    if data is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the stored {key!r} is larger than any key of this image can be; it is not served",
        )
    if key.endswith("zarr.json"):  # served only while it is the verified one
        try:
            storage.check_document(key, data, store.verified)
        except storage.StoreInvalidError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    media = "application/json" if key.endswith("zarr.json") else "application/octet-stream"
    return Response(data, media_type=media)


@router.post("/images/{image_id}/access/", responses=documented(401, 404, 409, 503))
async def read_access(image_id: str, request: Request, principal: CurrentPrincipal) -> S3Access:
    """Read-only credentials for an image's keys in the bucket (the s3 datalayer's read path).

    They reach only this image's prefix and expire (``expires_at``); ask again for more.
    """
    store = await _readable(request, image_id, principal)
    bucket = mikro_state(request.app).bucket
    if bucket is None or not isinstance(store.location, storage.BucketLocation):
        raise HTTPException(status.HTTP_409_CONFLICT, "this image is not in a bucket; use http")
    try:
        return await anyio.to_thread.run_sync(
            functools.partial(bucket.access, store.id, writable=False, until=None)
        )
    except Exception as error:
        log.error("mikro: %s gave no read credentials: %s", bucket.where, type(error).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the object store gave no read credentials (the server's log says why); try again",
        ) from None


# -- datasets ------------------------------------------------------------------------------
def _dataset(row: DatasetRow) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        owner=row.owner,
    )


@router.post(
    "/datasets/", status_code=status.HTTP_201_CREATED, responses=documented(400, 401, 413, 422)
)
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


@router.get("/datasets/", responses=documented(401))
async def list_datasets(principal: CurrentPrincipal, session: Session) -> list[DatasetRecord]:
    """Every dataset, newest first."""
    rows = await session.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc()))
    return [_dataset(row) for row in rows]
