"""What a rekuest function is on the wire: its definition, its ports, and arguments checked.

Re-exported by :mod:`arkitekt.protocol.rekuest`. An agent registers a :class:`Definition` of
each function it serves (its argument and return ports, :class:`Port`); the server binds a call's
arguments to it (:func:`bind_arguments`) and checks results against its return port
(:func:`check_value`), so a mistyped value fails its own call with a message naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arkitekt.protocol.rekuest_frames import MAX_TEXT_CHARS, problem
from arkitekt.protocol.text import echo

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "ArgumentsInvalid",
    "Definition",
    "Port",
    "PortKind",
    "argument_problem",
    "bind_arguments",
    "check_value",
    "has_structure",
]

PortKind = Literal["int", "float", "str", "bool", "list", "dict", "enum", "structure"]

INT_MIN = -(2**63)
"""The smallest value a port of kind ``int`` takes (64-bit, as databases and most languages
store integers)."""
INT_MAX = 2**63 - 1
"""The largest value a port of kind ``int`` takes."""


class Port(BaseModel):
    """One argument or return value of a function.

    Attributes:
        key: the parameter name (``"return"`` / ``"yield"`` for results).
        kind: what travels: a JSON scalar, a list or dict of ``children[0]``, an enum member's
            name (one of ``choices``), or a structure's id (``identifier`` names the structure).
        nullable: ``None`` is allowed.
        required: no default exists (only for arguments).
        default: the JSON default when not required.
        children: the item (list) or value (dict) port.
        choices: the enum member names.
        identifier: the structure type, e.g. ``"@mikro/image"``.
        description: from the docstring.

    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    kind: PortKind
    nullable: bool = False
    required: bool = True
    default: Any = None
    children: list[Port] = Field(default_factory=list)
    choices: list[str] | None = Field(default=None, max_length=1000)
    identifier: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _check_structure(self) -> Port:
        """Refuse ports that cannot describe a value (so a bad definition fails at once)."""
        where = f"port {self.key!r}"
        if self.kind in ("list", "dict"):
            if len(self.children) != 1:
                raise ValueError(
                    f"{where}: a {self.kind} port needs exactly one child port (its item), "
                    f"got {len(self.children)}"
                )
        elif self.children:
            raise ValueError(f"{where}: a {self.kind} port has no child ports")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"{where}: an enum port needs its choices")
        if self.kind == "structure" and not self.identifier:
            raise ValueError(f"{where}: a structure port needs its identifier")
        return self


class Definition(BaseModel):
    """What a registered function is: name, description, argument and return ports.

    Attributes:
        name: the name callers use.
        description: the docstring's text without its sections.
        args: the argument ports, in signature order.
        returns: zero or one return port (the yielded item's port for streams).
        stream: a generator: callers ``iterate`` over its items.

    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    args: list[Port] = Field(default_factory=list, max_length=200)
    returns: list[Port] = Field(default_factory=list, max_length=1)
    stream: bool = False


class ArgumentsInvalid(ValueError):
    """Arguments do not match a definition (the message says which and why)."""


def has_structure(port: Port) -> bool:
    """Whether a structure travels somewhere inside ``port``."""
    return port.kind == "structure" or any(has_structure(child) for child in port.children)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {echo(value)}"


def check_value(port: Port, value: Any, where: str) -> Any:
    """Check one JSON value against ``port``; return it normalised (ints become floats).

    Raises:
        ArgumentsInvalid: naming ``where`` (e.g. ``"argument 'level'"``) and the problem.

    """
    if value is None:
        if port.nullable:
            return None
        raise ArgumentsInvalid(f"{where}: may not be null")
    kind = port.kind
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise ArgumentsInvalid(
                    f"{where}: expected a 64-bit integer (-2**63 to 2**63-1), got an integer "
                    f"of {value.bit_length()} bits"
                )
            return value
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond a float's range
                number = math.inf
            if not math.isfinite(number):
                shown = _describe(value) if isinstance(value, float) else "a larger integer"
                raise ArgumentsInvalid(f"{where}: expected a finite number, got {shown}")
            return number
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "enum":
        if isinstance(value, str) and value in (port.choices or []):
            return value
        raise ArgumentsInvalid(
            f"{where}: expected one of {', '.join(map(repr, port.choices or []))}, "
            f"got {_describe(value)}"
        )
    elif kind == "structure":
        if isinstance(value, str) and value:
            return value
        raise ArgumentsInvalid(
            f"{where}: expected a {port.identifier} (its id), got {_describe(value)}"
        )
    elif kind == "list":
        if isinstance(value, list):
            return [check_value(port.children[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif kind == "dict" and isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentsInvalid(f"{where}: keys must be strings, got {_describe(key)}")
            out[key] = check_value(port.children[0], item, f"{where}[{key!r}]")
        return out
    raise ArgumentsInvalid(f"{where}: expected {kind}, got {_describe(value)}")


def argument_problem(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """Which argument of a call cannot travel and why (see :func:`problem`), or ``None``.

    Used by callers before sending and by the server for every call it gets.
    """
    named = [(f"positional argument {n}", value) for n, value in enumerate(args)]
    named += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for where, value in named:
        if (why := problem(value)) is not None:
            return where, why
    return None


def bind_arguments(
    definition: Definition, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Bind positional and keyword arguments to ``definition``'s ports, checked and complete.

    Defaults fill missing optional arguments, so the agent receives every argument.

    Raises:
        ArgumentsInvalid: too many, unknown, missing or mistyped arguments.

    """
    ports = definition.args
    name = definition.name
    if len(args) > len(ports):
        raise ArgumentsInvalid(
            f"{name}() takes {len(ports)} argument(s) but {len(args)} were given positionally"
        )
    given: dict[str, Any] = {port.key: value for port, value in zip(ports, args, strict=False)}
    known = {port.key for port in ports}
    for key, value in kwargs.items():
        if key not in known:
            raise ArgumentsInvalid(
                f"{name}() got an unexpected argument {key!r} "
                f"(it takes: {', '.join(sorted(known)) or 'no arguments'})"
            )
        if key in given:
            raise ArgumentsInvalid(f"{name}() got multiple values for argument {key!r}")
        given[key] = value
    bound: dict[str, Any] = {}
    for port in ports:
        if port.key in given:
            bound[port.key] = check_value(port, given[port.key], f"argument {port.key!r}")
        elif port.required:
            raise ArgumentsInvalid(f"{name}() is missing the required argument {port.key!r}")
        else:
            bound[port.key] = port.default
    return bound
