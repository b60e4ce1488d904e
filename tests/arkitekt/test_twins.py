"""The blocking twins name themselves in argument errors, never their coroutine function."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from arkitekt import App
from arkitekt.extension import Service, loopsafe, syncify
from arkitekt.mikro import from_xarray, get_image


async def ascale(value: int, *, factor: int = 2, service: Service | None = None) -> int:
    """A twin whose body raises its own TypeError for a string factor."""
    if isinstance(factor, str):
        raise TypeError("factor must be a number, not a string")
    return value * factor


scale = syncify(loopsafe(ascale))


def test_a_missing_argument_names_the_twin(make_app: Callable[..., App]) -> None:
    with make_app(), pytest.raises(TypeError) as caught:
        from_xarray()  # type: ignore[call-arg]
    message = str(caught.value)
    assert message.startswith("from_xarray() missing a required argument"), message
    assert "afrom_xarray" not in message


def test_an_unknown_keyword_names_the_twin(make_app: Callable[..., App]) -> None:
    with make_app(), pytest.raises(TypeError, match=r"^get_image\(\) got an unexpected keyword"):
        get_image("some-id", colour="red")  # type: ignore[call-arg]


def test_too_many_positional_arguments_name_the_twin(make_app: Callable[..., App]) -> None:
    with make_app(), pytest.raises(TypeError, match=r"^scale\(\) too many positional arguments"):
        scale(1, 2)  # type: ignore[call-arg]


def test_a_type_error_from_inside_the_call_passes_unchanged(
    make_app: Callable[..., App],
) -> None:
    with make_app():
        assert scale(3, factor=4) == 12
        with pytest.raises(TypeError, match=r"^factor must be a number, not a string$"):
            scale(3, factor="4")  # type: ignore[arg-type]
