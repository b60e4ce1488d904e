"""Wire models of the fakts v1 protocol, shared by the client and the server.

Discovery answers :class:`WellKnown`. The device-code flow is ``start/`` (:class:`StartRequest`
-> :class:`StartResponse`), the user's approval on ``configure/``, then ``challenge/``
(:class:`ChallengeRequest` -> :class:`ChallengeResponse`) polled until it ends, and ``claim/``
(:class:`ClaimRequest` -> :class:`ClaimResponse`). ``retrieve/`` and ``redeem/`` trade a manifest
(and a static token) for a claim token directly. The claimed config's ``lok`` client credentials
are exchanged for a bearer token (:class:`TokenResponse`); ``userinfo_url`` answers
:class:`UserInfo`.

Request models ignore unknown fields, so clients that send more (``supported_layers``,
``secure``) still work; a missing or mistyped field is a validation error. Every text the
server stores is bounded in length (``start/`` needs no token: its rows must stay small) and
refused when it holds a NUL or a lone surrogate.
A well-formed request that fails for a reason of the protocol (unknown code, revoked token)
is answered with HTTP 200 and ``status: "error"`` plus a ``message``, as fakts v1 clients expect.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arkitekt.protocol.text import SHOWN, STORABLE

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_LOGO_CHARS",
    "MAX_REDIRECT_URIS",
    "MAX_SCOPES",
    "MAX_SCOPE_CHARS",
    "MAX_URI_CHARS",
    "MAX_VERSION_CHARS",
    "SCOPE_PATTERN",
    "VERSION_PATTERN",
    "ChallengeRequest",
    "ChallengeResponse",
    "ChallengeStatus",
    "ClaimRequest",
    "ClaimResponse",
    "ClientKind",
    "GrantStatus",
    "Manifest",
    "RedeemRequest",
    "RedeemResponse",
    "RetrieveRequest",
    "StartRequest",
    "StartResponse",
    "TokenResponse",
    "UserInfo",
    "WellKnown",
]

MAX_SCOPES = 32
"""The most scopes a manifest may ask for."""
MAX_SCOPE_CHARS = 64
"""The longest scope."""
MAX_LOGO_CHARS = 1000
"""The longest logo URL."""
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
"""What an app identifier may hold: shown to the operator as it is, so nothing that could pass
for something else (spaces, control or text-direction characters)."""
MAX_VERSION_CHARS = 64
"""The longest app version."""
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
"""What an app version may hold (no spaces: a version is not a place for a message)."""
SCOPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
"""What a scope may hold."""
MAX_REDIRECT_URIS = 5
"""The most redirect URIs of a start request."""
MAX_URI_CHARS = 500
"""The longest redirect URI."""

ChallengeStatus = Literal["waiting", "pending", "granted", "denied", "error"]
"""``waiting``: nobody opened the approval page yet; ``pending``: opened, not decided."""
GrantStatus = Literal["granted", "error"]
ClientKind = Literal["development", "website", "desktop"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Manifest(_Request):
    """What an app says about itself when it asks for access.

    Attributes:
        identifier: a stable name of the app, e.g. ``"my-app-name"`` or ``"org.lab.viewer"``:
            letters, digits and ``. _ - + @``, starting with a letter or digit.
        version: the app's version (``"1.2.0"``, ``"latest"``); approvals are per identifier
            and version: letters, digits and ``. _ - +``.
        scopes: the permissions the app asks for (``"read"``, ``"mikro:write"``).
        logo: an optional URL of a logo shown on the approval page.

    """

    identifier: Annotated[str, SHOWN] = Field(
        min_length=1, max_length=200, pattern=IDENTIFIER_PATTERN
    )
    version: Annotated[str, SHOWN] = Field(
        min_length=1, max_length=MAX_VERSION_CHARS, pattern=VERSION_PATTERN
    )
    scopes: list[
        Annotated[str, Field(max_length=MAX_SCOPE_CHARS, pattern=SCOPE_PATTERN), SHOWN]
    ] = Field(default_factory=list, max_length=MAX_SCOPES)
    logo: Annotated[str, Field(max_length=MAX_LOGO_CHARS), STORABLE] | None = None


class WellKnown(_Response):
    """The answer of ``GET {url}/.well-known/fakts``.

    Attributes:
        name: a human readable name of the deployment.
        base_url: the fakts root, ending in ``/`` (e.g. ``http://127.0.0.1:8000/f/``).
        description: what this deployment is.
        version: the server's version.

    """

    name: str
    base_url: str
    description: str | None = None
    version: str | None = None


class StartRequest(_Request):
    """The body of ``POST {base_url}start/``, which begins a device-code flow.

    Attributes:
        manifest: the app asking for access.
        expiration_time_seconds: how long the code may wait for approval (the server may cap it).
        redirect_uris: redirect URIs of website clients; empty for development clients.
        requested_client_kind: the kind of client the app wants to become.

    """

    manifest: Manifest
    expiration_time_seconds: int = Field(default=300, gt=0, le=86_400)
    redirect_uris: list[Annotated[str, Field(max_length=MAX_URI_CHARS), STORABLE]] = Field(
        default_factory=list, max_length=MAX_REDIRECT_URIS
    )
    requested_client_kind: ClientKind = "development"


class StartResponse(_Response):
    """The answer of ``start/``: the device code the user approves.

    Attributes:
        status: ``granted`` when a code was issued, else ``error``.
        code: the device code (``None`` on error).
        message: why it failed (``None`` on success).

    """

    status: GrantStatus
    code: str | None = None
    message: str | None = None


class ChallengeRequest(_Request):
    """The body of ``POST {base_url}challenge/``, polled about once a second.

    Attributes:
        code: the device code from :class:`StartResponse`.

    """

    code: str = Field(min_length=1, max_length=200)


class ChallengeResponse(_Response):
    """The answer of ``challenge/``.

    Attributes:
        status: ``waiting`` / ``pending`` (poll again), ``granted`` (``token`` is set),
            ``denied`` or ``error`` (both end the flow; ``message`` says why).
        token: the claim token, only with ``granted``. A code grants exactly once.
        message: a human readable reason for ``denied`` and ``error``.

    """

    status: ChallengeStatus
    token: str | None = None
    message: str | None = None


class ClaimRequest(_Request):
    """The body of ``POST {base_url}claim/``.

    Attributes:
        token: the claim token from a challenge, retrieve or redeem.

    """

    token: str = Field(min_length=1, max_length=500)


class ClaimResponse(_Response):
    """The answer of ``claim/``.

    Attributes:
        status: ``granted`` (``config`` is set) or ``error`` (``message`` says why).
        config: the configuration, a dict of groups (``self``, ``lok``, ``mikro``, ...).
        message: why the claim failed.

    """

    status: GrantStatus
    config: dict[str, Any] | None = None
    message: str | None = None


class RetrieveRequest(_Request):
    """The body of ``POST {base_url}retrieve/``, for apps the server lists as public.

    Attributes:
        manifest: the app asking for access.

    """

    manifest: Manifest


class RedeemRequest(_Request):
    """The body of ``POST {base_url}redeem/``, trading a static token for a claim token.

    Attributes:
        manifest: the app asking for access; must match what the static token was made for.
        token: the static token (``arkitekt token create``, ``FAKTS_TOKEN``).

    """

    manifest: Manifest
    token: str = Field(min_length=1, max_length=500)


class RedeemResponse(_Response):
    """The answer of ``retrieve/`` and ``redeem/``.

    Attributes:
        status: ``granted`` (``token`` is a claim token) or ``error``.
        token: the claim token to use with ``claim/``.
        message: why it failed.

    """

    status: GrantStatus
    token: str | None = None
    message: str | None = None


class TokenResponse(_Response):
    """A successful OAuth2 token answer of ``{lok.base_url}/token/``.

    Attributes:
        access_token: an opaque bearer token.
        token_type: always ``Bearer``.
        expires_in: seconds until the token expires.
        scope: the granted scopes, space separated.

    """

    access_token: str
    token_type: str = "Bearer"  # noqa: S105
    expires_in: int
    scope: str = ""


class UserInfo(_Response):
    """Who a bearer token belongs to (``lok.userinfo_url``).

    Attributes:
        sub: the subject, the app client's id.
        client_id: the app client's id (same as ``sub``).
        identifier: the app's manifest identifier.
        version: the app's manifest version.
        scopes: the scopes of the token.
        deployment_name: the server that issued the token.

    """

    sub: str
    client_id: str
    identifier: str
    version: str
    scopes: list[str] = Field(default_factory=list)
    deployment_name: str | None = None
