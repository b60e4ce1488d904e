"""The app's HTTP transport: an httpx client with OAuth2 bearer tokens (for service authors).

- :class:`Transport`: the authenticated session a service resolves per call (also in
  :mod:`arkitekt.extension`); :func:`open_transport` is the opener behind
  ``ArkitektContainer.transport``.
- :data:`MAX_BODY`, :data:`IDEMPOTENT`: request extensions for ``transport.client``
  (``extensions={MAX_BODY: n}`` bounds an answer; ``{IDEMPOTENT: True}`` lets a POST be resent).
- :func:`blocking_client`: the app's blocking twin of ``transport.client``
  (:meth:`Transport.blocking`), for many large requests from worker threads (zarr chunks).
- :func:`whoami`, :func:`awhoami`: who the app's token belongs to (app authors import them from
  :mod:`arkitekt`).
"""

from arkitekt.transport._client import (
    IDEMPOTENT,
    MAX_BODY,
    Transport,
    blocking_client,
    open_transport,
)
from arkitekt.transport._userinfo import awhoami, whoami

__all__ = [
    "IDEMPOTENT",
    "MAX_BODY",
    "Transport",
    "awhoami",
    "blocking_client",
    "open_transport",
    "whoami",
]
