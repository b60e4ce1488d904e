"""The base of every exception the server raises on purpose.

The tree (each class is defined beside the code that raises it)::

    ArkitektServerError
    ├── ServerConfigError      the configuration (arguments, environment, YAML) is invalid
    ├── BodyTooLargeError      a request body over its route's limit (also an HTTPException: 413)
    ├── HubError               rekuest refuses a call (its status: 413, 422 or 429)
    ├── FaktsError             an operator command failed (unknown code, already decided, ...)
    ├── TooManyPendingError    too many device codes wait for a decision (429)
    ├── UnknownStoresError     image stores the database does not know (also a RuntimeError)
    ├── ChunkRefused           a mikro key or chunk that must not be stored or decoded
    └── StoreInvalid           a mikro store that does not hold what its grant announced

Only :class:`ServerConfigError` leaves the server's public API (``load_server_settings``,
``create_app``, the CLI); the others are answered as HTTP errors or stop the server at start.
"""

from __future__ import annotations

__all__ = ["ArkitektServerError"]


class ArkitektServerError(Exception):
    """Base of the exceptions the server raises on purpose (see the module for the tree)."""
