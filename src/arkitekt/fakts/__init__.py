"""Fakts: discover the backend, get approved, claim the configuration."""

from arkitekt.fakts._cache import TokenCache
from arkitekt.fakts._grants import (
    CachedGrant,
    ClaimGrant,
    DeviceCodeGrant,
    Grant,
    GrantContext,
    RetrieveGrant,
    StaticConfigGrant,
    StaticTokenGrant,
    default_grant,
)
from arkitekt.fakts._service import Fakts

__all__ = [
    "CachedGrant",
    "ClaimGrant",
    "DeviceCodeGrant",
    "Fakts",
    "Grant",
    "GrantContext",
    "RetrieveGrant",
    "StaticConfigGrant",
    "StaticTokenGrant",
    "TokenCache",
    "default_grant",
]
