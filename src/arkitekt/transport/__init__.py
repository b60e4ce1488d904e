"""The app's HTTP transport: an httpx client with OAuth2 bearer tokens."""

from arkitekt.transport._client import IDEMPOTENT, MAX_BODY, Transport, open_transport
from arkitekt.transport._userinfo import awhoami, whoami

__all__ = ["IDEMPOTENT", "MAX_BODY", "Transport", "awhoami", "open_transport", "whoami"]
