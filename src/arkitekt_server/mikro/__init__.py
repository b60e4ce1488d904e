"""Images on the server (mikro): metadata, upload grants, zarr v3 stores, the browser view.

Pixels are written by clients into the datalayer an upload grant names (``local``: a directory
under ``<data_dir>/mikro/uploads``; ``http``: chunks PUT through :mod:`.routes`; ``s3``: the
image's prefix in the server's bucket, with credentials scoped to it, :mod:`.bucket`); ``finish``
verifies the store and only then creates the image. A background task removes abandoned grants
(:mod:`.housekeeping`: nothing the database does not record as abandoned is ever deleted).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI

from arkitekt.protocol.mikro import MAX_CHUNK_BYTES
from arkitekt_server._db import Database
from arkitekt_server._periodic import background, every
from arkitekt_server._service import ServerService
from arkitekt_server._settings import ServerSettings
from arkitekt_server.mikro import _models  # noqa: F401 -- registers the tables
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._adopt import adopt_command
from arkitekt_server.mikro._bucket import Bucket
from arkitekt_server.mikro._chunk_puts import router as chunk_router
from arkitekt_server.mikro._chunks import max_encoded_bytes
from arkitekt_server.mikro._common import DEFAULT_DATALAYER, mikro_state
from arkitekt_server.mikro._housekeeping import check_stores, sweep
from arkitekt_server.mikro._routes import router as api_router
from arkitekt_server.mikro._uploads import router as upload_router
from arkitekt_server.mikro._viewer import PUBLIC_PATHS
from arkitekt_server.mikro._viewer import router as viewer_router

__all__ = ["SWEEP_INTERVAL_SECONDS", "adopt_command", "service", "sweep"]

log = logging.getLogger("arkitekt_server.mikro")

SWEEP_INTERVAL_SECONDS = 120.0
"""How often expired and abandoned uploads are looked for."""

router = APIRouter(tags=["mikro"])
router.include_router(upload_router)
router.include_router(chunk_router)
router.include_router(api_router)
router.include_router(viewer_router)


def _config(base: str, settings: ServerSettings) -> dict[str, str]:
    if settings.s3 is not None:  # every app, loopback too: pixels go to the bucket
        return {"endpoint_url": base + "mikro/", "datalayer": "s3"}
    # local_root: clients on this machine use `local` paths only inside it
    root = str(storage.Layout(settings.data_dir).root.resolve())
    return {"endpoint_url": base + "mikro/", "datalayer": DEFAULT_DATALAYER, "local_root": root}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    layout = storage.Layout(app.state.settings.data_dir)
    layout.create()
    database: Database = app.state.database
    state = mikro_state(app)
    settings: ServerSettings = app.state.settings
    if settings.s3 is not None:
        bucket = Bucket(settings.s3)
        await anyio.to_thread.run_sync(bucket.check)  # ServerStartError in one line
        state.bucket = bucket
        log.info("mikro: images are stored in %s", bucket.where)
    await check_stores(database, layout)
    await sweep(database, layout, state=state)

    async def sweeper() -> None:
        await every(
            SWEEP_INTERVAL_SECONDS,
            functools.partial(sweep, database, layout, state=state),
            what="mikro: sweeping abandoned uploads",
            log=log,
        )

    async with background(sweeper):
        yield


service = ServerService(
    name="mikro",
    router=router,
    prefix="/mikro",
    config=_config,
    lifespan=_lifespan,
    public_paths=PUBLIC_PATHS,
    # The largest chunk any grant allows; put_key bounds each chunk by its own grant's shape.
    body_limits={"/mikro/uploads/{grant_id}/store/{key:path}": max_encoded_bytes(MAX_CHUNK_BYTES)},
)
