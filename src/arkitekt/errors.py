"""Every exception arkitekt raises on purpose, in one tree.

Catch :class:`ArkitektError` to catch them all; catch a branch to tell the cases apart. Some
classes also derive from the matching built-in (shown in brackets), so generic handlers keep
working::

    ArkitektError
    ├── NoActiveAppError            an API call with no app open here
    ├── AppClosedError              a service used after its app's `with app:` ended
    ├── ScopeError                  a scope used the wrong way (entered twice, wrong lifetime)
    │   └── ScopeLockedError        an app or service configured while it is open
    ├── UnknownProviderError        a provider name the app's container does not have
    ├── BridgeError                 a sync call could not reach the app's event loop
    ├── TeardownError               resources failed to close [ExceptionGroup]
    ├── ConfigError                 invalid settings, arguments or YAML
    │   ├── InsecureTransportError  credentials would travel over plain http
    │   └── InjectionError          ``@inject`` cannot fill a marked parameter [TypeError]
    ├── DiscoveryError              no fakts server at the configured URL
    ├── GrantError                  access not granted (denied, expired, revoked)
    ├── ServerUnreachableError      no answer from the server [ConnectionError]
    ├── BadResponseError            an answer the client will not read
    │   └── ResponseTooLargeError   ... because it is too large
    ├── MikroError                  the image service (arkitekt.mikro)
    │   ├── InvalidImageError       the input cannot be an image [ValueError]
    │   ├── UploadError             writing the pixels failed; nothing was created
    │   ├── LocalPathError          a `local` datalayer path is not safe here
    │   ├── ImageNotFoundError      no such image or dataset [LookupError]
    │   └── PermissionDeniedError   visible, but this app may not change it
    └── RekuestError                remote functions (arkitekt.rekuest)
        ├── DefinitionError         a function cannot be registered [TypeError]
        ├── AgentRefusedError       the server refused this app's agent
        ├── RemoteError             the function raised on its agent
        ├── BadArgumentsError       the arguments were refused, nothing ran [ValueError]
        ├── MessageRefusedError     the server refused a message of the call (wire: `refused`)
        ├── NoAgentError            no agent provides the function
        ├── AgentLostError          the agent running it went away
        ├── AssignmentCancelledError  the assignment was cancelled
        ├── CallTimeoutError        the call's `timeout` passed [TimeoutError]
        └── ConnectionLostError     the connection broke while waiting [ConnectionError]

``arkitekt`` re-exports every class; ``arkitekt.mikro`` and ``arkitekt.rekuest`` re-export
their branch.

Two exceptions of the wire layer are outside the tree, on purpose: :mod:`arkitekt.protocol` is pure
code shared with the server, so its exceptions are plain :class:`ValueError` subclasses that never
reach an app as such. ``ArgumentsInvalid`` (a value that does not fit a port) surfaces as
:class:`BadArgumentsError` (the server refused the call's arguments), as :class:`DefinitionError`
(a default that does not fit, at registration) or as :class:`RekuestError` (a result that does not
fit its port). ``MessageError`` (a frame that cannot be encoded or decoded) surfaces as
:class:`BadArgumentsError` (a call that cannot be sent), :class:`MessageRefusedError` (the server
refused a message), :class:`AgentRefusedError` (a registration that cannot be sent),
:class:`ConnectionLostError` (the server sent an unreadable frame) or :class:`RekuestError` (a
result that cannot be sent).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AgentLostError",
    "AgentRefusedError",
    "AppClosedError",
    "ArkitektError",
    "AssignmentCancelledError",
    "BadArgumentsError",
    "BadResponseError",
    "BridgeError",
    "CallTimeoutError",
    "ConfigError",
    "ConnectionLostError",
    "DefinitionError",
    "DiscoveryError",
    "GrantError",
    "ImageNotFoundError",
    "InjectionError",
    "InsecureTransportError",
    "InvalidImageError",
    "LocalPathError",
    "MessageRefusedError",
    "MikroError",
    "NoActiveAppError",
    "NoAgentError",
    "PermissionDeniedError",
    "RekuestError",
    "RemoteError",
    "ResponseTooLargeError",
    "ScopeError",
    "ScopeLockedError",
    "ServerUnreachableError",
    "TeardownError",
    "UnknownProviderError",
    "UploadError",
]


class ArkitektError(Exception):
    """Base class of every error arkitekt raises on purpose."""


# -- the app and its scopes ------------------------------------------------------------------
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


class UnknownProviderError(ArkitektError):
    """A provider name is not in the app's container (``Provide("mikor")``, ``override``).

    Attributes:
        name: the name asked for.
        known: the container's provider names, sorted.

    """

    def __init__(self, name: str, known: Iterable[str], where: str = "the app's container") -> None:
        import difflib  # only on this error path: keeps `import arkitekt` light

        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(
            f"{where} has no such provider {name!r} (it has: {', '.join(self.known)}){hint}"
        )


class BridgeError(ArkitektError):
    """A sync call could not be bridged to the app's event loop."""


class TeardownError(ArkitektError, ExceptionGroup[Exception]):
    """One or more resources failed to close when a scope ended.

    Every resource is closed even when some fail; the failures are collected here
    (``.exceptions``), in the order the resources were closed.
    """

    def __new__(cls, message: str, exceptions: list[Exception]) -> TeardownError:  # noqa: D102
        return super().__new__(cls, message, exceptions)

    def derive(self, excs: list[Exception]) -> TeardownError:  # type: ignore[override]  # noqa: D102
        return TeardownError(self.message, excs)


# -- configuration and the connection ---------------------------------------------------------
class ConfigError(ArkitektError):
    """The configuration (arguments, environment or YAML file) is invalid."""


class InsecureTransportError(ConfigError):
    """A request would send credentials over plain http to another machine.

    Use https, or set ``allow_insecure=True`` (``ARKITEKT_ALLOW_INSECURE=1``) if the network is
    trusted.
    """


class InjectionError(ConfigError, TypeError):
    """:func:`~arkitekt.inject` cannot fill a parameter marked with :func:`~arkitekt.Provide`.

    Raised when the function is decorated (a marked parameter is positional-only, so no
    keyword can fill it). Also a :class:`TypeError`, as it was before it had a class.
    """


class DiscoveryError(ArkitektError):
    """No fakts server answered at the configured URL (it is down, or not a fakts server)."""


class GrantError(ArkitektError):
    """The app was not granted access: denied, expired, revoked, or the server said no."""


class ServerUnreachableError(ArkitektError, ConnectionError):
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


# -- mikro --------------------------------------------------------------------------------------
class MikroError(ArkitektError):
    """Base class of the image service's errors."""


class InvalidImageError(MikroError, ValueError):
    """The input cannot be stored as an image (raised before anything is uploaded)."""


class UploadError(MikroError):
    """Writing the pixels failed or the server refused the store; no image was created.

    The upload can simply be retried.
    """


class LocalPathError(MikroError):
    """A ``local`` datalayer path from the server is not safe to write or read here.

    The message names the path and why (not this machine, outside the server's advertised
    local root, not empty); nothing was written to it. Use ``datalayer="http"``.
    """


class ImageNotFoundError(MikroError, LookupError):
    """No such image (or dataset), or it is not visible to this app."""


class PermissionDeniedError(MikroError):
    """The image is visible to this app but it may not change it (only its owner may)."""


# -- rekuest ------------------------------------------------------------------------------------
class RekuestError(ArkitektError):
    """Base class of every rekuest error.

    Attributes:
        assignment_id: the assignment concerned, when there is one.

    """

    def __init__(self, message: str, assignment_id: str | None = None) -> None:
        super().__init__(message)
        self.assignment_id = assignment_id


class DefinitionError(RekuestError, TypeError):
    """A function cannot be registered (missing or unsupported annotations, bad defaults)."""


class AgentRefusedError(RekuestError):
    """The server refused the agent (invalid registration, or not authorised)."""


class RemoteError(RekuestError):
    """The function raised on the agent.

    Attributes:
        remote_traceback: the traceback text as the agent printed it.

    """

    def __init__(
        self, message: str, remote_traceback: str = "", assignment_id: str | None = None
    ) -> None:
        text = message if not remote_traceback else f"{message}\n\nRemote {remote_traceback}"
        super().__init__(text, assignment_id)
        self.remote_message = message
        self.remote_traceback = remote_traceback


class BadArgumentsError(RekuestError, ValueError):
    """The arguments were refused before anything ran.

    By the server (they do not match the function's definition), or by the caller before
    sending (a value that cannot travel, or an unbounded ``wait``/``timeout``).
    """


class MessageRefusedError(RekuestError):
    """A message of the call was refused as malformed (the wire's ``refused`` kind).

    By the server, or by this client reading the server's answer: a bug or a version mismatch
    of one side, not a problem of the arguments.
    """


class NoAgentError(RekuestError):
    """No agent that provides the function is online (or none came within ``wait`` seconds)."""


class AgentLostError(RekuestError):
    """The agent running the assignment disconnected and did not come back in time."""


class AssignmentCancelledError(RekuestError):
    """The assignment was cancelled (by ``cancel``, or by its caller going away).

    Raised inside a sync function's worker thread by ``progress``/``log`` once it is cancelled,
    so that cooperative code stops.
    """


class CallTimeoutError(RekuestError, TimeoutError):
    """The call did not finish within its ``timeout``; the assignment was cancelled."""


class ConnectionLostError(RekuestError, ConnectionError):
    """The connection to the server broke while the call was waiting for its result."""
