"""The gallery: ``/mikro/`` lists images (thumbnail, name, tags, shape) a page at a time,
searched by name and tag; each image links to its own page (:mod:`._image_page`)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import MAX_OFFSET, MAX_TAG_CHARS
from arkitekt.protocol.text import StoredText
from arkitekt_server._db import get_session
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._browser import (
    HEADERS,
    PageViewer,
    Viewer,
    html_page,
    readable_shape,
    unrenderable,
)
from arkitekt_server.mikro._common import documented, find_image, image_location, layout, verified
from arkitekt_server.mikro._models import ImageRow
from arkitekt_server.mikro._routes import image_filter
from arkitekt_server.mikro._thumbnails import render_thumbnail

__all__ = ["router"]

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]


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
    except Exception as error:  # the store, not the request, is at fault
        raise unrenderable(error, row.id) from None
    return Response(png, media_type="image/png", headers=HEADERS)


def _row(row: ImageRow) -> str:
    image = f"images/{escape(row.id)}"
    tags = "".join(
        f"<a class='tag' href='?{escape(urlencode({'tag': tag.tag}))}'>{escape(tag.tag)}</a>"
        for tag in row.tags
    )
    created = row.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<tr><td><a href='{image}/view'><img class='thumb' alt='' loading='lazy' "
        f"src='{image}/thumbnail.png'></a></td>"
        f"<td><a class='name' href='{image}/view'>{escape(row.name)}</a><br>"
        f"<small>{escape(row.id)}</small></td><td>{tags}</td>"
        f"<td class='shape'>{escape(readable_shape(row.shape))}<br>{escape(row.dtype)}</td>"
        f"<td>{escape(row.owner)}</td><td>{created}</td></tr>"
    )


def _nav(total: int, offset: int, limit: int, query: dict[str, str]) -> str:
    def link(to: int, text: str) -> str:
        href = escape("?" + urlencode({**query, "offset": to, "limit": limit}))
        return f"<a rel='{'next' if to > offset else 'prev'}' href='{href}'>{text}</a>"

    parts = []
    if offset > 0:
        parts.append(link(max(0, offset - limit), "newer"))
    if offset + limit < total:
        parts.append(link(offset + limit, "older"))
    pages = max(1, -(-total // limit))
    where = f"page {offset // limit + 1} of {pages}" if offset % limit == 0 else ""
    return f"<p class='nav'>{' '.join(parts)} {where}</p>"


@router.get("/", response_class=HTMLResponse, responses=documented(401, 422))
async def gallery(
    who: PageViewer,
    session: Session,
    name: Annotated[StoredText | None, Query(max_length=500)] = None,
    tag: Annotated[StoredText | None, Query(max_length=MAX_TAG_CHARS)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HTMLResponse:
    """The images the caller may see, newest first, filtered by name part and tag."""
    where = image_filter(who, name=name, tag=tag)
    total = await session.scalar(select(func.count()).select_from(ImageRow).where(*where)) or 0
    rows = await session.scalars(
        select(ImageRow)
        .where(*where)
        .order_by(ImageRow.created_at.desc(), ImageRow.id)
        .limit(limit)
        .offset(offset)
    )
    body = "".join(_row(row) for row in rows)
    query = {key: value for key, value in (("name", name), ("tag", tag)) if value}
    shown = f"{offset + 1}-{min(total, offset + limit)} of {total}" if offset < total else "none"
    search = (
        "<form class='search' method='get' action=''>"
        f"<input name='name' placeholder='name' maxlength='500' value='{escape(name or '')}'>"
        f"<input name='tag' placeholder='tag' maxlength='100' value='{escape(tag or '')}'>"
        "<button type='submit'>Search</button> <a href='./'>all</a></form>"
    )
    html = (
        f"<h1>Images</h1>{search}<p>{total} image(s); showing {shown}.</p>"
        "<table><tr><th></th><th>Name</th><th>Tags</th><th>Shape</th><th>App</th>"
        f"<th>Stored</th></tr>{body}</table>{_nav(total, offset, limit, query)}"
    )
    return html_page("mikro images", html, root="")
