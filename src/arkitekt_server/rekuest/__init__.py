"""Functions on the server (rekuest): definitions, agents, assignments."""

from fastapi import APIRouter

from arkitekt_server._net import ws_url
from arkitekt_server.service import ServerService

router = APIRouter(tags=["rekuest"])


def _config(base: str) -> dict[str, object]:
    return {
        "endpoint_url": base + "rekuest/",
        "agent": {"endpoint_url": ws_url(base) + "rekuest/agent/ws"},
    }


service = ServerService(name="rekuest", router=router, prefix="/rekuest", config=_config)

__all__ = ["service"]
