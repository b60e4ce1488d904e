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

from typing import TYPE_CHECKING, Any

from arkitekt.errors import (
    AgentLostError,
    AgentRefusedError,
    AssignmentCancelledError,
    BadArgumentsError,
    CallTimeoutError,
    ConnectionLostError,
    DefinitionError,
    MessageRefusedError,
    NoAgentError,
    RekuestError,
    RemoteError,
)
from arkitekt.protocol.rekuest import Definition, Port
from arkitekt.rekuest._api import (
    acall,
    acancel,
    aiterate,
    asubmit,
    call,
    cancel,
    iterate,
    submit,
)
from arkitekt.rekuest._caller import CallEvent
from arkitekt.rekuest._context import current_assignment, log, progress
from arkitekt.rekuest._handle import Assignment
from arkitekt.rekuest._registry import Registry, default_registry, register
from arkitekt.rekuest._service import Rekuest
from arkitekt.rekuest._structures import register_structure

__all__ = [
    "AgentLostError",
    "AgentRefusedError",
    "Assignment",
    "AssignmentCancelledError",
    "BadArgumentsError",
    "CallEvent",
    "CallTimeoutError",
    "ConnectionLostError",
    "Definition",
    "DefinitionError",
    "MessageRefusedError",
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


def _renamed(name: str) -> Any:
    if name == "Event":
        raise AttributeError(
            "module 'arkitekt.rekuest' has no attribute 'Event': it was renamed to CallEvent "
            "(from arkitekt.rekuest import CallEvent)",
            name=name,
        )
    raise AttributeError(f"module 'arkitekt.rekuest' has no attribute {name!r}", name=name)


if not TYPE_CHECKING:  # a typed __getattr__ would make every misspelt name pass mypy
    __getattr__ = _renamed


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
