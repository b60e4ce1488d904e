from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from arkitekt import Provide
from arkitekt.mikro import Image, Mikro
from arkitekt.protocol.rekuest import ArgumentsInvalid, Definition, bind_arguments
from arkitekt.rekuest import DefinitionError, Registry, register_structure
from arkitekt.rekuest._definition import parse_docstring


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


@dataclass
class Sample:
    id: str


async def _fetch_sample(id: str) -> Sample:
    return Sample(f"fetched-{id}")


register_structure(Sample, "@test/sample", aexpand=_fetch_sample)


def define(fn: Any) -> Definition:
    registry = Registry()
    registry.register(fn)
    entry = registry.get(fn.__name__)
    assert entry is not None
    return entry.definition


def test_scalars_defaults_and_docstring() -> None:
    def segment(
        count: int, level: float = 0.5, name: str = "x", keep: bool = True, note: str | None = None
    ) -> float:
        """Segment something.

        Longer text.

        Args:
            count: how many
                (continued).
            level (float): the level.

        Returns:
            The score.
        """
        return 0.0

    definition = define(segment)
    assert definition.name == "segment"
    assert definition.description == "Segment something.\n\nLonger text."
    ports = {port.key: port for port in definition.args}
    assert [port.kind for port in definition.args] == ["int", "float", "str", "bool", "str"]
    assert ports["count"].required
    assert ports["count"].description == "how many (continued)."
    assert ports["level"].default == 0.5
    assert not ports["level"].required
    assert ports["level"].description == "the level."
    assert ports["note"].nullable
    assert ports["note"].default is None
    assert definition.returns[0].kind == "float"
    assert definition.returns[0].description == "The score."
    assert not definition.stream


def test_containers_enums_optionals_and_structures() -> None:
    def many(
        values: list[int],
        table: dict[str, list[float]],
        color: Color = Color.GREEN,
        maybe: Optional[int] = None,  # noqa: UP045 - the old spelling works too
        image: Image | None = None,
        sample: Sample | None = None,
    ) -> list[Image]:
        return []

    definition = define(many)
    ports = {port.key: port for port in definition.args}
    assert ports["values"].kind == "list"
    assert ports["values"].children[0].kind == "int"
    table = ports["table"]
    assert table.kind == "dict"
    assert table.children[0].children[0].kind == "float"
    assert ports["color"].kind == "enum"
    assert ports["color"].choices == ["RED", "GREEN"]
    assert ports["color"].default == "GREEN"
    assert ports["maybe"].nullable
    assert ports["image"].kind == "structure"
    assert ports["image"].identifier == "@mikro/image"
    assert ports["sample"].identifier == "@test/sample"
    assert definition.returns[0].children[0].identifier == "@mikro/image"


def test_generators_register_as_streams() -> None:
    def frames(count: int) -> Iterator[int]:
        yield from range(count)

    async def aframes(count: int) -> AsyncIterator[str]:
        yield "x"

    for fn, kind in ((frames, "int"), (aframes, "str")):
        definition = define(fn)
        assert definition.stream
        assert definition.returns[0].kind == kind
        assert definition.returns[0].key == "yield"


def test_nothing_returned_and_injected_parameters_skipped() -> None:
    def side_effect(x: int, mikro: Mikro = Provide("mikro")) -> None:
        return None

    definition = define(side_effect)
    assert [port.key for port in definition.args] == ["x"]
    assert definition.returns == []


def _no_hint(x, y: int) -> int:  # type: ignore[no-untyped-def]
    return 0


def _tuple(x: tuple[int, int]) -> int:
    return 0


def _union(x: int | str) -> int:
    return 0


def _bare_list(x: list) -> int:  # type: ignore[type-arg]
    return 0


def _int_keys(x: dict[int, str]) -> int:
    return 0


def _star(*values: int) -> int:
    return 0


def _no_return(x: int):  # type: ignore[no-untyped-def]
    return x


def _bad_default(x: int = "nope") -> int:  # type: ignore[assignment]
    return 0


def _any(x: Any) -> int:
    return 0


def _not_iterator() -> int:
    yield 1  # type: ignore[misc]


class _Empty(enum.Enum):
    pass


def _empty_enum(x: _Empty) -> int:
    return 0


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_no_hint, "parameter 'x' has no type hint"),
        (_tuple, "unsupported annotation tuple"),
        (_union, "unions other than"),
        (_bare_list, "say what it holds"),
        (_int_keys, "use dict[str, X]"),
        (_star, "*args"),
        (_no_return, "return value has no annotation"),
        (_bad_default, "default: expected int"),
        (_any, "unsupported annotation Any"),
        (_not_iterator, "a generator yields"),
        (_empty_enum, "an enum without members"),
    ],
)
def test_unsupported_annotations_fail_at_registration(fn: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message.replace("*", r"\*").replace("[", r"\[")):
        Registry().register(fn)


def test_bind_arguments_checks_and_fills_defaults() -> None:
    def f(a: int, b: float = 1.0, c: list[Color] | None = None) -> int:
        return 0

    definition = define(f)
    assert bind_arguments(definition, [1], {"c": ["RED"]}) == {"a": 1, "b": 1.0, "c": ["RED"]}
    assert bind_arguments(definition, [], {"a": 2, "b": 3}) == {"a": 2, "b": 3.0, "c": None}
    bad = [
        (([], {}), "missing the required argument 'a'"),
        ((["x"], {}), "argument 'a': expected int, got str 'x'"),
        (([True], {}), "expected int, got bool"),
        (([1, 2, 3, 4], {}), "takes 3 argument"),
        (([1], {"d": 1}), "unexpected argument 'd'"),
        (([1], {"a": 1}), "multiple values"),
        (([1], {"c": ["BLUE"]}), r"argument 'c'\[0\]: expected one of 'RED', 'GREEN'"),
        (([1], {"b": None}), "may not be null"),
    ]
    for (args, kwargs), message in bad:
        with pytest.raises(ArgumentsInvalid, match=message):
            bind_arguments(definition, args, kwargs)


def test_docstring_sections() -> None:
    description, args, returns = parse_docstring(
        """Title.

        Args:
            a: first.
            b (int): second,
                on two lines.

        Yields:
            Frames.

        Example:
            >>> nothing
        """
    )
    assert description == "Title."
    assert args == {"a": "first.", "b": "second, on two lines."}
    assert returns == "Frames."


@pytest.mark.anyio
async def test_codecs_round_trip_enums_and_structures() -> None:
    def f(color: Color, samples: list[Sample]) -> dict[str, Color]:
        return {}

    registry = Registry()
    registry.register(f)
    entry = registry.get("f")
    assert entry is not None
    assert entry.result is not None
    assert await entry.codecs["color"].expand("RED") is Color.RED
    assert entry.codecs["samples"].shrink([Sample("a")]) == ["a"]
    assert await entry.codecs["samples"].expand(["a"]) == [Sample("fetched-a")]
    assert entry.result.shrink({"k": Color.GREEN}) == {"k": "GREEN"}
    with pytest.raises(ArgumentsInvalid, match="expected one of"):
        entry.result.shrink({"k": "PURPLE"})


def test_reconnect_backoff_is_exponential_capped_and_jittered() -> None:
    from arkitekt.rekuest._agent import backoff

    low = [backoff(n, 30.0, lambda: 0.0) for n in range(1, 12)]
    high = [backoff(n, 30.0, lambda: 1.0) for n in range(1, 12)]
    assert low[:4] == [0.1, 0.2, 0.4, 0.8]  # half of 0.2, 0.4, 0.8, 1.6
    assert high[:4] == [0.2, 0.4, 0.8, 1.6]
    assert high[-1] == 30.0  # capped
    assert low[-1] == 15.0
    assert all(b == 2 * a for a, b in zip(low, high, strict=True))
