from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar

import pytest

from arkitekt import App, NoActiveAppError
from arkitekt.errors import AppClosedError, BridgeError
from arkitekt.extension import Service, current_scope, loopsafe, syncify

marker: ContextVar[str] = ContextVar("marker", default="unset")


async def awhere(*, service: Service | None = None) -> tuple[str, int, str]:
    """Report which app, thread and context this ran in."""
    return (
        current_scope().name if service is None else service.app_slot.name,
        threading.get_ident(),
        marker.get(),
    )


where = syncify(awhere)
awhere_safe = loopsafe(awhere)


async def afail() -> None:
    raise ValueError("from the loop")


def test_sync_twin_runs_on_the_app_loop_with_the_callers_context(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    assert where.__name__ == "where"
    assert "Blocking twin" in (where.__doc__ or "")
    with app:
        marker.set("caller")
        name, thread, seen = where()
    assert name == app.app_slot.name
    assert thread != threading.get_ident()
    assert seen == "caller"


def test_sync_twin_raises_the_original_exception(make_app: Callable[..., App]) -> None:
    with make_app(), pytest.raises(ValueError, match="from the loop"):
        syncify(afail)()


def test_sync_twin_outside_any_app_fails_at_once() -> None:
    with pytest.raises(
        NoActiveAppError, match=r"where\(\) needs an active arkitekt app.*with app:"
    ):
        where()


@pytest.mark.anyio
async def test_sync_twin_on_the_apps_own_loop_refuses_to_deadlock(
    make_app: Callable[..., App],
) -> None:
    async with make_app():
        with pytest.raises(BridgeError, match=r"async twin: `await awhere"):
            where()


def test_explicit_service_beats_the_active_app_and_works_from_a_plain_thread(
    make_app: Callable[..., App],
) -> None:
    first, second = make_app("first"), make_app("second")
    results: list[tuple[str, int, str]] = []
    with first, second:
        assert where()[0] == "second"
        assert where(service=first.mikro)[0] == "first"
        thread = threading.Thread(target=lambda: results.append(where(service=first.mikro)))
        thread.start()
        thread.join()
    assert results[0][0] == "first"
    with pytest.raises(AppClosedError, match="'first' is not open"):
        where(service=first.mikro)


def test_async_twin_hops_to_the_app_loop_from_another_loop(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app:
        app_loop = current_scope().bridge.loop

        async def notebook() -> tuple[str, int, str]:
            assert asyncio.get_running_loop() is not app_loop
            return await awhere_safe()

        name, thread, _ = asyncio.run(notebook())
    assert name == app.app_slot.name
    assert thread != threading.get_ident()


@pytest.mark.anyio
async def test_async_twin_on_the_app_loop_is_a_plain_await(make_app: Callable[..., App]) -> None:
    async with make_app() as app:
        name, thread, _ = await awhere_safe()
    assert (name, thread) == (app.app_slot.name, threading.get_ident())


def test_cancelling_the_awaiting_task_cancels_the_call_on_the_app_loop(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    started, cancelled = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with app:
        bridge = current_scope().bridge

        async def caller() -> None:
            task = asyncio.ensure_future(bridge.acall(slow))
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(caller())
        assert cancelled.wait(5)


def test_calling_after_the_loop_stopped_fails_clearly(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app:
        bridge = current_scope().bridge
    with pytest.raises(BridgeError, match="stopped"):
        bridge.call(awhere)


def test_hopping_after_the_loop_stopped_fails_clearly(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app:
        bridge = current_scope().bridge
    with pytest.raises(BridgeError, match="stopped"):
        asyncio.run(bridge.acall(awhere))


def test_hopping_to_a_loop_that_stops_mid_call_fails_instead_of_hanging(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    with app:
        bridge = current_scope().bridge

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stranded = type(bridge)(loop, thread.ident or 0)

    async def caller() -> None:
        task = asyncio.ensure_future(stranded.acall(forever))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.wait_for(task, 5)

    with pytest.raises(BridgeError, match="stopped before the call finished"):
        asyncio.run(caller())
    thread.join(5)
    leftover = asyncio.all_tasks(loop)  # the call was cancelled; let it finish, then close
    loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
    assert all(task.cancelled() for task in leftover)
    loop.close()


def test_a_hop_cancelled_before_it_started_never_runs(make_app: Callable[..., App]) -> None:
    import time

    app = make_app()
    ran = threading.Event()

    async def body() -> None:
        ran.set()

    async def block_the_loop() -> None:
        time.sleep(0.6)  # noqa: ASYNC251  (on purpose: the app's loop is busy)

    with app:
        bridge = current_scope().bridge
        blocker = app.run_in_thread(bridge.call, block_the_loop)
        time.sleep(0.1)

        async def caller() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bridge.acall(body), 0.1)

        asyncio.run(caller())
        blocker.result(5)
        time.sleep(0.2)
    assert not ran.is_set()
