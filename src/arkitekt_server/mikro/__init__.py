"""Images on the server (mikro): metadata, upload grants, zarr v3 stores, the browser view.

Pixels are written by clients into the datalayer an upload grant names (``local``: a directory
under ``<data_dir>/mikro/uploads``; ``http``: chunks PUT through :mod:`.routes`); ``finish``
verifies the store and only then creates the image. A background task removes abandoned grants.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI
from sqlalchemy import delete, or_, select

from arkitekt_server._periodic import every
from arkitekt_server.db import Database, utcnow
from arkitekt_server.mikro import models as models
from arkitekt_server.mikro import storage
from arkitekt_server.mikro._common import DEFAULT_DATALAYER, MikroState, mikro_state
from arkitekt_server.mikro.models import GrantRow, ImageRow
from arkitekt_server.mikro.routes import router as api_router
from arkitekt_server.mikro.uploads import router as upload_router
from arkitekt_server.mikro.viewer import PUBLIC_PATHS
from arkitekt_server.mikro.viewer import router as viewer_router
from arkitekt_server.service import ServerService

__all__ = ["SWEEP_INTERVAL_SECONDS", "service", "sweep"]

log = logging.getLogger("arkitekt_server.mikro")

SWEEP_INTERVAL_SECONDS = 600.0
"""How often abandoned uploads are looked for."""

_FINISH_GRACE = dt.timedelta(hours=1)
_ORPHAN_MIN_AGE = dt.timedelta(minutes=5)
"""A directory no grant or image owns is left alone this long: it may belong to a grant or an
image committed after the sweep read the table."""

router = APIRouter(tags=["mikro"])
router.include_router(upload_router)
router.include_router(api_router)
router.include_router(viewer_router)


def _config(base: str) -> dict[str, str]:
    return {"endpoint_url": base + "mikro/", "datalayer": DEFAULT_DATALAYER}


def _orphans(
    layout: storage.Layout, grants: set[str], images: set[str], moment: dt.datetime
) -> int:
    removed = 0
    cutoff = (moment - _ORPHAN_MIN_AGE).timestamp()
    for parent, keep in ((layout.uploads, grants), (layout.stores, images | grants)):
        for entry in parent.iterdir():
            if entry.name in keep:
                continue
            try:
                if entry.lstat().st_mtime > cutoff:
                    continue  # young: its grant or image may be newer than our snapshot
            except FileNotFoundError:
                continue
            storage.remove(entry)
            removed += 1
    return removed


async def sweep(
    database: Database,
    layout: storage.Layout,
    now: dt.datetime | None = None,
    state: MikroState | None = None,
) -> int:
    """Remove expired upload grants and every directory no grant or image owns.

    A directory younger than a few minutes is kept even when no grant owns it yet: a grant
    created while the sweep runs makes its directory before it is committed.

    Args:
        database: the server's database.
        layout: the mikro directories.
        now: the time to compare expiry with (default: now; tests pass a later time).
        state: the server's mikro caches, to drop the removed grants from.

    Returns:
        How many grants and directories were removed.

    """
    moment = utcnow() if now is None else now
    async with database.sessions() as session:
        expired = await session.execute(
            delete(GrantRow)
            .where(
                GrantRow.expires_at <= moment,
                # a finish in progress gets an hour more (it takes seconds; one that never
                # ended was interrupted by a crash)
                or_(GrantRow.state == "open", GrantRow.expires_at <= moment - _FINISH_GRACE),
            )
            .returning(GrantRow.id)
        )
        gone = list(expired.scalars())
        for grant_id in gone:
            if state is not None:
                state.uploads.pop(grant_id, None)
        await session.commit()
        grants = set(await session.scalars(select(GrantRow.id)))
        images = set(await session.scalars(select(ImageRow.id)))
    removed = len(gone)
    removed += await anyio.to_thread.run_sync(_orphans, layout, grants, images, moment)
    if removed:
        log.info("mikro: removed %d abandoned upload(s) or orphaned store(s)", removed)
    return removed


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    layout = storage.Layout(app.state.settings.data_dir)
    layout.create()
    database: Database = app.state.database
    state = mikro_state(app)
    await sweep(database, layout, state=state)

    async def sweeper() -> None:
        await every(
            SWEEP_INTERVAL_SECONDS,
            functools.partial(sweep, database, layout, state=state),
            what="mikro: sweeping abandoned uploads",
            log=log,
        )

    async with anyio.create_task_group() as group:
        group.start_soon(sweeper)
        try:
            yield
        finally:
            group.cancel_scope.cancel()


service = ServerService(
    name="mikro",
    router=router,
    prefix="/mikro",
    config=_config,
    lifespan=_lifespan,
    public_paths=PUBLIC_PATHS,
    # above the server's default; put_key bounds each chunk by its grant's chunk shape itself
    body_limits={"/mikro/uploads/{grant_id}/store/{key:path}": 1 << 30},
)
