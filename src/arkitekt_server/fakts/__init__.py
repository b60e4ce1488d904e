"""Fakts on the server: discovery, device-code approval, claim, redeem, retrieve."""

from arkitekt_server.fakts.routes import router
from arkitekt_server.service import ServerService

service = ServerService(
    name="fakts",
    router=router,
    public_paths=(
        "/.well-known/fakts",
        "/f/start/",
        "/f/challenge/",
        "/f/claim/",
        "/f/redeem/",
        "/f/retrieve/",
        "/f/configure/",
    ),
)

__all__ = ["service"]
