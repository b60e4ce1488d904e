from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import pytest

from arkitekt import App
from arkitekt.errors import AppClosedError, ConfigError, ScopeError, TeardownError
from arkitekt.extension import ArkitektContainer, ScopedResource, ScopeKind, current_scope


def test_resources_open_lazily_and_close_in_reverse_order(make_app: Callable[..., App]) -> None:
    app = make_app()
    journal = app.container.journal()
    with app:
        assert journal.events == []  # entering opens nothing
        bridge = current_scope().bridge
        assert bridge.call(app.container.second) == "second"  # opens `first` as its dependency
        assert bridge.call(app.container.second) == "second"  # cached: opened once
    assert journal.events == ["open first", "open second", "close second", "close first"]


def test_teardown_sees_the_body_exception(make_app: Callable[..., App]) -> None:
    app = make_app()
    journal = app.container.journal()
    with pytest.raises(KeyError, match="body"), app:
        current_scope().bridge.call(app.container.second)
        raise KeyError("body")
    assert journal.events == [
        "open first",
        "open second",
        "second saw KeyError",
        "close second",
        "first saw KeyError",
        "close first",
    ]


def test_one_failing_teardown_does_not_stop_the_others(make_app: Callable[..., App]) -> None:
    app = make_app()
    journal = app.container.journal()
    journal.fail_close = {"first", "second"}
    with pytest.raises(TeardownError) as caught, app:
        current_scope().bridge.call(app.container.second)
    assert journal.events[-2:] == ["close second", "close first"]
    messages = [str(error) for error in caught.value.exceptions]
    assert messages == ["second failed to close", "first failed to close"]
    assert "2 resource(s)" in str(caught.value)


def test_failing_teardown_keeps_the_body_exception_as_context(make_app: Callable[..., App]) -> None:
    app = make_app()
    app.container.journal().fail_close = {"first"}
    with pytest.raises(TeardownError) as caught, app:
        current_scope().bridge.call(app.container.first)
        raise KeyError("body")
    assert isinstance(caught.value.__context__, KeyError)


@pytest.mark.anyio
async def test_concurrent_first_uses_open_once(make_app: Callable[..., App]) -> None:
    app = make_app()
    journal = app.container.journal()
    results: list[str] = []
    async with app:

        async def use() -> None:
            results.append(await app.container.second())

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(use)
    assert results == ["second"] * 10
    assert journal.events.count("open second") == 1
    assert journal.events.count("open first") == 1


@pytest.mark.anyio
async def test_task_scope_resources_close_with_the_task(make_app: Callable[..., App]) -> None:
    app = make_app()
    journal = app.container.journal()
    async with app:
        with pytest.raises(ScopeError, match="outside any TASK scope"):
            await app.container.per_task()
        async with current_scope().task() as task_scope:
            assert current_scope() is task_scope
            assert await app.container.per_task() == "task"
            assert await app.container.first() == "first"  # APP resources go to the app scope
        assert journal.events == ["open task", "open first", "close task"]
        async with current_scope().task():
            assert await app.container.per_task() == "task"  # a new task opens a new one
    assert journal.events.count("open task") == 2
    assert journal.events[-1] == "close first"


def test_explicit_service_from_a_plain_thread_uses_its_app(make_app: Callable[..., App]) -> None:
    app = make_app()
    got: list[object] = []

    def worker() -> None:
        # No ContextVar here: the resource finds the app through the container's app_slot.
        scope = app.app_slot.scope
        got.append(scope.bridge.call(app.container.first))

    with app:
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert got == ["first"]
    with pytest.raises(AppClosedError, match="not open"):
        app.app_slot.scope  # noqa: B018


@pytest.mark.anyio
async def test_resources_cannot_open_after_the_scope_closed(make_app: Callable[..., App]) -> None:
    app = make_app()
    async with app:
        scope = current_scope()
    with pytest.raises(AppClosedError, match="already closed"):
        await scope.resource("late", "late", app.container.first)


@pytest.mark.parametrize("kind", ["TASK", 2, None])
def test_the_kind_must_be_a_scope_kind(kind: object) -> None:
    with pytest.raises(ConfigError, match=r"must be one of ScopeKind\.APP, ScopeKind\.TASK"):
        ScopedResource(dict, app_slot=ArkitektContainer.app_slot, kind=kind)  # type: ignore[arg-type]
    assert ScopedResource(dict, app_slot=ArkitektContainer.app_slot, kind=ScopeKind.TASK).kind == 2
