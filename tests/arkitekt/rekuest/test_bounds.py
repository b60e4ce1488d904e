"""Callers refuse what the server would refuse, before sending anything, with an arkitekt error
naming the argument: ``wait``/``timeout``, arguments, function names."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arkitekt import App, easy
from arkitekt.errors import ArkitektError
from arkitekt.protocol.rekuest import MAX_SECONDS
from arkitekt.rekuest import (
    BadArgumentsError,
    DefinitionError,
    NoAgentError,
    Registry,
    acall,
    call,
)
from arkitekt.rekuest._service import Rekuest
from arkitekt_server import EmbeddedServer


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("wait", "timeout"),
    [(math.inf, None), (-1.0, None), (86401.0, None), (0.0, 0.0), (0.0, -1.0), (0.0, math.nan)],
)
async def test_unbounded_wait_or_timeout_fails_at_once(
    connect: Callable[..., App],
    wait: float,
    timeout: float | None,  # noqa: ASYNC109
) -> None:
    async with connect() as app:
        with pytest.raises(BadArgumentsError, match="must be a finite number of seconds"):
            await acall("bounds_nowhere", wait=wait, timeout=timeout, rekuest=app.rekuest)


_seconds = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
)


@settings(max_examples=60, deadline=None, database=None)
@given(option=st.sampled_from(["wait", "timeout"]), value=_seconds)
def test_every_refused_wait_or_timeout_is_an_arkitekt_error_naming_it(
    option: str, value: Any
) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fine = number and math.isfinite(value) and 0 <= value <= MAX_SECONDS
    assume(not fine or (option == "timeout" and value == 0))
    assume(not (option == "timeout" and value is None))  # no timeout: allowed
    rekuest = Rekuest.__new__(Rekuest)  # the checks run before the service is used
    with pytest.raises(ArkitektError, match=f"{option} must be a finite number"):
        anyio.run(lambda: rekuest.acall("f", (), {}, **{option: value}))


@pytest.fixture(scope="module")
def bounds_app(server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = easy(
        "bounds-props", url=server.url, headless=True, cache_dir=tmp_path_factory.mktemp("c")
    )
    with app:
        yield app


_anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.builds(object)
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, database=None)
@given(value=_anything)
def test_every_refused_argument_is_an_arkitekt_error_naming_it(bounds_app: App, value: Any) -> None:
    try:
        call("bounds_nowhere", x=value, rekuest=bounds_app.rekuest)
    except BadArgumentsError as error:
        refusal = str(error)
    except NoAgentError:
        return  # accepted and sent: the server answered (no such function)
    else:
        pytest.fail("a call of a function nobody provides returned")
    assert "argument 'x'" in refusal


@settings(max_examples=60, deadline=None, database=None)
@given(name=st.text(max_size=300))
def test_every_refused_function_name_is_a_definition_error(name: str) -> None:
    def f() -> None:
        pass

    try:
        Registry().register(name=name)(f)
    except DefinitionError as error:
        refusal = str(error)
    else:
        assert 0 < len(name) <= 200
        return
    assert "name" in refusal
