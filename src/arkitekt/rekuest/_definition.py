"""Definitions from type hints and docstrings, and the codecs that carry values over the wire.

Supported annotations: ``int``, ``float``, ``str``, ``bool``, ``list[X]``, ``dict[str, X]``,
``Enum`` subclasses (travel as member names), ``X | None`` (nullable), and structures (types
registered with :func:`~arkitekt.rekuest.register_structure`, e.g. ``Image``; they
travel as ids). Generators (sync or async) register as streams of their item type.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from arkitekt._inject import _Marker
from arkitekt.errors import DefinitionError
from arkitekt.protocol.rekuest import ArgumentsInvalid, Definition, Port, check_value, explain
from arkitekt.rekuest._structures import Structure, structure_for_type

__all__ = ["Codec", "define", "parse_docstring"]

_SUPPORTED = (
    "int, float, str, bool, list[X], dict[str, X], Enum subclasses, X | None, and structures "
    "(e.g. Image; see register_structure)"
)
_STREAM_ORIGINS = {
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
}
_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")
_ARG_SECTIONS = {"args", "arguments", "parameters", "params"}
_RETURN_SECTIONS = {"returns", "return", "yields", "yield"}


class Codec:
    """Converts between a Python value and its JSON form for one port.

    Args:
        port: the port.
        enum_type: the Enum class of an enum port.
        structure: the structure of a structure port.
        child: the codec of the item (list) or value (dict) port.

    """

    __slots__ = ("child", "enum_type", "plain", "port", "structure")

    def __init__(
        self,
        port: Port,
        enum_type: type[enum.Enum] | None = None,
        structure: Structure | None = None,
        child: Codec | None = None,
    ) -> None:
        self.port = port
        self.enum_type = enum_type
        self.structure = structure
        self.child = child
        # Nothing to convert anywhere inside: values pass through as they are.
        self.plain: bool = (
            enum_type is None and structure is None and (child is None or child.plain)
        )

    def shrink(self, value: Any, where: str = "value") -> Any:
        """Python value -> checked JSON value.

        Raises:
            ArgumentsInvalid: the value does not fit the port.

        """
        if not self.plain:
            value = self._shrink(value)
        elif type(value).__module__ == "numpy" and hasattr(value, "item"):
            value = value.item()  # numpy scalars become plain numbers
        return check_value(self.port, value, where)

    def _shrink(self, value: Any) -> Any:
        if value is None:
            return None
        if self.enum_type is not None and isinstance(value, enum.Enum):
            return value.name
        if self.structure is not None and isinstance(value, self.structure.type):
            return self.structure.shrink(value)
        child = self.child
        if child is not None and not child.plain:
            if isinstance(value, list | tuple):
                return [child._shrink(item) for item in value]
            if isinstance(value, dict):
                return {key: child._shrink(item) for key, item in value.items()}
        if isinstance(value, tuple):
            return list(value)
        return value

    async def expand(self, value: Any) -> Any:
        """JSON value -> Python value (enum members, structures fetched back)."""
        if self.plain or value is None:
            return value
        if self.enum_type is not None:
            return self.enum_type[value]
        if self.structure is not None:
            return await self.structure.aexpand(value)
        assert self.child is not None
        if isinstance(value, list):
            return [await self.child.expand(item) for item in value]
        return {key: await self.child.expand(item) for key, item in value.items()}


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str], str | None]:
    """Split a Google-style docstring into (description, {argument: text}, returns text)."""
    if not doc:
        return None, {}, None
    lines = inspect.cleandoc(doc).splitlines()
    body: list[str] = []
    args: dict[str, str] = {}
    returns: list[str] = []
    section: str | None = None
    current: str | None = None
    indent: int | None = None
    for line in lines:
        depth = len(line) - len(line.lstrip())
        match = _SECTION.match(line)
        if match and depth == 0:
            section, current, indent = match.group(1).strip().lower(), None, None
            continue
        if section is None:
            body.append(line)
        elif section in _ARG_SECTIONS and line.strip():
            indent = depth if indent is None else indent
            entry = _ARG_ENTRY.match(line.strip())
            if depth <= indent and entry:
                current = entry.group(1)
                args[current] = entry.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
        elif section in _RETURN_SECTIONS and line.strip():
            returns.append(line.strip())
    description = "\n".join(body).strip() or None
    return description, args, " ".join(returns) or None


def _unsupported(where: str, annotation: Any, why: str = "") -> DefinitionError:
    shown = getattr(annotation, "__name__", None) or repr(annotation)
    return DefinitionError(f"{where}: unsupported annotation {shown}{why}; supported: {_SUPPORTED}")


def _codec(annotation: Any, key: str, where: str, description: str | None = None) -> Codec:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(annotation)
        rest = [member for member in members if member is not type(None)]
        if len(rest) != 1 or len(rest) == len(members):
            raise _unsupported(where, annotation, " (unions other than `X | None`)")
        nullable, annotation = True, rest[0]
        origin = typing.get_origin(annotation)
    common: dict[str, Any] = {"key": key, "nullable": nullable, "description": description}
    for simple in (bool, int, float, str):  # bool first: it is an int subclass
        if annotation is simple:
            return Codec(Port(kind=simple.__name__, **common))
    if annotation is list or origin is list:
        items = typing.get_args(annotation)
        if not items:
            raise _unsupported(where, annotation, " (say what it holds: list[int])")
        child = _codec(items[0], "item", f"{where} (item)")
        return Codec(Port(kind="list", children=[child.port], **common), child=child)
    if annotation is dict or origin is dict:
        pair = typing.get_args(annotation)
        if len(pair) != 2 or pair[0] is not str:
            raise _unsupported(where, annotation, " (use dict[str, X])")
        child = _codec(pair[1], "value", f"{where} (value)")
        return Codec(Port(kind="dict", children=[child.port], **common), child=child)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = list(annotation.__members__)
        if not choices:
            raise _unsupported(where, annotation, " (an enum without members)")
        return Codec(Port(kind="enum", choices=choices, **common), enum_type=annotation)
    structure = structure_for_type(annotation)
    if structure is not None:
        port = Port(kind="structure", identifier=structure.identifier, **common)
        return Codec(port, structure=structure)
    raise _unsupported(where, annotation)


def define(
    fn: Callable[..., Any], name: str | None = None, description: str | None = None
) -> tuple[Definition, dict[str, Codec], Codec | None]:
    """Build the definition of ``fn`` and the codecs of its arguments and result.

    Parameters whose default is ``Provide(...)`` are injected on the agent, not sent.

    Returns:
        (definition, {argument: codec}, result codec or ``None`` when it returns nothing).

    Raises:
        DefinitionError: a parameter or the return value has no or an unsupported annotation,
            or the definition exceeds a limit of the protocol (e.g. a name of 1 to 200
            characters); the message names it.

    """
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise DefinitionError(
            f"register(name=...): a name must be a non-empty string, got {name!r}"
        )
    label = name if name is not None else (getattr(fn, "__name__", None) or repr(fn))
    try:
        return _define(fn, label, description)
    except ValidationError as error:  # a limit of the protocol (name, description, ports)
        shown = label if len(label) <= 40 else label[:37] + "..."
        raise DefinitionError(f"{shown}: cannot be registered: {explain(error)}") from None


def _define(
    fn: Callable[..., Any], label: str, description: str | None
) -> tuple[Definition, dict[str, Codec], Codec | None]:
    try:
        hints = typing.get_type_hints(inspect.unwrap(fn))
    except Exception as error:
        raise DefinitionError(f"{label}: cannot resolve its type hints: {error}") from error
    doc_description, doc_args, doc_returns = parse_docstring(inspect.getdoc(fn))
    args: list[Port] = []
    codecs: dict[str, Codec] = {}
    for param in inspect.signature(fn).parameters.values():
        if isinstance(param.default, _Marker):
            continue
        where = f"{label}(): parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise DefinitionError(f"{where}: *args, **kwargs and positional-only are unsupported")
        if param.name not in hints:
            raise DefinitionError(f"{where} has no type hint; annotate it ({_SUPPORTED})")
        codec = _codec(hints[param.name], param.name, where, doc_args.get(param.name))
        if param.default is not param.empty:
            try:
                default = codec.shrink(param.default, f"{where}: default")
            except ArgumentsInvalid as error:
                raise DefinitionError(str(error)) from None
            codec.port = codec.port.model_copy(update={"required": False, "default": default})
        args.append(codec.port)
        codecs[param.name] = codec
    stream = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
    where = f"{label}(): return value"
    if "return" not in hints:
        raise DefinitionError(f"{where} has no annotation; add one (`-> None` for nothing)")
    result = hints["return"]
    if stream:
        if typing.get_origin(result) not in _STREAM_ORIGINS or not typing.get_args(result):
            raise _unsupported(where, result, " (a generator yields: Iterator[X])")
        result = typing.get_args(result)[0]
    returns: list[Port] = []
    result_codec = None
    if result is not None and result is not type(None):
        result_codec = _codec(result, "yield" if stream else "return", where, doc_returns)
        returns.append(result_codec.port)
    definition = Definition(
        name=label,
        description=description if description is not None else doc_description,
        args=args,
        returns=returns,
        stream=stream,
    )
    return definition, codecs, result_codec
