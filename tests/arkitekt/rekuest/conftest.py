from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from arkitekt import App
from arkitekt.rekuest import Registry
from arkitekt.rekuest._agent import Agent

__all__ = ["serve", "serving"]


@asynccontextmanager
async def serving(app: App, registry: Registry, instance: str = "default") -> AsyncIterator[Agent]:
    """Open ``app`` and serve ``registry`` from it until the block ends."""
    app.rekuest.registry = registry
    app.rekuest.instance = instance
    async with app:
        yield await app.rekuest.astart()


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``async with serve(app, registry) as agent:`` serves ``registry`` from ``app``."""
    return serving
