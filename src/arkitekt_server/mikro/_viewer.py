"""The browser view of mikro: the gallery (:mod:`._gallery`), each image's page with its slice
viewer (:mod:`._image_page`), and their script and stylesheet (``static/``).

Every route here answers a bearer token with what that app sees, and without one only in
local single-user mode (:func:`._browser.viewer`); these are the server's only tokenless
mikro routes (:data:`PUBLIC_PATHS`).
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

from fastapi import APIRouter, Response

from arkitekt_server.mikro._browser import HEADERS, Viewer
from arkitekt_server.mikro._common import documented
from arkitekt_server.mikro._gallery import router as gallery_router
from arkitekt_server.mikro._image_page import router as page_router

__all__ = ["PUBLIC_PATHS", "router"]

PUBLIC_PATHS = (
    "/mikro/",
    "/mikro/images/{image_id}/thumbnail.png",
    "/mikro/images/{image_id}/view",
    "/mikro/images/{image_id}/slice.png",
    "/mikro/static/{name}",
)
"""Routes that may answer without a bearer token (in local single-user mode only)."""

_TYPES = {"viewer.js": "text/javascript; charset=utf-8", "mikro.css": "text/css; charset=utf-8"}
_FILES = {
    name: (resources.files("arkitekt_server.mikro") / "static" / name).read_bytes()
    for name in _TYPES
}

router = APIRouter(tags=["mikro"])
router.include_router(gallery_router)
router.include_router(page_router)


@router.get(
    "/static/{name}",
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}, "text/css": {}}}, **documented(401)},
)
async def static(name: Literal["viewer.js", "mikro.css"], who: Viewer) -> Response:
    """The viewer's script and the pages' stylesheet."""
    del who  # asked for its check only
    return Response(_FILES[name], media_type=_TYPES[name], headers=HEADERS)
