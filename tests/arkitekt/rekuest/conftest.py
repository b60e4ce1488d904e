from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from arkitekt import App
from arkitekt.rekuest import Registry
from arkitekt.rekuest._agent import Agent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(app: App, registry: Registry, instance: str = "default") -> AsyncIterator[Agent]:
    """Open ``app`` and serve ``registry`` from it until the block ends."""
    app.rekuest.registry = registry
    app.rekuest.instance = instance
    async with app:
        yield await app.rekuest.astart()


async def eventually(check: Callable[[], Any], seconds: float = 5.0) -> None:
    """Wait until ``check()`` is true."""
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110 - polling a plain condition
            await anyio.sleep(0.01)


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``async with serve(app, registry) as agent:`` serves ``registry`` from ``app``."""
    return serving


@pytest.fixture
def until() -> Callable[..., Any]:
    """``await until(lambda: condition)`` waits (up to 5 s) for a condition."""
    return eventually
