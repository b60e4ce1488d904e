"""HTTP routes of fakts v1: discovery, the device-code flow, claim, retrieve, redeem, approval."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

import arkitekt
from arkitekt.protocol.fakts import (
    ChallengeRequest,
    ChallengeResponse,
    ClaimRequest,
    ClaimResponse,
    RedeemRequest,
    RedeemResponse,
    RetrieveRequest,
    StartRequest,
    StartResponse,
    WellKnown,
)
from arkitekt.protocol.hosts import is_loopback
from arkitekt_server._db import get_session, utcnow
from arkitekt_server._logs import Throttled
from arkitekt_server._operator import OPERATOR_COOKIE, SESSION_SECONDS, OperatorSessions
from arkitekt_server._secrets import hash_secret, new_secret, normalize_code
from arkitekt_server._service import documented
from arkitekt_server._settings import ServerSettings
from arkitekt_server._urls import base_url
from arkitekt_server.fakts import _admin as admin
from arkitekt_server.fakts import _logic as logic
from arkitekt_server.fakts._page import PAGE_CSP, approval_page, message_page, signin_page

__all__ = ["router"]

log = logging.getLogger("arkitekt_server.fakts")
# Anyone may post the sign-in form: its refusals are logged rate-limited.
_wrong_secret = Throttled(log, "fakts: wrong operator secret")
router = APIRouter(tags=["fakts"])
Session = Annotated[AsyncSession, Depends(get_session)]


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def _signed_in(request: Request) -> bool:
    sessions: OperatorSessions = request.app.state.operator_sessions
    return sessions.valid(request.cookies.get(OPERATOR_COOKIE))


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "same-origin",  # no-referrer would make form posts say Origin: null
    "X-Content-Type-Options": "nosniff",
}
_PAGE_ANSWERS = {
    400: "No device code given.",
    403: "Not allowed: not signed in as the operator, a wrong secret, a stale form, another "
    "origin or another machine.",
    404: "Unknown device code.",
    409: "The code cannot be decided (expired or already decided).",
}


def _pages(*codes: int, sign_in: str = "") -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of the HTML pages: each code answers a page saying why."""
    answers: dict[int | str, dict[str, Any]] = {
        code: {"description": _PAGE_ANSWERS[code], "content": {"text/html": {}}} for code in codes
    }
    if sign_in:
        answers[200] = {"description": f"The approval page, or {sign_in}."}
    return answers


def _client_host(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


@router.get("/.well-known/fakts", response_model=WellKnown)
async def well_known(request: Request) -> WellKnown:
    """Discovery: where the fakts root of this server is."""
    settings = _settings(request)
    return WellKnown(
        name=settings.deployment_name,
        base_url=base_url(request) + "f/",
        description="arkitekt server",
        version=arkitekt.__version__,
    )


_START_REFUSALS = {
    429: "Too many device codes wait for a decision (on the server, or from this address); "
    "`Retry-After` says when the oldest may have expired."
}


@router.post(
    "/f/start/",
    response_model=StartResponse,
    response_model_exclude_none=True,
    responses=documented(_START_REFUSALS, 429),
)
async def start(body: StartRequest, request: Request, session: Session) -> StartResponse:
    """Start a device-code grant; the user approves it on ``configure/``."""
    settings = _settings(request)
    host = _client_host(request)
    auto = settings.auto_approve and is_loopback(host)
    try:
        code = await logic.start(session, body, auto_approve=auto, settings=settings, address=host)
    except logic.TooManyPendingError as error:
        retry = {"Retry-After": str(max(1, round(error.retry_after)))}
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(error), retry) from None
    if not auto:
        log.info(
            "%s@%s asks for access; the operator approves it on the page the app shows "
            "(signed in with the operator secret) or with `arkitekt approve CODE`",
            body.manifest.identifier, body.manifest.version,
        )  # fmt: skip
    return StartResponse(status="granted", code=code)


@router.post("/f/challenge/", response_model=ChallengeResponse, response_model_exclude_none=True)
async def challenge(
    body: ChallengeRequest, request: Request, session: Session
) -> ChallengeResponse:
    """Poll a device code: waiting, pending, granted (with the claim token), denied or error."""
    return await logic.challenge(session, body.code, _settings(request))


@router.post("/f/claim/", response_model=ClaimResponse, response_model_exclude_none=True)
async def claim(body: ClaimRequest, request: Request, session: Session) -> ClaimResponse:
    """Trade a claim token for the configuration."""
    services = request.app.state.services
    return await logic.claim(session, body.token, base_url(request), _settings(request), services)


@router.post("/f/redeem/", response_model=RedeemResponse, response_model_exclude_none=True)
async def redeem(body: RedeemRequest, request: Request, session: Session) -> RedeemResponse:
    """Trade a static token for a claim token."""
    return await logic.redeem(session, body.manifest, body.token, _settings(request))


@router.post("/f/retrieve/", response_model=RedeemResponse, response_model_exclude_none=True)
async def retrieve(body: RetrieveRequest, request: Request, session: Session) -> RedeemResponse:
    """Grant a claim token to a pre-registered public app."""
    return await logic.retrieve(session, body.manifest, _settings(request))


def _html(title: str, message: str, code: int = status.HTTP_200_OK) -> HTMLResponse:
    return HTMLResponse(message_page(title, message), status_code=code, headers=_PAGE_HEADERS)


@router.get(
    "/f/configure/",
    response_class=HTMLResponse,
    responses=_pages(400, 404, sign_in="the operator's sign-in form until they signed in"),
)
async def configure_page(
    request: Request, session: Session, device_code: str = "", grant: str = "device_code"
) -> HTMLResponse:
    """The approval page of a device code."""
    if not device_code:
        return _html("No code", "Open the link the app printed.", status.HTTP_400_BAD_REQUEST)
    row = await logic.find_code(session, device_code)
    if row is None:
        return _html("Unknown code", "This device code is unknown.", status.HTTP_404_NOT_FOUND)
    if row.expires_at <= utcnow():
        return _html("Expired", "This device code expired; start the app again.")
    if row.status != "pending":
        return _html("Already decided", f"This request was already {row.status}.")
    row.seen_at = row.seen_at or utcnow()
    deployment = _settings(request).deployment_name
    if not _signed_in(request):  # no form (and no nonce) for whoever merely fetches the page
        await session.commit()
        page = signin_page(normalize_code(device_code), deployment)
        return HTMLResponse(page, headers=_PAGE_HEADERS)
    nonce = new_secret()
    row.nonce_hash = hash_secret(nonce)
    await session.commit()
    page = approval_page(row, normalize_code(device_code), nonce, deployment)
    return HTMLResponse(page, headers=_PAGE_HEADERS)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


@router.get("/f/signin/", response_class=HTMLResponse, responses=_pages())
async def signin_form(request: Request) -> HTMLResponse:
    """The operator's sign-in form for the image gallery (``/mikro/``)."""
    page = signin_page("", _settings(request).deployment_name)
    return HTMLResponse(page, headers=_PAGE_HEADERS)


@router.post(
    "/f/signin/",
    response_class=HTMLResponse,
    response_model=None,
    responses={
        303: {
            "description": "Signed in, with a session cookie: back to the approval page of "
            "the device code, or to the image gallery without one."
        },
        **_pages(403),
    },
)
async def signin(
    request: Request,
    secret: Annotated[str, Form(max_length=1000)],
    device_code: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse | RedirectResponse:
    """Sign the operator in with the operator secret (for the approval page and the gallery)."""
    if not _same_origin(request):
        return _html(
            "Not allowed here", "Sign in on the server's own page.", status.HTTP_403_FORBIDDEN
        )
    sessions: OperatorSessions = request.app.state.operator_sessions
    session_id = sessions.sign_in(secret.strip())
    code = normalize_code(device_code) if device_code else ""
    if session_id is None:
        _wrong_secret("a sign-in on the approval page with a wrong operator secret was refused")
        page = signin_page(code, _settings(request).deployment_name, "Wrong operator secret.")
        return HTMLResponse(page, status.HTTP_403_FORBIDDEN, headers=_PAGE_HEADERS)
    back = RedirectResponse(
        f"../configure/?device_code={quote(code)}&grant=device_code" if code else "../../mikro/",
        status.HTTP_303_SEE_OTHER,
        headers=_PAGE_HEADERS,
    )
    back.set_cookie(
        OPERATOR_COOKIE,
        session_id,
        max_age=int(SESSION_SECONDS),
        path="/",  # the approval page (/f/) and the gallery (/mikro/)
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return back


@router.post("/f/configure/", response_class=HTMLResponse, responses=_pages(403, 404, 409))
async def configure_decide(
    request: Request,
    session: Session,
    device_code: Annotated[str, Form()],
    nonce: Annotated[str, Form()],
    action: Annotated[Literal["approve", "deny"], Form()],
) -> HTMLResponse:
    """Approve or deny from the page: only the signed-in operator, only from this machine."""
    if not _same_origin(request):
        return _html(
            "Not allowed here",
            "This form can only be sent from the approval page itself.",
            status.HTTP_403_FORBIDDEN,
        )
    if not is_loopback(_client_host(request)):
        return _html(
            "Not allowed here",
            "Approve from the server's machine, or run `arkitekt approve CODE` there.",
            status.HTTP_403_FORBIDDEN,
        )
    if not _signed_in(request):
        return _html(
            "Sign in first",
            "Only the operator of this server may decide: open the approval link again and sign "
            "in with the operator secret, or run `arkitekt approve CODE` on the server's machine.",
            status.HTTP_403_FORBIDDEN,
        )
    row = await logic.find_code(session, device_code)
    if row is None or row.nonce_hash is None:
        return _html("Unknown code", "Open the approval link again.", status.HTTP_404_NOT_FOUND)
    if not hmac.compare_digest(row.nonce_hash, hash_secret(nonce)):
        return _html("Stale form", "Reload the approval page.", status.HTTP_403_FORBIDDEN)
    try:
        await admin.decide(session, device_code, approve=action == "approve")
    except logic.FaktsError as error:
        return _html("Not possible", str(error), status.HTTP_409_CONFLICT)
    done = "approved: the app continues on its own" if action == "approve" else "denied"
    return _html("Done", f"The request of {row.identifier} was {done}. You can close this page.")
