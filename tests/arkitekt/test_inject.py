from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from arkitekt import App, NoActiveAppError, Provide, inject
from arkitekt._settings import Settings
from arkitekt.errors import InjectionError
from arkitekt.extension import current_scope
from arkitekt.mikro import Mikro


@inject
def sync_service(
    x: int, mikro: Mikro = Provide("mikro"), settings: Settings = Provide("settings")
) -> tuple[int, Mikro, Settings]:
    return x, mikro, settings


@inject
async def async_service(x: int, *, mikro: Mikro = Provide("mikro")) -> tuple[int, Mikro]:
    return x, mikro


@inject
async def async_resource(first: Any = Provide("first")) -> Any:
    return first


@inject
def sync_resource(first: Any = Provide("first")) -> Any:
    return first


def test_fills_from_the_active_app_and_keeps_the_signature(make_app: Callable[..., App]) -> None:
    app = make_app()
    assert list(inspect.signature(sync_service).parameters) == ["x", "mikro", "settings"]
    with app:
        x, mikro, settings = sync_service(1)
    assert (x, mikro, settings) == (1, app.mikro, app.settings)


def test_explicit_arguments_win(make_app: Callable[..., App]) -> None:
    mine = object()
    with make_app():
        assert sync_service(1, mine)[1] is mine  # positional
        assert sync_service(1, mikro=mine)[1] is mine  # keyword
    # With every marked argument given, no app is needed at all.
    assert sync_service(1, mine, settings=mine) == (1, mine, mine)


def test_follows_nested_apps(make_app: Callable[..., App]) -> None:
    outer, inner = make_app("outer"), make_app("inner")
    with outer:
        with inner:
            assert sync_service(0)[1] is inner.mikro
        assert sync_service(0)[1] is outer.mikro


@pytest.mark.anyio
async def test_async_functions_and_async_resources(make_app: Callable[..., App]) -> None:
    async with make_app() as app:
        assert await async_service(2) == (2, app.mikro)
        assert await async_resource() == "first"


def test_sync_function_gets_an_async_resource_through_the_bridge(
    make_app: Callable[..., App],
) -> None:
    with make_app():
        assert sync_resource() == "first"


def test_outside_any_app_fails_at_once_naming_the_function() -> None:
    with pytest.raises(NoActiveAppError, match=r"sync_service\(\) needs an active arkitekt app"):
        sync_service(1)


def test_resolves_from_an_explicit_service_when_no_app_is_active(
    make_app: Callable[..., App],
) -> None:
    app = make_app()

    @inject
    def needs_settings(mikro: Mikro, settings: Settings = Provide("settings")) -> Settings:
        return settings

    with app:
        scope = current_scope()
        assert app.run_in_thread(needs_settings, app.mikro).result() is app.settings
        assert scope is current_scope()


def test_positional_only_markers_are_refused() -> None:
    with pytest.raises(InjectionError, match="positional-only") as caught:

        @inject
        def bad(mikro: Mikro = Provide("mikro"), /) -> None: ...

    assert isinstance(caught.value, TypeError)  # `except TypeError` written before keeps working


def test_functions_without_markers_are_returned_unchanged() -> None:
    def plain(x: int) -> int:
        return x

    assert inject(plain) is plain
