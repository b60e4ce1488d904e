"""Routes of rekuest: the agent and caller websockets, and HTTP for listing, calls and cancel."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.lowlevel import checkpoint
from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError

from arkitekt.protocol.rekuest import (
    CLOSE_OUTBOX_FULL,
    CLOSE_TOKEN_REFUSED,
    MessageError,
    ResumeMessage,
    agent_message,
    encode,
    explain,
    loads,
    may_hold_big_messages,
    problem,
)
from arkitekt_server._auth import CurrentPrincipal, authenticate_websocket
from arkitekt_server._service import documented
from arkitekt_server.rekuest._hub import AgentState, Hub, HubError
from arkitekt_server.rekuest._peer import Peer, warn

__all__ = ["router"]

log = logging.getLogger("arkitekt_server.rekuest")
router = APIRouter(tags=["rekuest"])

YIELD_EVERY = 256
"""Messages of one frame handled between two yields to the event loop (a full frame must not
hold up other requests)."""

_REASONS = {
    400: "The arguments do not fit the function (the detail's ``kind`` and ``message`` say how).",
    404: "No such assignment of yours, or no agent ever registered the function.",
    413: "The call is bigger than ``MAX_MESSAGE_BYTES`` encoded (as on the websocket).",
    422: "A malformed call: unbounded ``wait``/``timeout``, non-finite, too large or too deep "
    "arguments.",
    429: "The app has too many unfinished calls, or too many bytes of arguments in them "
    "(settings ``rekuest_max_pending_calls``, ``rekuest_max_pending_argument_bytes``).",
    503: "The function is registered, but no agent of it is online (after ``wait``).",
}


def _hub(request: Request | WebSocket) -> Hub:
    hub: Hub = request.app.state.rekuest_hub
    return hub


async def _open(websocket: WebSocket) -> tuple[Peer, Any] | None:
    principal = await authenticate_websocket(websocket)
    await websocket.accept()
    if principal is None:
        await websocket.close(CLOSE_TOKEN_REFUSED, "a valid bearer token is required")
        return None
    return Peer(websocket, principal.client_pk), principal


async def _serve(peer: Peer, receive: Callable[[], Awaitable[None]]) -> None:
    """Run ``receive`` (the reading loop) with the peer's writer beside it, until either ends.

    A peer whose outbox overflows is cut off at once (its writer may be stuck on a socket it
    does not read) and closed with ``CLOSE_OUTBOX_FULL``, as far as the socket still lets us.
    """
    async with anyio.create_task_group() as tasks:
        peer.scope = tasks.cancel_scope
        tasks.start_soon(peer.pump)
        try:
            await receive()
        except WebSocketDisconnect as error:
            log.debug("rekuest socket closed: %r", error)
        except Exception:  # a bug, not the peer's fault: close cleanly, tell why
            log.exception("rekuest: closing a socket after an unexpected error")
            if peer.closing is None:
                peer.close(1011, "internal error")
        finally:
            if peer.closing is None:
                tasks.cancel_scope.cancel()
    if peer.closing is not None and peer.closing[0] == CLOSE_OUTBOX_FULL:
        with anyio.move_on_after(1.0, shield=True):
            await peer.websocket.close(*peer.closing)


async def _frame(websocket: WebSocket) -> tuple[list[dict[str, Any]], bool] | str:
    """The messages of the next frame and whether it is big (its messages' sizes are then
    checked one by one), or (it is malformed) why it cannot be read."""
    received = await websocket.receive()
    if received["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(received.get("code", 1000), received.get("reason"))
    data = received.get("text")
    if data is None:
        data = received.get("bytes") or b""
    try:
        return loads(data), may_hold_big_messages(data)
    except MessageError as error:  # too big, too deep, not JSON, not a list of objects
        return f"malformed frame: {error}"


def _handle(hub: Hub, agent: AgentState, message: dict[str, Any], big: bool) -> None:
    """Validate one message of an agent and act on it; a bad one fails only its assignment."""
    try:
        parsed = agent_message(message)
        if big:
            encode(message)  # refuses a message bigger than MAX_MESSAGE_BYTES
    except MessageError as error:
        hub.agent_refused(agent, message, str(error))
        return
    try:
        hub.agent_message(agent, parsed)
    except Exception:  # a bug: this message is lost, the agent's socket is kept
        log.exception("rekuest: a message of agent %s failed", agent.key)


@router.websocket("/agent/ws")
async def agent_socket(websocket: WebSocket) -> None:
    """An agent: registers, receives assignments, reports progress and results."""
    opened = await _open(websocket)
    if opened is None:
        return
    peer, principal = opened
    hub = _hub(websocket)

    async def receive() -> None:
        frame = await _frame(websocket)
        if isinstance(frame, str) or not frame[0]:
            reason = frame or "an empty frame: the first message of an agent must be `register`"
            warn("rekuest: refused an agent of %s: %s", principal.identifier, reason)
            peer.send({"t": "fatal", "m": reason})
            peer.close(4400, "registration refused")
            return
        (first, *rest), big = frame
        try:
            why = problem(first)
            if why is None and big:
                try:
                    encode(first)  # at most MAX_MESSAGE_BYTES, as every message
                except MessageError as error:
                    why = str(error)
            if why is not None:
                raise HubError(f"invalid registration: {why}")
            agent = await hub.agent_connected(
                peer, principal.client_pk, principal.identifier, first
            )
        except HubError as error:
            warn("rekuest: refused an agent of %s: %s", principal.identifier, error)
            peer.send({"t": "fatal", "m": str(error)})
            peer.close(4400, "registration refused")
            return
        for n, message in enumerate(rest, 1):
            _handle(hub, agent, message, big)
            if n % YIELD_EVERY == 0:
                await checkpoint()
        while True:
            frame = await _frame(websocket)
            if isinstance(frame, str):  # refused once, as a whole
                warn("rekuest: refused a frame of agent %s: %s", agent.key, frame)
                peer.send({"t": "refused", "id": None, "m": frame})
                continue
            messages, big = frame
            for n, message in enumerate(messages, 1):
                _handle(hub, agent, message, big)
                if n % YIELD_EVERY == 0:
                    await checkpoint()

    try:
        await _serve(peer, receive)
    finally:
        gone = hub.agent_of(peer)  # whatever happened, this connection's agent is offline now
        if gone is not None:
            hub.agent_gone(gone, peer)
            replica = hub.cluster.replica if hub.cluster is not None else None
            with anyio.CancelScope(shield=True):
                try:
                    await hub.store.mark_disconnected(gone.key, replica)
                except DBAPIError as error:  # e.g. locked: the next start marks it offline too
                    log.warning("rekuest: could not record agent %s offline: %s", gone.key, error)


def _caller_message(hub: Hub, peer: Peer, client_pk: int, message: dict[str, Any]) -> None:
    kind = message.get("t")
    id = message.get("id")
    what = kind if kind in ("call", "cancel") else "message"
    try:
        if kind == "call":  # the hub checks a call whole, as for HTTP (sizes too)
            hub.call(peer, client_pk, message)
            return
        if (why := problem(message)) is not None:
            raise HubError(f"invalid {what}: {why}")
        if kind == "cancel":
            hub.cancel(client_pk, str(id))
        else:
            raise HubError(
                f"unknown message type {kind!r} (a caller sends `call`, `cancel` or `resume`)"
            )
    except HubError as error:
        reason = str(error)
    except Exception as error:  # a bug: refuse this message, keep the socket
        log.exception("rekuest: a caller's message failed")
        reason = f"the server could not handle this message ({type(error).__name__})"
    else:
        return
    refused = {"t": "error", "id": id if isinstance(id, str) else None, "kind": "refused"}
    peer.send({**refused, "m": reason, "tb": None})


async def _resume(hub: Hub, peer: Peer, client_pk: int, message: dict[str, Any]) -> None:
    """A caller waits for calls of an earlier connection (see ``ResumeMessage``)."""
    try:
        resume = ResumeMessage.model_validate(message)
    except ValidationError as error:
        reason = f"invalid resume: {explain(error)}"
        peer.send({"t": "error", "id": None, "kind": "refused", "m": reason, "tb": None})
        return
    try:
        await hub.resume(peer, client_pk, list(dict.fromkeys(resume.ids)))
    except DBAPIError as error:  # the database is away: the calls cannot be found now
        log.warning("rekuest: could not resume calls: %s", error)
        reason = "the server cannot look up these calls now (its database is unavailable)"
        for id in resume.ids:
            peer.send({"t": "error", "id": id, "kind": "lost", "m": reason, "tb": None})


@router.websocket("/caller/ws")
async def caller_socket(websocket: WebSocket) -> None:
    """A caller: sends calls and cancels, receives results, stream items and events."""
    opened = await _open(websocket)
    if opened is None:
        return
    peer, principal = opened
    peer.send({"t": "ready"})  # tells the caller its token was accepted
    hub = _hub(websocket)

    async def receive() -> None:
        while True:
            frame = await _frame(websocket)
            if isinstance(frame, str):  # refused once, as a whole
                warn("rekuest: refused a frame of %s: %s", principal.identifier, frame)
                peer.send({"t": "error", "id": None, "kind": "refused", "m": frame, "tb": None})
                continue
            messages, _ = frame
            for n, message in enumerate(messages, 1):
                if message.get("t") == "resume":
                    await _resume(hub, peer, principal.client_pk, message)
                    continue
                _caller_message(hub, peer, principal.client_pk, message)
                if n % YIELD_EVERY == 0:
                    await checkpoint()

    try:
        await _serve(peer, receive)
    finally:  # a caller cut off for not reading gets no time to resume
        cut_off = peer.closing is not None and peer.closing[0] == CLOSE_OUTBOX_FULL
        hub.caller_gone(peer, resumable=not cut_off)


# -- HTTP ------------------------------------------------------------------------------------
class CallRequest(BaseModel):
    """A call made over HTTP; poll ``GET /assignments/{id}`` for its outcome."""

    function: str
    positional: list[Any] = Field(default_factory=list)
    arguments: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None
    wait: float = 0.0  # bounds are checked by the hub (422), as for websocket calls
    timeout: float | None = None


@router.get("/definitions/")
async def definitions(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Every function the server knows, with its agent and whether it is online."""
    return [
        {
            "agent": agent.key,
            "app": agent.name,
            "online": agent.online,
            "definition": definition.model_dump(),
        }
        for agent in _hub(request).agents.by_key.values()
        for definition in agent.definitions.values()
    ]


@router.get("/agents/")
async def agents(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Every agent the server knows."""
    return [
        {
            "key": agent.key,
            "app": agent.name,
            "instance": agent.instance,
            "online": agent.online,
            "running": len(agent.running),
            "functions": sorted(agent.definitions),
        }
        for agent in _hub(request).agents.by_key.values()
    ]


@router.post(
    "/assignments/",
    status_code=status.HTTP_201_CREATED,
    responses=documented(_REASONS, 400, 404, 413, 422, 429, 503),
)
async def create_assignment(
    body: CallRequest, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Call a function without a websocket.

    The call is checked exactly as one made on the caller websocket. Answers 422 for a
    malformed call (``wait`` and ``timeout`` must be finite, and at most
    :data:`~arkitekt.protocol.rekuest.MAX_SECONDS`; ``timeout`` above 0; arguments finite,
    integers below :data:`~arkitekt.protocol.rekuest.MAX_INT_MAGNITUDE`, nested at most
    :data:`~arkitekt.protocol.rekuest.MAX_DEPTH` deep), 413 for a call bigger than
    :data:`~arkitekt.protocol.rekuest.MAX_MESSAGE_BYTES` encoded, 429 when the app has too many
    unfinished calls (or bytes of arguments in them), 400 for bad arguments, 404 for a
    function no agent (matching ``agent``) ever registered, 503 for a registered function
    with no agent online (after ``wait``).
    """
    hub = _hub(request)
    id = uuid.uuid4().hex
    message = {
        "t": "call",
        "id": id,
        "f": body.function,
        "args": body.positional,
        "kwargs": body.arguments,
        "agent": body.agent,
        "wait": body.wait,
        "timeout": body.timeout,
    }
    try:
        job = hub.call(None, principal.client_pk, message)
    except HubError as error:
        detail = {"kind": "refused", "message": str(error)}  # e.g. an unbounded wait
        raise HTTPException(error.status, detail=detail) from None
    if job.failure is not None:
        kind, reason = job.failure
        code = status.HTTP_400_BAD_REQUEST
        if kind == "no_agent":
            code = status.HTTP_503_SERVICE_UNAVAILABLE
            if not hub.knows(body.function, body.agent):
                code = status.HTTP_404_NOT_FOUND
        raise HTTPException(code, detail={"kind": kind, "message": reason})
    return {"id": id}


@router.get("/assignments/{id}", responses=documented(_REASONS, 404))
async def get_assignment(id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """An assignment's status, result or error, and its log lines."""
    row, logs = await _hub(request).store.get(id)
    if row is None or row.caller_pk != principal.client_pk:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such assignment")
    return {
        "id": row.id,
        "function": row.function,
        "status": row.status,
        "agent": row.agent_key,
        "attempts": row.attempts,
        "result": row.result,
        "error_kind": row.error_kind,
        "error": row.error,
        "traceback": row.traceback,
        "logs": [{"level": line.level, "message": line.message} for line in logs],
    }


@router.post("/assignments/{id}/cancel", responses=documented(_REASONS, 404))
async def cancel_assignment(
    id: str, request: Request, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Cancel an unfinished assignment of the caller's (made through any replica)."""
    hub = _hub(request)
    if not hub.cancel(principal.client_pk, id) and not await hub.cancel_elsewhere(
        principal.client_pk, id
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such unfinished assignment")
    return {"id": id, "cancelling": True}
