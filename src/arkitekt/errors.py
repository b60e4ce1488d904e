"""Exceptions raised by arkitekt.

Every error the library raises on purpose is an :class:`ArkitektError`, so callers can catch
the whole family with one ``except`` clause and still tell the cases apart.
"""

from __future__ import annotations

__all__ = [
    "AppClosedError",
    "ArkitektError",
    "BadResponseError",
    "BridgeError",
    "ConfigError",
    "DiscoveryError",
    "GrantError",
    "InsecureTransportError",
    "NoActiveAppError",
    "ResponseTooLargeError",
    "ScopeError",
    "ScopeLockedError",
    "ServerUnreachableError",
    "TeardownError",
]


class ArkitektError(Exception):
    """Base class of every error arkitekt raises on purpose."""


class NoActiveAppError(ArkitektError):
    """An API call needed an app, but no app scope is active here."""

    def __init__(self, what: str = "this call") -> None:
        super().__init__(
            f"{what} needs an active arkitekt app, but none is open in this thread or task. "
            "Open one first: `with app: ...` (or `async with app: ...`), "
            "or pass a service explicitly (e.g. `mikro=app.mikro`)."
        )


class AppClosedError(ArkitektError):
    """A service was used while the scope of the app it belongs to is not open."""


class ScopeError(ArkitektError):
    """A scope was used the wrong way (entered twice, wrong order, wrong lifetime)."""


class ScopeLockedError(ScopeError):
    """An attribute was assigned on an app or service while its scope is open."""


class BridgeError(ArkitektError):
    """A sync call could not be bridged to the app's event loop."""


class ConfigError(ArkitektError):
    """The configuration (arguments, environment or YAML file) is invalid."""


class InsecureTransportError(ConfigError):
    """A request would send credentials over plain http to another machine.

    Use https, or set ``allow_insecure=True`` (``ARKITEKT_ALLOW_INSECURE=1``) if the network is
    trusted.
    """


class DiscoveryError(ArkitektError):
    """No fakts server answered at the configured URL (it is down, or not a fakts server)."""


class ServerUnreachableError(ArkitektError):
    """A request got no answer: the server is down, unreachable, or slower than ``timeout``."""


class BadResponseError(ArkitektError):
    """A server's answer was not read: too large, or in a form the client did not ask for.

    The server (or a proxy in between) is broken or hostile; nothing of the answer was used.
    """


class ResponseTooLargeError(BadResponseError):
    """An answer was larger (decoded) than the client reads for its kind of request.

    The limits are in the user guide ("Requests and retries"); the message names the request
    and the limit.
    """


class GrantError(ArkitektError):
    """The app was not granted access: denied, expired, revoked, or the server said no."""


class TeardownError(ArkitektError, ExceptionGroup[Exception]):
    """One or more resources failed to close when a scope ended.

    Every resource is closed even when some fail; the failures are collected here
    (``.exceptions``), in the order the resources were closed.
    """

    def __new__(cls, message: str, exceptions: list[Exception]) -> TeardownError:  # noqa: D102
        return super().__new__(cls, message, exceptions)

    def derive(self, excs: list[Exception]) -> TeardownError:  # type: ignore[override]  # noqa: D102
        return TeardownError(self.message, excs)
