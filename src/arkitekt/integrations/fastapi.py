"""Run an arkitekt app inside a FastAPI application.

The app scope lives as long as the web application (its lifespan); each request opens a TASK
scope nested in it, and endpoints receive services through ``Depends``.

Example:
    >>> import anyio
    >>> import httpx
    >>> from fastapi import Depends, FastAPI
    >>> from arkitekt.integrations.fastapi import lifespan, service
    >>> from arkitekt.mikro import Mikro, asearch_images
    >>> web = FastAPI(lifespan=lifespan(app))  # app: the arkitekt app, open while web runs
    >>> @web.get("/images/count")
    ... async def count(tag: str, mikro: Mikro = Depends(service(app, "mikro"))) -> int:
    ...     return (await asearch_images(tag=tag, mikro=mikro)).total
    >>> async def ask() -> object:
    ...     async with web.router.lifespan_context(web):  # what a web server runs around it
    ...         transport = httpx.ASGITransport(app=web)
    ...         async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
    ...             response = await client.get("/images/count", params={"tag": "never-used"})
    ...             return response.json()
    >>> anyio.run(ask)
    0

Requires the ``fastapi`` package (``pip install 'arkitekt-lab[server]'`` brings it).

"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from arkitekt import App
from arkitekt.errors import UnknownProviderError
from arkitekt.extension import Scope, activate, aresolve, deactivate

__all__ = ["lifespan", "request_scope", "service"]


def lifespan(app: App) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan`` that keeps ``app`` open while the web application runs."""

    @asynccontextmanager
    async def run(_web: Any) -> AsyncIterator[None]:
        async with app:
            yield

    return run


def request_scope(app: App) -> Callable[[], AsyncIterator[Scope]]:
    """A dependency that opens a TASK scope of ``app`` for one request and makes it active.

    API functions called by the endpoint (``await afrom_xarray(...)``) find the app through it.
    The lifespan task and the request tasks do not share context variables, so the request
    binds the app itself.
    """

    async def dependency() -> AsyncIterator[Scope]:
        app_scope = app.app_slot.scope
        token = activate(app_scope)
        try:
            async with app_scope.task() as task_scope:
                yield task_scope
        finally:
            deactivate(token)

    return dependency


def service(app: App, name: str) -> Callable[..., Any]:
    """A dependency that provides the container's provider ``name`` inside a request scope.

    Args:
        app: the app whose container provides it.
        name: a provider name, e.g. ``"mikro"``, ``"settings"`` or a TASK-scoped resource.

    Raises:
        UnknownProviderError: the app's container has no provider ``name``.

    """
    from fastapi import Depends

    known = app.container.providers
    if name not in known:
        raise UnknownProviderError(name, known, f"app {app.app_slot.name!r}")
    scoped = request_scope(app)

    async def dependency(scope: Scope = Depends(scoped)) -> Any:
        return await aresolve(getattr(scope.container, name))

    return dependency
