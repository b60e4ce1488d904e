from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from arkitekt import App, ArkitektContainer, Manifest, ScopeKind
from arkitekt.resources import ScopedResource
from arkitekt.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Journal:
    """Records what tracked resources did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.fail_close: set[str] = set()


@asynccontextmanager
async def tracked(name: str, journal: Journal, **deps: Any) -> AsyncIterator[str]:
    journal.events.append(f"open {name}")
    try:
        yield name
    except BaseException as error:
        journal.events.append(f"{name} saw {type(error).__name__}")
        raise
    finally:
        journal.events.append(f"close {name}")
        if name in journal.fail_close:
            raise RuntimeError(f"{name} failed to close")


class TrackedContainer(ArkitektContainer):
    journal = providers.Singleton(Journal)
    first = ScopedResource(
        tracked, runtime=ArkitektContainer.runtime, name="first", journal=journal
    )
    second = ScopedResource(
        tracked, runtime=ArkitektContainer.runtime, name="second", journal=journal, first=first
    )
    per_task = ScopedResource(
        tracked,
        runtime=ArkitektContainer.runtime,
        kind=ScopeKind.TASK,
        name="task",
        journal=journal,
    )


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., App]:
    """Apps that contact nothing: a closed loopback port, headless, cache in tmp_path."""

    def build(
        identifier: str = "test-app", container: type[ArkitektContainer] = TrackedContainer
    ) -> App:
        settings = Settings(url="http://127.0.0.1:9", headless=True, cache_dir=tmp_path / "cache")
        return App(Manifest(identifier=identifier, version="0.1.0"), settings, container=container)

    return build
