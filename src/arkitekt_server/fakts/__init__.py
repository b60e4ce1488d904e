"""Fakts on the server: discovery, device-code approval, claim, redeem, retrieve."""

from arkitekt_server.fakts.routes import router
from arkitekt_server.service import ServerService

service = ServerService(name="fakts", router=router)

__all__ = ["service"]
