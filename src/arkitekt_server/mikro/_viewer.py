"""The browser view of mikro: ``/mikro/`` lists images (names, tags, thumbnails).

Who may look (see ``docs/mikro.md``): a request with a valid bearer token sees what that app
sees; a request without one is served only in single-user mode (``auto_approve``), only from
this machine (loopback peer) and only when the ``Host`` header names loopback too (so a web
page cannot reach it by DNS rebinding); it sees the images that are not private.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.hosts import host_of, is_loopback
from arkitekt.protocol.mikro import MAX_OFFSET
from arkitekt_server._auth import Principal, require_principal
from arkitekt_server._db import get_session
from arkitekt_server._settings import ServerSettings
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._chunks import ChunkRefusedError
from arkitekt_server.mikro._common import (
    documented,
    find_image,
    image_location,
    layout,
    verified,
    visible,
)
from arkitekt_server.mikro._models import ImageRow
from arkitekt_server.mikro._thumbnails import render_thumbnail

__all__ = ["PUBLIC_PATHS", "router", "viewer"]

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]

PUBLIC_PATHS = ("/mikro/", "/mikro/images/{image_id}/thumbnail.png")
"""Routes that may answer without a bearer token (under the conditions above)."""

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; }
table { border-collapse: collapse; } td, th { padding: .4rem .8rem; text-align: left; }
tr { border-bottom: 1px solid #ddd; } img { width: 96px; height: 96px; object-fit: contain;
background: #000; } .tag { background: #eef; padding: 0 .3rem; margin-right: .2rem; }
"""


async def viewer(request: Request) -> Principal | None:
    """The caller: a bearer token's principal, or ``None`` for the local single-user viewer.

    Raises:
        HTTPException: 401 when neither applies.

    """
    if request.headers.get("authorization"):
        return await require_principal(request)
    settings: ServerSettings = request.app.state.settings
    peer = request.client.host if request.client is not None else None
    if (
        settings.auto_approve
        and is_loopback(peer)
        and is_loopback(host_of(request.headers.get("host", "")))
    ):
        return None
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a bearer token is required (the tokenless browser view is only for the server's own "
        "machine in single-user mode, auto_approve)",
        headers={"WWW-Authenticate": "Bearer"},
    )


Viewer = Annotated[Principal | None, Depends(viewer)]


@router.get(
    "/images/{image_id}/thumbnail.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **documented(401, 404, 422)},
)
async def thumbnail(image_id: str, request: Request, who: Viewer, session: Session) -> Response:
    """A PNG thumbnail: the max projection of the first channel (cached after the first call)."""
    row = await find_image(session, image_id, who)
    await session.close()
    dirs = layout(request)
    path = dirs.thumb(row.id)

    def build() -> bytes:
        if path.is_file():
            return path.read_bytes()
        png = render_thumbnail(image_location(request.app, row.id), verified(row))
        storage.write_key(path.parent, path.name, png)
        return png

    try:
        png = await anyio.to_thread.run_sync(build)
    except (storage.StoreInvalidError, ChunkRefusedError, FileNotFoundError) as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"the image's store cannot be rendered: {error}"
        ) from None
    return Response(png, media_type="image/png", headers=_HEADERS)


def _row(row: ImageRow) -> str:
    tags = "".join(f"<span class='tag'>{escape(tag.tag)}</span>" for tag in row.tags)
    shape = " x ".join(f"{d}{s}" for d, s in zip("ctzyx", row.shape, strict=True) if s > 1)
    created = row.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<tr><td><img alt='' loading='lazy' src='images/{escape(row.id)}/thumbnail.png'></td>"
        f"<td><strong>{escape(row.name)}</strong><br><small>{escape(row.id)}</small></td>"
        f"<td>{tags}</td><td>{escape(shape or '1')}<br>{escape(row.dtype)}</td>"
        f"<td>{escape(row.owner)}</td><td>{created}</td></tr>"
    )


@router.get("/", response_class=HTMLResponse, responses=documented(401, 422))
async def page(
    who: Viewer,
    session: Session,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    """The image list, newest first."""
    total = await session.scalar(select(func.count()).select_from(ImageRow).where(visible(who)))
    rows = await session.scalars(
        select(ImageRow)
        .where(visible(who))
        .order_by(ImageRow.created_at.desc(), ImageRow.id)
        .limit(limit)
        .offset(offset)
    )
    body = "".join(_row(row) for row in rows)
    nav = ""
    if offset + limit < (total or 0):
        nav = f"<p><a href='?offset={offset + limit}&amp;limit={limit}'>older images</a></p>"
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mikro images</title>"
        f"<style>{_STYLE}</style></head><body><h1>Images</h1>"
        f"<p>{total or 0} image(s).</p><table><tr><th></th><th>Name</th><th>Tags</th>"
        f"<th>Shape</th><th>App</th><th>Stored</th></tr>{body}</table>{nav}</body></html>"
    )
    return HTMLResponse(html, headers={**_HEADERS, "Content-Security-Policy": _CSP})
