"""The one rule for which app owns a call: an explicit service beats the active scope (unless
the active scope is that service's app), else the active scope, else NoActiveAppError. The
twins, ``@inject``, scoped resources and rekuest's ``iterate`` all follow it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from arkitekt import App, NoActiveAppError, Provide, Settings, inject
from arkitekt.errors import AppClosedError
from arkitekt.extension import Service, current_scope, loopsafe, owner_scope, syncify
from arkitekt.mikro import Mikro


async def aloop(*, service: Service | None = None) -> asyncio.AbstractEventLoop:
    """The loop this ran on."""
    return asyncio.get_running_loop()


loop_of = syncify(aloop)


async def aloop_positional(service: Service | None = None) -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


positional_loop_of = syncify(aloop_positional)
aloop_safe = loopsafe(aloop)


async def awhere(service: Service | None = None) -> tuple[str, Settings]:
    """The active scope's app, and the settings an injected call nested here resolves."""
    return current_scope().name, settings_here()


where = syncify(awhere)
awhere_safe = loopsafe(awhere)


@inject
def settings_here(settings: Settings = Provide("settings")) -> Settings:
    return settings


@inject
def settings_of(mikro: Mikro, settings: Settings = Provide("settings")) -> Settings:
    return settings


@inject
async def per_task_of(mikro: Mikro, per_task: Any = Provide("per_task")) -> Any:
    return per_task


def test_owner_scope_without_service_or_app_fails_naming_the_call() -> None:
    with pytest.raises(NoActiveAppError, match=r"thing\(\) needs an active arkitekt app"):
        owner_scope([1, "x"], "thing()")


def test_owner_scope_with_the_service_of_a_closed_app_fails(make_app: Callable[..., App]) -> None:
    closed, active = make_app("closed"), make_app("active")
    with active, pytest.raises(AppClosedError, match="'closed' is not open"):
        owner_scope([closed.mikro], "thing()")


def test_owner_scope_prefers_the_explicit_service(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert owner_scope([], "thing()").name == "a"
        assert owner_scope([1, b.mikro], "thing()") is b.app_slot.scope
        assert owner_scope([a.mikro], "thing()") is current_scope()


def test_sync_twin_uses_the_explicit_services_app(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert loop_of() is a.app_slot.scope.bridge.loop
        assert loop_of(service=b.mikro) is b.app_slot.scope.bridge.loop


def test_sync_twin_finds_a_positional_service(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert positional_loop_of(b.mikro) is b.app_slot.scope.bridge.loop
        assert positional_loop_of() is a.app_slot.scope.bridge.loop


def test_twins_run_the_call_in_the_explicit_services_scope(
    make_app: Callable[..., App],
) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert where() == ("a", a.settings)
        assert where(b.mikro) == ("b", b.settings)  # nested injection resolves against b
        assert where(service=b.mikro) == ("b", b.settings)
        assert where(a.mikro) == ("a", a.settings)
        assert current_scope().name == "a"

        async def cell() -> list[tuple[str, Settings]]:  # a notebook's loop: the calls hop
            return [await awhere_safe(), await awhere_safe(b.mikro)]

        assert asyncio.run(cell()) == [("a", a.settings), ("b", b.settings)]


@pytest.mark.anyio
async def test_loopsafe_on_a_shared_loop_activates_the_services_scope_for_the_call(
    make_app: Callable[..., App],
) -> None:
    async with make_app("b") as b, make_app("a") as a:
        assert await awhere_safe(b.mikro) == ("b", b.settings)
        assert await awhere_safe() == ("a", a.settings)
        assert current_scope().name == "a"  # restored after the call


def test_loopsafe_twin_uses_the_explicit_services_app(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")

    async def cell() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return await aloop_safe(), await aloop_safe(service=b.mikro)

    with b, a:
        on_a, on_b = asyncio.run(cell())  # a notebook's loop: both calls hop
        assert on_a is a.app_slot.scope.bridge.loop
        assert on_b is b.app_slot.scope.bridge.loop


def test_inject_resolves_from_the_explicit_services_app(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert settings_of(a.mikro) is a.settings
        assert settings_of(b.mikro) is b.settings  # not the active app's


@pytest.mark.anyio
async def test_inject_keeps_the_active_task_scope_of_the_services_own_app(
    make_app: Callable[..., App],
) -> None:
    async with make_app() as app, current_scope().task():
        # The explicit service is of the active app: its TASK scope is used, not the APP one.
        assert await per_task_of(app.mikro) == "task"


def test_scoped_resource_opens_in_its_own_apps_scope(make_app: Callable[..., App]) -> None:
    a, b = make_app("a"), make_app("b")
    with b, a:
        assert current_scope().name == "a"
        bridge = b.app_slot.scope.bridge
        assert bridge.call(b.container.first) == "first"  # this context's active app is a
    assert b.container.journal().events == ["open first", "close first"]
    assert a.container.journal().events == []
