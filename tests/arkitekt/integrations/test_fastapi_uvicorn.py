"""The FastAPI integration under a real uvicorn, with an app connected to a real server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI

from arkitekt import App, awhoami
from arkitekt.extension import current_scope
from arkitekt.integrations.fastapi import lifespan, service
from tests.helpers import wait_until


def test_requests_call_the_api_through_the_lifespan_app(connect: Callable[..., App]) -> None:
    app = connect("web-app")
    web = FastAPI(lifespan=lifespan(app))

    @web.get("/me")
    async def me(settings: Any = Depends(service(app, "settings"))) -> dict[str, Any]:  # noqa: B008
        info = await awhoami()  # an API function, finding the app through the request scope
        return {"identifier": info.identifier, "scope": current_scope().kind.name}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, interval=0.01)
        assert app.is_open
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            answers = [client.get("/me").json() for _ in range(3)]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert answers == [{"identifier": "web-app", "scope": "TASK"}] * 3
    assert not app.is_open
