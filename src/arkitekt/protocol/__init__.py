"""What the arkitekt client and server share (the only code they share).

Wire models and limits: :mod:`~arkitekt.protocol.fakts`, :mod:`~arkitekt.protocol.mikro`
(with its metadata check), :mod:`~arkitekt.protocol.rekuest` (re-exporting its frames,
definitions and messages), :mod:`~arkitekt.protocol.text`. Small
helpers both sides need: :mod:`~arkitekt.protocol.chunks` (which keys a mikro store holds and
how large its chunks decode), :mod:`~arkitekt.protocol.outbox` (a websocket's batching writer),
:mod:`~arkitekt.protocol.hosts` (host names, loopback), :mod:`~arkitekt.protocol.redact` (no
secret in any log), :mod:`~arkitekt.protocol.settings_yaml` (YAML settings files). The fakts
models are re-exported here.
"""

from arkitekt.protocol.fakts import (
    ChallengeRequest,
    ChallengeResponse,
    ClaimRequest,
    ClaimResponse,
    Manifest,
    RedeemRequest,
    RedeemResponse,
    RetrieveRequest,
    StartRequest,
    StartResponse,
    TokenResponse,
    UserInfo,
    WellKnown,
)

__all__ = [
    "ChallengeRequest",
    "ChallengeResponse",
    "ClaimRequest",
    "ClaimResponse",
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
