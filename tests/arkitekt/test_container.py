from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from dependency_injector import providers

from arkitekt import App, Manifest
from arkitekt._settings import Settings
from arkitekt.errors import ScopeError
from arkitekt.extension import ArkitektContainer, ScopedResource, ScopeKind, current_scope


@asynccontextmanager
async def value(**deps: object) -> AsyncIterator[str]:
    yield "v"


def test_declares_the_services() -> None:
    assert {"settings", "fakts", "transport", "mikro", "rekuest"} <= set(
        ArkitektContainer.providers
    )
    assert isinstance(ArkitektContainer.transport, ScopedResource)


def test_a_singleton_may_not_capture_a_scoped_resource() -> None:
    class Bad(ArkitektContainer):
        leaky = providers.Singleton(dict, transport=ArkitektContainer.transport)

    with pytest.raises(
        ScopeError, match=r"'leaky' lives longer than 'transport'.*transport\.provider"
    ):
        App(Manifest(identifier="bad", version="0.1.0"), Settings(), container=Bad)


def test_a_singleton_may_not_capture_a_scoped_resource_through_a_factory() -> None:
    class Bad(ArkitektContainer):
        leaky = providers.Singleton(
            dict, inner=providers.Factory(dict, t=providers.List(ArkitektContainer.transport))
        )

    with pytest.raises(
        ScopeError, match=r"'leaky' lives longer than 'transport'.*through Factory\(dict\) -> List;"
    ):
        App(Manifest(identifier="bad", version="0.1.0"), Settings(), container=Bad)


def test_a_singleton_may_hold_a_factory_of_the_resources_provider() -> None:
    class Good(ArkitektContainer):
        holder = providers.Singleton(
            dict, inner=providers.Factory(dict, t=ArkitektContainer.transport.provider)
        )

    app = App(Manifest(identifier="good", version="0.1.0"), Settings(), container=Good)
    assert set(app.container.holder()["inner"]) == {"t"}


def test_an_app_resource_may_not_depend_on_a_task_resource() -> None:
    class Bad(ArkitektContainer):
        per_task = ScopedResource(value, app_slot=ArkitektContainer.app_slot, kind=ScopeKind.TASK)
        per_app = ScopedResource(value, app_slot=ArkitektContainer.app_slot, dep=per_task)

    with pytest.raises(ScopeError, match=r"'per_app' lives longer than 'per_task' \(TASK-scoped\)"):
        App(Manifest(identifier="bad", version="0.1.0"), Settings(), container=Bad)


def test_an_app_resource_may_not_reach_a_task_resource_through_a_factory() -> None:
    class Bad(ArkitektContainer):
        per_task = ScopedResource(value, app_slot=ArkitektContainer.app_slot, kind=ScopeKind.TASK)
        per_app = ScopedResource(
            value, app_slot=ArkitektContainer.app_slot, dep=providers.Factory(dict, t=per_task)
        )

    with pytest.raises(
        ScopeError, match=r"'per_app' lives longer than 'per_task' .* through Factory\(dict\);"
    ):
        App(Manifest(identifier="bad", version="0.1.0"), Settings(), container=Bad)


@pytest.mark.anyio
async def test_a_task_resource_may_depend_on_an_app_resource() -> None:
    class Good(ArkitektContainer):
        per_app = ScopedResource(value, app_slot=ArkitektContainer.app_slot)
        per_task = ScopedResource(
            value, app_slot=ArkitektContainer.app_slot, kind=ScopeKind.TASK, dep=per_app
        )

    app = App(Manifest(identifier="good", version="0.1.0"), Settings(), container=Good)
    async with app, current_scope().task():
        assert await app.container.per_task() == "v"
