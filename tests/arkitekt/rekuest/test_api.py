from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from arkitekt import App, NoActiveAppError
from arkitekt.rekuest import (
    Registry,
    RekuestError,
    acall,
    aiterate,
    call,
    current_assignment,
    iterate,
    log,
    progress,
)

registry = Registry()


@registry.register
def a_inner(x: int) -> int:
    return x + 100


@registry.register
def a_outer(x: int) -> int:
    """Calls another function, from its worker thread, through the app that serves it."""
    return call("a_inner", x) * 2


@registry.register
async def a_aouter(x: int) -> int:
    return await acall("a_inner", x) + 1


@registry.register
def a_count(n: int) -> Iterator[int]:
    yield from range(n)


@registry.register
def a_who() -> str:
    context = current_assignment()
    assert context is not None
    return context.function


def test_calls_need_an_app_or_an_explicit_service() -> None:
    with pytest.raises(NoActiveAppError, match=r"call\(\)"):
        call("a_inner", 1)
    with pytest.raises(NoActiveAppError, match=r"iterate\(\)"):
        list(iterate("a_count", 1))


def test_iterators_fail_when_called_not_at_their_first_item() -> None:
    """``iterate``/``aiterate`` find their app by the one owner rule of ``@inject``, at once."""
    with pytest.raises(NoActiveAppError, match=r"iterate\(\)"):
        iterate("a_count", 1)
    with pytest.raises(NoActiveAppError, match=r"aiterate\(\)"):
        aiterate("a_count", 1)


def test_progress_and_log_outside_an_assignment_do_nothing() -> None:
    assert current_assignment() is None
    progress(50, "nothing happens")
    log("only to the local logger")
    with pytest.raises(RekuestError, match="unknown log level"):
        log("x", level="loud")


def test_functions_call_functions_and_explicit_services_work_anywhere(
    connect: Callable[..., App],
) -> None:
    agent_app, caller_app = connect(), connect()
    agent_app.rekuest.registry = registry
    with agent_app:
        agent_app.app_slot.scope.bridge.call(agent_app.rekuest.astart)
        with caller_app:
            assert call("a_outer", 1) == 202  # a sync function calls from its worker thread
            assert call("a_aouter", 1) == 102
            assert call("a_who") == "a_who"

            async def consume() -> list[Any]:  # another loop than the app's: hops the bridge
                return [item async for item in aiterate("a_count", 3)]

            assert anyio.run(consume) == [0, 1, 2]
        results: list[Any] = []

        def plain_thread() -> None:  # no app bound here: the explicit service finds its app
            results.append(call("a_inner", 1, rekuest=agent_app.rekuest))
            results.append(list(iterate("a_count", 2, rekuest=agent_app.rekuest)))

        thread = threading.Thread(target=plain_thread)
        thread.start()
        thread.join(timeout=20)
        assert results == [101, [0, 1]]


@pytest.mark.anyio
async def test_agent_selector_and_unregistered_objects(
    connect: Callable[..., App], serve: Any
) -> None:
    first, second = Registry(), Registry()

    @first.register(name="a_which")
    def which_first() -> str:
        return "first"

    @second.register(name="a_which")
    def which_second() -> str:
        return "second"

    def not_registered() -> None:
        pass

    one, two = connect(), connect()
    async with serve(one, first), serve(two, second), connect():
        assert await acall("a_which", agent=two.manifest.identifier) == "second"
        assert await acall("a_which", agent=one.manifest.identifier) == "first"
        assert await acall(which_second, agent=two.manifest.identifier) == "second"
        with pytest.raises(RekuestError, match="is not registered"):
            await acall(not_registered)


def test_iterate_fails_at_the_call_outside_any_app_not_at_the_first_item() -> None:
    from arkitekt import NoActiveAppError
    from arkitekt.rekuest import aiterate, iterate

    with pytest.raises(NoActiveAppError, match=r"iterate\(\)"):
        iterate("anything")
    with pytest.raises(NoActiveAppError, match=r"aiterate\(\)"):
        aiterate("anything")


@pytest.mark.anyio
async def test_iterate_on_the_apps_own_loop_points_to_aiterate(connect: Any) -> None:
    from arkitekt.errors import BridgeError
    from arkitekt.rekuest import iterate

    async with connect():
        with pytest.raises(BridgeError, match=r"async for item in aiterate"):
            iterate("anything")
