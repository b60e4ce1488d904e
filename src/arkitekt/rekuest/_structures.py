"""Structures: Python types that travel as an id and are fetched back on arrival.

A structure (``Image`` of mikro, say) is shrunk to its id when sent and expanded from the id
where it arrives, inside the receiving app (so expanding may call that app's services).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Sample:
    ...     id: str
    >>> async def aget_sample(id: str) -> Sample:
    ...     return Sample(id)
    >>> _ = register_structure(Sample, "@lab/sample", aexpand=aget_sample)
    >>> structure_for_type(Sample).identifier
    '@lab/sample'

"""

from __future__ import annotations

import enum
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arkitekt.errors import DefinitionError

__all__ = [
    "Structure",
    "register_structure",
    "shrink_any",
    "structure_for_identifier",
    "structure_for_type",
]


def _shrink_by_id(value: Any) -> str:
    return str(value.id)


@dataclass(frozen=True)
class Structure:
    """How one type travels.

    Attributes:
        type: the Python type.
        identifier: its name on the wire, e.g. ``"@mikro/image"``.
        shrink: value -> id.
        aexpand: id -> value (awaited in the receiving app's scope).

    """

    type: type
    identifier: str
    shrink: Callable[[Any], str]
    aexpand: Callable[[str], Awaitable[Any]]


_by_type: dict[type, Structure] = {}
_by_identifier: dict[str, Structure] = {}
_lock = threading.Lock()
_builtins_loaded = False


def register_structure(
    cls: type,
    identifier: str,
    *,
    aexpand: Callable[[str], Awaitable[Any]],
    shrink: Callable[[Any], str] = _shrink_by_id,
) -> Structure:
    """Make ``cls`` a structure: it travels as ``shrink(value)`` and arrives as ``aexpand(id)``.

    Args:
        cls: the type (subclasses are found too).
        identifier: its wire name; unique (arkitekt's own, such as ``"@mikro/image"``, are
            taken).
        aexpand: fetches a value back from its id (runs on the app's loop, in its scope).
        shrink: the value's id; default: ``value.id``.

    Returns:
        The registered structure.

    Raises:
        DefinitionError: the identifier already belongs to another type.

    """
    _load_builtins()  # first: a user type must not take the identifier of a builtin one
    return _register(Structure(cls, identifier, shrink, aexpand))


def _register(structure: Structure) -> Structure:
    with _lock:
        other = _by_identifier.get(structure.identifier)
        if other is not None and other.type is not structure.type:
            raise DefinitionError(
                f"structure identifier {structure.identifier!r} already belongs to "
                f"{other.type.__qualname__}"
            )
        _by_type[structure.type] = structure
        _by_identifier[structure.identifier] = structure
    return structure


def _load_builtins() -> None:
    """Register the structures of arkitekt's own services (``Image``), once, if present."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    try:
        from arkitekt.mikro import Image, aget_image
    except ImportError:  # pragma: no cover - mikro is part of arkitekt
        _builtins_loaded = True
        return

    async def aexpand_image(id: str) -> Any:
        return await aget_image(id)

    with _lock:
        known = Image in _by_type
    if not known:
        _register(Structure(Image, "@mikro/image", _shrink_by_id, aexpand_image))
    _builtins_loaded = True  # only now: a failed registration is tried again, not skipped


def structure_for_type(cls: Any) -> Structure | None:
    """The structure ``cls`` (or a base class of it) is registered as, or ``None``."""
    _load_builtins()
    if not isinstance(cls, type):
        return None
    for base in cls.__mro__:
        found = _by_type.get(base)
        if found is not None:
            return found
    return None


def structure_for_identifier(identifier: str) -> Structure | None:
    """The structure registered under ``identifier``, or ``None``."""
    _load_builtins()
    return _by_identifier.get(identifier)


def shrink_any(value: Any) -> Any:
    """Turn a value into JSON without knowing its port: structures to ids, enums to names."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [shrink_any(item) for item in value]
    if isinstance(value, dict):
        return {str(key): shrink_any(item) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        return value.name
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return shrink_any(value.item())  # numpy scalars (and 0-d arrays) become plain numbers
    structure = structure_for_type(type(value))
    if structure is not None:
        return structure.shrink(value)
    raise TypeError(
        f"cannot send a {type(value).__qualname__}: rekuest sends JSON values, enums and "
        "registered structures (see arkitekt.rekuest.register_structure)"
    )
