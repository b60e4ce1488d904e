from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from arkitekt import App, NoActiveAppError, easy
from arkitekt.errors import ArkitektError, ConfigError, ScopeError, ScopeLockedError
from arkitekt.extension import current_scope, get_scope
from arkitekt.fakts import StaticConfigGrant


def _arkitekt_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("arkitekt:")}


def test_easy_builds_nothing_and_contacts_nothing() -> None:
    before = _arkitekt_threads()
    app = easy("my-app", version="1.2.3", url="http://127.0.0.1:9")
    assert _arkitekt_threads() == before
    assert not app.is_open
    assert app.manifest.identifier == "my-app"
    assert app.manifest.version == "1.2.3"
    assert app.settings.url == "http://127.0.0.1:9"
    assert app.fakts.manifest is app.manifest


def test_sync_scope_binds_and_unbinds(make_app: Callable[..., App]) -> None:
    app = make_app()
    name = f"arkitekt:{app.manifest.identifier}"

    def loop_threads() -> list[threading.Thread]:
        # Only this app's loop thread: other tests' worker threads may come and go meanwhile.
        return [thread for thread in threading.enumerate() if thread.name == name]

    assert get_scope() is None
    assert loop_threads() == []
    with app as entered:
        assert entered is app
        assert app.is_open
        scope = current_scope()
        assert scope.container is app.container
        assert len(loop_threads()) == 1
    assert not app.is_open
    assert get_scope() is None
    with pytest.raises(NoActiveAppError, match="with app:"):
        current_scope()
    assert loop_threads() == []  # joined on exit


@pytest.mark.anyio
async def test_async_scope_runs_on_callers_loop_without_thread(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    before = _arkitekt_threads()
    async with app:
        assert _arkitekt_threads() == before  # no loop thread of its own
        assert current_scope().bridge.loop is asyncio.get_running_loop()
    assert get_scope() is None


def test_nested_apps_restore_the_outer_one(make_app: Callable[..., App]) -> None:
    outer, inner = make_app("outer"), make_app("inner")
    with outer:
        assert current_scope().name == "outer"
        with inner:
            assert current_scope().name == "inner"
            assert outer.is_open
            assert inner.is_open
        assert current_scope().name == "outer"
        assert not inner.is_open
    assert get_scope() is None


def test_apps_in_parallel_threads_see_their_own(make_app: Callable[..., App]) -> None:
    apps = [make_app(f"app-{i}") for i in range(4)]
    barrier = threading.Barrier(len(apps))
    seen: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(app: App) -> None:
        try:
            with app:
                barrier.wait(timeout=10)  # all four are open at once
                seen[app.app_slot.name] = current_scope().name
                barrier.wait(timeout=10)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors
    assert seen == {f"app-{i}": f"app-{i}" for i in range(4)}


@pytest.mark.anyio
async def test_apps_in_parallel_tasks_see_their_own(make_app: Callable[..., App]) -> None:
    apps = [make_app(f"task-app-{i}") for i in range(5)]
    seen: dict[str, str] = {}
    ready = anyio.Event()
    opened = 0

    async def run(app: App) -> None:
        nonlocal opened
        async with app:
            opened += 1
            if opened == len(apps):
                ready.set()
            await ready.wait()  # all five are open at once
            await anyio.lowlevel.checkpoint()
            seen[app.app_slot.name] = current_scope().name

    async with anyio.create_task_group() as tg:
        for app in apps:
            tg.start_soon(run, app)
    assert seen == {app.app_slot.name: app.app_slot.name for app in apps}


def test_entering_an_open_app_again_fails(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app:
        with pytest.raises(ScopeError, match="already open"), app:
            pass
        assert current_scope().name == app.app_slot.name
    with app:  # re-entering after exit works
        assert app.is_open


def test_configuration_is_locked_inside_the_scope(make_app: Callable[..., App]) -> None:
    app = make_app()
    before, after = StaticConfigGrant({}), StaticConfigGrant({})
    app.fakts.grant = before  # allowed before entering
    app.note = "free before entering"  # type: ignore[attr-defined]
    with app:
        with pytest.raises(ScopeLockedError, match="before `with app:`"):
            app.fakts.grant = StaticConfigGrant({})
        with pytest.raises(ScopeLockedError):
            app.note = "inside"  # type: ignore[attr-defined]
    assert app.fakts.grant is before
    app.fakts.grant = after
    assert app.fakts.grant is after


def test_run_in_thread_sees_the_app_but_a_plain_thread_does_not(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    plain: list[object] = []
    with app:
        assert (
            app.run_in_thread(lambda: current_scope().name).result(timeout=5) == app.app_slot.name
        )
        thread = threading.Thread(target=lambda: plain.append(get_scope()))
        thread.start()
        thread.join()
    assert plain == [None]
    with pytest.raises(ArkitektError, match="not open"):
        app.run_in_thread(lambda: None)


def test_errors_in_run_in_thread_reach_the_future(make_app: Callable[..., App]) -> None:
    app = make_app()

    def boom() -> None:
        raise ValueError("in the worker")

    with app, pytest.raises(ValueError, match="in the worker"):
        app.run_in_thread(boom).result(timeout=5)


@pytest.mark.anyio
async def test_tasks_and_worker_threads_the_app_starts_see_it(make_app: Callable[..., App]) -> None:
    app = make_app()
    seen: list[str] = []
    async with app:
        scope = current_scope()
        done = anyio.Event()

        async def background() -> None:
            seen.append(current_scope().name)
            done.set()

        scope.task_group.start_soon(background)
        await done.wait()
        seen.append(await anyio.to_thread.run_sync(lambda: current_scope().name))
    assert seen == [app.app_slot.name, app.app_slot.name]


def test_background_task_of_a_sync_app_sees_it(make_app: Callable[..., App]) -> None:
    app = make_app()
    seen: list[str] = []
    with app:
        scope = current_scope()
        done = threading.Event()

        async def background() -> None:
            seen.append(current_scope().name)
            done.set()

        scope.bridge.loop.call_soon_threadsafe(scope.task_group.start_soon, background)
        assert done.wait(5)
    assert seen == [app.app_slot.name]


def test_background_tasks_are_cancelled_before_resources_close(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    journal = app.container.journal()
    with app:
        scope = current_scope()
        scope.bridge.call(app.container.first)

        async def forever() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                journal.events.append("background stopped")

        scope.bridge.loop.call_soon_threadsafe(scope.task_group.start_soon, forever)
        scope.bridge.call(anyio.sleep, 0.01)
    assert journal.events == ["open first", "background stopped", "close first"]


def test_sync_scope_inside_a_running_loop_like_jupyter(make_app: Callable[..., App]) -> None:
    app = make_app()

    async def notebook_cell() -> str:
        # A Jupyter cell runs on the kernel's loop; `with app:` must not touch that loop.
        with app:
            name = current_scope().name
            assert current_scope().bridge.loop is not asyncio.get_running_loop()
            value = current_scope().bridge.call(app.container.first)
        return f"{name}:{value}"

    assert asyncio.run(notebook_cell()) == "test-app:first"


def test_override_replaces_providers_for_that_app_only(make_app: Callable[..., App]) -> None:
    app, other = make_app("a"), make_app("b")
    real = app.mikro
    fake = object()
    with app.override(mikro=fake):
        assert app.mikro is fake
        assert other.mikro is not fake
        with app:
            assert current_scope().container.mikro() is fake
    assert app.mikro is real
    with pytest.raises(ArkitektError, match="no such provider"), app.override(nope=1):
        pass


def test_each_app_owns_its_container(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    assert a.container is not b.container
    assert a.mikro is not b.mikro
    assert a.mikro is a.mikro
    assert a.mikro.app_slot is a.app_slot


def test_leaving_in_another_thread_closes_the_app_and_says_so(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    entered = contextvars.copy_context()  # keep this test's binding out of the main context
    entered.run(app.__enter__)
    errors: list[BaseException] = []

    def leave() -> None:
        try:
            app.__exit__(None, None, None)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=leave)
    worker.start()
    worker.join(10)
    assert isinstance(errors[0], ScopeError)
    assert "another thread or task" in str(errors[0])
    assert not app.is_open  # not stranded
    with app:  # and usable again
        assert app.is_open


def test_override_is_refused_while_open(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app, pytest.raises(ScopeLockedError, match="override before"), app.override(mikro=1):
        pass


def test_bad_manifest_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="identifier"):
        easy("", url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="version"):
        easy("x", version="", url="http://127.0.0.1:9")
