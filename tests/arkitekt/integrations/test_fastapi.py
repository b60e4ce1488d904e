from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from arkitekt import App
from arkitekt.errors import UnknownProviderError
from arkitekt.extension import current_scope
from arkitekt.integrations.fastapi import lifespan, service


@pytest.mark.anyio
async def test_app_lives_for_the_lifespan_and_each_request_gets_a_task_scope(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    journal = app.container.journal()
    web = FastAPI(lifespan=lifespan(app))

    @web.get("/info")
    async def info(
        mikro: Any = Depends(service(app, "mikro")),  # noqa: B008
        per_task: str = Depends(service(app, "per_task")),
    ) -> dict[str, Any]:
        scope = current_scope()  # API functions called here find the app
        return {
            "same_mikro": mikro is app.mikro,
            "per_task": per_task,
            "scope": scope.kind.name,
            "app": scope.name,
        }

    async with web.router.lifespan_context(web):
        assert app.is_open
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = (await client.get("/info")).json()
            second = (await client.get("/info")).json()
    assert not app.is_open
    assert first == {"same_mikro": True, "per_task": "task", "scope": "TASK", "app": "test-app"}
    assert second == first
    # each request opened and closed its own TASK-scoped resource
    assert journal.events == ["open task", "close task", "open task", "close task"]


def test_unknown_service_name_is_refused(make_app: Callable[..., App]) -> None:
    with pytest.raises(UnknownProviderError, match="no such provider 'nope'"):
        service(make_app(), "nope")
