"""rekuest: register functions, serve them as an agent, call others'.

Example:
    >>> from arkitekt.rekuest import register, progress
    >>> @register
    ... def add(a: int, b: int = 1) -> int:
    ...     '''Add two numbers.'''
    ...     progress(50)
    ...     return a + b
    >>> add(1)  # still a plain function locally
    2

Serve with ``app.rekuest.run()`` inside ``with app:``; call from another app with
``call("add", a=1)``.

"""

from arkitekt.protocol.rekuest import Definition, Port
from arkitekt.rekuest.api import (
    acall,
    acancel,
    aiterate,
    asubmit,
    call,
    cancel,
    iterate,
    submit,
)
from arkitekt.rekuest.caller import Event
from arkitekt.rekuest.context import current_assignment, log, progress
from arkitekt.rekuest.errors import (
    AgentLostError,
    AssignmentCancelledError,
    BadArgumentsError,
    CallTimeoutError,
    ConnectionLostError,
    DefinitionError,
    NoAgentError,
    RekuestError,
    RemoteError,
)
from arkitekt.rekuest.handle import Assignment
from arkitekt.rekuest.registry import Registry, default_registry, register
from arkitekt.rekuest.service import Rekuest
from arkitekt.rekuest.structures import register_structure

__all__ = [
    "AgentLostError",
    "Assignment",
    "AssignmentCancelledError",
    "BadArgumentsError",
    "CallTimeoutError",
    "ConnectionLostError",
    "Definition",
    "DefinitionError",
    "Event",
    "NoAgentError",
    "Port",
    "Registry",
    "Rekuest",
    "RekuestError",
    "RemoteError",
    "acall",
    "acancel",
    "aiterate",
    "asubmit",
    "call",
    "cancel",
    "current_assignment",
    "default_registry",
    "iterate",
    "log",
    "progress",
    "register",
    "register_structure",
    "submit",
]
