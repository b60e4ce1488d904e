"""The OAuth2 token side of the server (lok)."""

from arkitekt_server._service import SMALL_BODY_BYTES, ServerService
from arkitekt_server.lok._routes import router

service = ServerService(
    name="lok",
    router=router,
    public_paths=("/lok/token/",),
    body_limits={"/lok/token/": SMALL_BODY_BYTES},
)

__all__ = ["service"]
