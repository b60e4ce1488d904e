"""The base of every exception the server raises on purpose.

The tree (each class but those of this module is defined beside the code that raises it)::

    ArkitektServerError
    ├── ServerConfigError      the configuration (arguments, environment, YAML) is invalid
    ├── ServerStartError       an EmbeddedServer did not start, or mikro's bucket cannot be
    │   │                      used (also a RuntimeError)
    │   └── PortInUseError     the server's port is in use by another process
    ├── ServerExtraMissingError  a server part was imported without the server extra (also
    │                          a ModuleNotFoundError)
    ├── DatabaseUnavailableError  the database cannot be used (refused start; 503 mid-run)
    ├── ValueRefusedError      the database refused a value of a request (422)
    ├── BodyTooLargeError      a request body over its route's limit (also an HTTPException: 413)
    ├── HubError               rekuest refuses a call (its status: 413, 422 or 429)
    ├── FaktsError             an operator command failed (unknown code, already decided, ...)
    ├── TooManyPendingError    too many device codes wait for a decision (429)
    ├── UnknownStoresError     image stores the database does not know (also a RuntimeError)
    ├── ChunkRefusedError      a mikro key or chunk that must not be stored or decoded
    └── StoreInvalidError      a mikro store that does not hold what its grant announced

Only :class:`ServerConfigError` (``load_server_settings``, ``create_app``, the CLI),
:class:`ServerStartError` (``EmbeddedServer``) and :class:`ServerExtraMissingError` (importing
``EmbeddedServer`` or ``create_app`` without the extra) leave the server's public API; the
others are answered as HTTP errors or stop the server at start.
"""

from __future__ import annotations

__all__ = ["ArkitektServerError", "PortInUseError", "ServerExtraMissingError", "ServerStartError"]


class ArkitektServerError(Exception):
    """Base of the exceptions the server raises on purpose (see the module for the tree)."""


class ServerStartError(ArkitektServerError, RuntimeError):
    """An :class:`~arkitekt_server.EmbeddedServer` did not start: it failed or took too long.

    Also a :class:`RuntimeError`, as it was before it had a class. The server's log says why.
    """


class PortInUseError(ServerStartError):
    """The server's port is in use: another process listens on it."""


class ServerExtraMissingError(ArkitektServerError, ModuleNotFoundError):
    """A part of the server was imported where the ``server`` extra is not installed.

    Also a :class:`ModuleNotFoundError` (an :class:`ImportError`), as Python raised before.
    """
