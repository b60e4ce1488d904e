"""Secrets: generated with ``secrets``, stored only as SHA-256 hashes, never logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Unambiguous characters for codes a person may type (no 0/O, 1/I/L).
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_secret() -> str:
    """A fresh random secret (256 bits, URL safe)."""
    return secrets.token_urlsafe(32)


def new_code(length: int = 10) -> str:
    """A fresh device code a person can read and type (about 49 bits at length 10)."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


def normalize_code(code: str) -> str:
    """The canonical form of a typed device code (case and surrounding blanks ignored)."""
    return code.strip().upper()


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of ``secret``: what the database stores instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def derive_secret(secret: str, purpose: str) -> str:
    """A secret derived one-way from ``secret`` for ``purpose`` (HMAC-SHA-256, URL safe).

    The server stores only hashes, yet must hand out the same client secret on every claim of a
    claim token (and the same claim token on every redeem of a static token). Deriving it from the
    secret the client presents does that without storing anything recoverable.
    """
    digest = hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
