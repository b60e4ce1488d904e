"""The page of one image (``/mikro/images/<id>/view``: its metadata, lineage and a slice viewer)
and the slices the viewer shows (``/mikro/images/<id>/slice.png``, rendered by the server).

Both answer like the gallery (:mod:`._browser`): what the caller's app may see, or without a
token the non-private images in local single-user mode; any other image is a 404.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import MAX_AXIS
from arkitekt_server._auth import Principal
from arkitekt_server._db import get_session
from arkitekt_server.mikro._browser import (
    HEADERS,
    PageViewer,
    Viewer,
    html_page,
    missing_image_page,
    readable_shape,
    unrenderable,
)
from arkitekt_server.mikro._common import documented, find_image, image_location, verified
from arkitekt_server.mikro._levels import Level, open_levels
from arkitekt_server.mikro._models import DatasetRow, ImageRow
from arkitekt_server.mikro._routes import image_filter
from arkitekt_server.mikro._slices import MAX_VIEW, SliceRequest, render_slice

__all__ = ["RENDERS_AT_ONCE", "router"]

router = APIRouter(tags=["mikro"])
Session = Annotated[AsyncSession, Depends(get_session)]

RENDERS_AT_ONCE = 2
"""Slices rendered at the same time per server (each may decode a chunk of up to 64 MiB)."""
_DERIVED_SHOWN = 100


async def _levels(app: FastAPI, row: ImageRow) -> list[Level]:
    def load() -> list[Level]:
        return open_levels(image_location(app, row.id), verified(row))

    try:
        return await anyio.to_thread.run_sync(load)
    except Exception as error:  # the store, not the request, is at fault
        raise unrenderable(error, row.id) from None


def _limiter(app: FastAPI) -> anyio.CapacityLimiter:
    limiter = getattr(app.state, "mikro_renders", None)
    if not isinstance(limiter, anyio.CapacityLimiter):
        limiter = app.state.mikro_renders = anyio.CapacityLimiter(RENDERS_AT_ONCE)
    return limiter


def _index(name: str, value: int, size: int, what: str) -> None:
    if value >= size:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{name}={value} is out of range: this image has {size} {what} ({name} 0 to "
            f"{size - 1})",
        )


Index = Annotated[int, Query(ge=0, le=MAX_AXIS)]
Extent = Annotated[int | None, Query(ge=1, le=MAX_AXIS)]
Offset = Annotated[int, Query(ge=0, le=MAX_AXIS)]
View = Annotated[int, Query(ge=1, le=MAX_VIEW)]
Intensity = Annotated[float | None, Query(allow_inf_nan=False, ge=-1e300, le=1e300)]


@router.get(
    "/images/{image_id}/slice.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **documented(401, 404, 422)},
)
async def slice_png(
    image_id: str,
    request: Request,
    who: Viewer,
    session: Session,
    c: Index = 0,
    t: Index = 0,
    z: Index = 0,
    x: Offset = 0,
    y: Offset = 0,
    w: Extent = None,
    h: Extent = None,
    width: View = 512,
    height: View = 512,
    low: Intensity = None,
    high: Intensity = None,
) -> Response:
    """One plane (``c``, ``t``, ``z``) of the region ``x, y, w, h`` (full-resolution pixels;
    default: the whole plane) as a grey PNG of at most ``width`` x ``height`` pixels, from the
    smallest level that covers it; intensities from ``low`` to ``high`` map to black to white
    (neither given: the 0.5th to 99.5th percentile). The ``X-Mikro-Level``, ``X-Mikro-Step``
    and ``X-Mikro-Window`` headers say how it was made."""
    row = await find_image(session, image_id, who)
    await session.close()
    sizes = row.shape
    _index("c", c, sizes[0], "channel(s)")
    _index("t", t, sizes[1], "time point(s)")
    _index("z", z, sizes[2], "plane(s)")
    _index("x", x, sizes[4], "column(s)")
    _index("y", y, sizes[3], "row(s)")
    w, h = w or sizes[4] - x, h or sizes[3] - y
    for name, end, size, what in (
        ("x+w", x + w, sizes[4], "columns"),
        ("y+h", y + h, sizes[3], "rows"),
    ):
        if end > size:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"the region ends beyond the image: {name}={end}, but it has {size} {what}",
            )
    if (low is None) != (high is None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give both low and high, or neither (auto)"
        )
    if low is not None and high is not None and not low < high:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"low ({low}) must be less than high ({high})"
        )
    window = (low, high) if low is not None and high is not None else None
    wanted = SliceRequest(c, t, z, (y, x, h, w), (height, width), window)
    levels = await _levels(request.app, row)
    try:
        rendered = await anyio.to_thread.run_sync(
            render_slice, levels, wanted, limiter=_limiter(request.app)
        )
    except Exception as error:  # the store, not the request, is at fault
        raise unrenderable(error, row.id) from None
    headers = {
        **HEADERS,
        "X-Mikro-Level": str(rendered.level),
        "X-Mikro-Step": str(rendered.step),
        "X-Mikro-Window": f"{rendered.window[0]:.6g} {rendered.window[1]:.6g}",
    }
    return Response(rendered.png, media_type="image/png", headers=headers)


def _facts(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)


def _link(row: ImageRow) -> str:
    return f"<a href='../{escape(row.id)}/view'>{escape(row.name)}</a>"


async def _lineage(session: AsyncSession, row: ImageRow, who: Principal | None) -> str:
    """Origins and derived images the caller may see, as links (others are not named)."""
    origins = list(
        await session.scalars(
            select(ImageRow).where(ImageRow.id.in_(row.origins), *image_filter(who))
        )
    )
    hidden = len(set(row.origins)) - len(origins)
    derived = list(
        await session.scalars(
            select(ImageRow)
            .where(cast(ImageRow.origins, String).contains(row.id), *image_filter(who))
            .order_by(ImageRow.created_at.desc(), ImageRow.id)
            .limit(_DERIVED_SHOWN)
        )
    )
    shown = ", ".join(_link(origin) for origin in origins) or "none"
    if hidden:
        shown += f" (and {hidden} not visible to you or deleted)"
    made = ", ".join(_link(image) for image in derived) or "none"
    return _facts([("Derived from", shown), ("Derived images", made)])


def _controls(row: ImageRow) -> str:
    c, t, z, _, _ = row.shape
    names = json.dumps(row.channel_names or [f"channel {i}" for i in range(c)])

    def slider(axis: str, size: int, label: str) -> str:
        hidden = " hidden" if size <= 1 else ""
        return (
            f"<label{hidden}>{label} <input type='range' id='{axis}' min='0' max='{size - 1}' "
            f"value='0' step='1'> <output id='{axis}-value'>0</output></label>"
        )

    return (
        f"<section id='viewer' data-shape='{escape(json.dumps(row.shape))}' "
        f"data-channels='{escape(names)}' data-drawn='0'>"
        f"<div class='controls'>{slider('z', z, 'z')}{slider('t', t, 't')}"
        f"{slider('c', c, 'channel')} <span id='channel-name'></span></div>"
        "<div class='controls'><label><input type='checkbox' id='auto' checked> auto contrast"
        "</label> <label>min <input type='number' id='low' step='any'></label> "
        "<label>max <input type='number' id='high' step='any'></label> "
        "<button type='button' id='zoom-in'>zoom in</button>"
        "<button type='button' id='zoom-out'>zoom out</button>"
        "<button type='button' id='zoom-reset'>fit</button> <output id='zoom'>1x</output></div>"
        "<canvas id='canvas' width='640' height='640'></canvas>"
        "<p id='status' role='status'></p></section>"
    )


_MISSING_PAGE: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such image, or it is not visible to you (an HTML page).",
        "content": {"text/html": {}},
    }
}


@router.get(
    "/images/{image_id}/view",
    response_class=HTMLResponse,
    responses={**documented(401), **_MISSING_PAGE},
)
async def image_page(image_id: str, who: PageViewer, session: Session) -> HTMLResponse:
    """One image's page: what is known about it, its lineage, and the slice viewer.

    An image the caller cannot see is a 404 page (HTML, for the browser), not the API's JSON.
    """
    try:
        row = await find_image(session, image_id, who)
    except HTTPException as error:
        if error.status_code != status.HTTP_404_NOT_FOUND:
            raise
        return missing_image_page(root="../../")
    dataset = await session.get(DatasetRow, row.dataset_id) if row.dataset_id else None
    lineage = await _lineage(session, row, who)
    size = ", ".join(f"{k} {v:g} {'s' if k == 't' else 'µm'}" for k, v in row.pixel_size.items())
    channels = ", ".join(escape(n) for n in row.channel_names) or "not named"
    tags = "".join(
        f"<a class='tag' href='../../?{escape(urlencode({'tag': tag.tag}))}'>{escape(tag.tag)}</a>"
        for tag in row.tags
    )
    facts = _facts(
        [
            ("Id", escape(row.id)),
            ("Tags", tags or "none"),
            ("Dataset", escape(dataset.name) if dataset else "none"),
            ("App", escape(row.owner)),
            ("Stored", row.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("Shape", escape(readable_shape(row.shape))),
            ("Type", escape(row.dtype)),
            ("Channels", channels),
            ("Pixel size", escape(size) or "not given"),
            ("Visible to", "its app only" if row.private else "every app of the deployment"),
        ]
    )
    body = (
        f"<p><a href='../../'>all images</a></p><h1>{escape(row.name)}</h1>"
        f"<table class='facts'>{facts}{lineage}</table>{_controls(row)}"
    )
    return html_page(row.name, body, root="../../", script=True)
