"""The OAuth2 token side of the server (lok)."""

from arkitekt_server.lok.routes import router
from arkitekt_server.service import ServerService

service = ServerService(name="lok", router=router, public_paths=("/lok/token/",))

__all__ = ["service"]
