"""HTTP plumbing shared by the services: the loopback/https guard and reading protocol answers."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from arkitekt.errors import ArkitektError, GrantError, InsecureTransportError
from arkitekt.protocol.hosts import is_loopback

__all__ = ["IDEMPOTENT", "NO_AUTH", "check_secure", "read_model"]

M = TypeVar("M", bound=BaseModel)

NO_AUTH = httpx.Auth()
"""Per-request ``auth=``: send without the client's bearer token (fakts is unauthenticated)."""

IDEMPOTENT = "arkitekt.idempotent"
"""Request extension: ``extensions={IDEMPOTENT: True}`` marks a POST that is safe to send twice
(it only reads or repeats), so the app's transport resends it, like a GET, when the server had
closed the kept-alive connection it went out on."""


def check_secure(url: httpx.URL, allow_insecure: bool) -> None:
    """Refuse plain http to other machines unless allowed.

    Raises:
        InsecureTransportError: naming the URL and the setting that allows it.

    """
    if url.scheme == "http" and not allow_insecure and not is_loopback(url.host):
        raise InsecureTransportError(
            f"refusing plain http to {url.host!r} ({url}): credentials would travel in clear "
            "text. Use https, or set allow_insecure=True (ARKITEKT_ALLOW_INSECURE=1) on a "
            "trusted network."
        )


def read_model(
    response: httpx.Response,
    model: type[M],
    what: str,
    off_protocol: type[ArkitektError] = GrantError,
) -> M:
    """Parse a protocol answer, or fail naming the step and the server's words.

    Args:
        response: the server's answer.
        model: the protocol model it must match.
        what: the step, for messages (e.g. ``"claim"``).
        off_protocol: the error for an answer that is not 2xx or does not match ``model``:
            :class:`~arkitekt.errors.GrantError` in the grant flow (where any such answer
            means "not granted"), :class:`~arkitekt.errors.BadResponseError` outside it.

    Raises:
        GrantError: the answer is 401 or 403 (the server did not accept the app), or, in the
            grant flow, any other refusal.
        ArkitektError: ``off_protocol``, for any other non-2xx answer, or one that does not
            match the protocol.

    """
    if response.status_code in (401, 403):
        raise GrantError(
            f"{what}: {response.request.url} refused the app (HTTP {response.status_code}): "
            f"{response.text[:300]}"
        )
    if response.is_error:
        raise off_protocol(
            f"{what}: {response.request.url} answered HTTP {response.status_code}: "
            f"{response.text[:300]}"
        )
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        raise off_protocol(
            f"{what}: {response.request.url} did not answer fakts v1 ({error.error_count()} "
            f"problem(s), first: {error.errors()[0]['msg']})"
        ) from None
