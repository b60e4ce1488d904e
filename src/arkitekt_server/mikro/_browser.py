"""What the browser pages of mikro share: who may look, the security headers, the page shell.

Who may look (see ``docs/mikro.md``): a request with a valid bearer token sees what that app
sees. Without one, a browser signed in as the operator (the operator secret, at ``/f/signin/``:
a session cookie, HttpOnly and SameSite=Strict) sees the images that are not private; so does
any request in single-user mode (``auto_approve``), but only from this machine (loopback peer)
and only when the ``Host`` header names loopback too (so a web page cannot reach it by DNS
rebinding). Pages (the gallery, an image's page) send anyone else to the sign-in form.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from html import escape
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from arkitekt.protocol.hosts import host_of, is_loopback
from arkitekt_server._auth import Principal, require_principal
from arkitekt_server._operator import OPERATOR_COOKIE, OperatorSessions
from arkitekt_server._settings import ServerSettings
from arkitekt_server.mikro._chunks import ChunkRefusedError
from arkitekt_server.mikro._storage import StoreInvalidError

__all__ = [
    "CSP",
    "HEADERS",
    "PageViewer",
    "Viewer",
    "html_page",
    "missing_image_page",
    "readable_shape",
    "unrenderable",
    "viewer",
]

log = logging.getLogger("arkitekt_server.mikro")

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}
"""Headers of every browser response (pages, images, scripts)."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of the pages: scripts and styles only from the server's own
static routes (no inline code, no ``eval``), nothing from elsewhere."""


async def viewer(request: Request) -> Principal | None:
    """The caller: a bearer token's principal, or ``None`` for a tokenless view.

    Tokenless: a browser signed in as the operator, or the local single-user viewer; both see
    the images that are not private.

    Raises:
        HTTPException: 401 when none applies.

    """
    if request.headers.get("authorization"):
        return await require_principal(request)
    sessions: OperatorSessions | None = getattr(request.app.state, "operator_sessions", None)
    if sessions is not None and sessions.valid(request.cookies.get(OPERATOR_COOKIE)):
        return None
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
        "a bearer token is required, or a browser signed in as the operator at /f/signin/ "
        "(without either, the browser view is only for the server's own machine in "
        "single-user mode, auto_approve)",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def page_viewer(request: Request) -> Principal | None:
    """:func:`viewer` for pages: whoever may not look is sent to the operator's sign-in form.

    Raises:
        HTTPException: 303 to ``/f/signin/`` when :func:`viewer` answers 401 to a request
            without a token; 401 for a refused token.

    """
    try:
        return await viewer(request)
    except HTTPException as refused:
        if refused.status_code != status.HTTP_401_UNAUTHORIZED or "authorization" in (
            request.headers
        ):  # a refused token stays a 401: whoever sent one is a program, not a person
            raise
        path = request.url.path
        depth = path[path.index("/mikro/") + len("/mikro/") :].count("/") + 1
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "sign in as the operator",
            headers={**HEADERS, "Location": "../" * depth + "f/signin/"},
        ) from None


Viewer = Annotated[Principal | None, Depends(viewer)]
"""Who looks, for images and scripts (401 when nobody may)."""
PageViewer = Annotated[Principal | None, Depends(page_viewer)]
"""Who looks, for pages (a redirect to the operator's sign-in form when nobody may)."""


def readable_shape(shape: Sequence[int]) -> str:
    """An image's ``(c, t, z, y, x)`` shape as people read it; c, t and z only when above 1.

    Example:
        >>> readable_shape([2, 1, 64, 1024, 2048])
        '2 c x 64 z x 1024 y x 2048 x'

    """
    return " x ".join(
        f"{size} {axis}"
        for axis, size in zip("ctzyx", shape, strict=True)
        if size > 1 or axis in "yx"
    )


def html_page(
    title: str, body: str, *, root: str, script: bool = False, status_code: int = 200
) -> HTMLResponse:
    """A page with the mikro stylesheet (and the viewer script), with the security headers.

    Args:
        title: the page title (escaped here).
        body: the body's HTML (escaped by the caller).
        root: the relative path from the page to ``/mikro/`` (``""`` or ``"../../"``).
        script: whether the page loads the viewer's script.
        status_code: the HTTP status (a page can say that what was asked for is not there).

    """
    js = f"<script src='{root}static/viewer.js' defer></script>" if script else ""
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><link rel='stylesheet' href='{root}static/mikro.css'>"
        f"{js}</head><body>{body}</body></html>"
    )
    return HTMLResponse(
        html, status_code=status_code, headers={**HEADERS, "Content-Security-Policy": CSP}
    )


def missing_image_page(root: str) -> HTMLResponse:
    """The 404 page of an image the caller cannot see: the same whether it does not exist or
    belongs to another app (its id is not repeated), as the API's 404."""
    body = (
        f"<p><a href='{root}'>all images</a></p><h1>Image not found</h1>"
        "<p>There is no such image, or it is not visible to you.</p>"
    )
    return html_page("Image not found", body, root=root, status_code=404)


def unrenderable(error: Exception, image_id: str) -> HTTPException:
    """The 422 of an image whose store cannot be rendered (a thumbnail, a slice), never a 500.

    A store outside its bounds (:class:`StoreInvalidError`, :class:`ChunkRefusedError`) or
    missing keys are named; anything else (a chunk within its bounds that does not decode) is
    logged and answered without its details.
    """
    if isinstance(error, StoreInvalidError | ChunkRefusedError | OSError):
        detail = str(error)
    else:
        log.warning("mikro: image %s cannot be rendered: %r", image_id, error)
        detail = "a chunk does not decode (the server's log says which)"
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"the image's store cannot be rendered: {detail}"
    )
