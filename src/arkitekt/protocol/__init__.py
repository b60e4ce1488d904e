"""Wire models shared by the arkitekt client and server (the only code they share)."""

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
