"""arkitekt_server: the backend an arkitekt app discovers (fakts), stores images in (mikro) and
calls functions through (rekuest). FastAPI on uvicorn, SQLAlchemy async (SQLite by default).
"""

from arkitekt_server._app import create_app
from arkitekt_server._embedded import EmbeddedServer
from arkitekt_server._errors import ArkitektServerError
from arkitekt_server._settings import ServerConfigError, ServerSettings, load_server_settings

__all__ = [
    "ArkitektServerError",
    "EmbeddedServer",
    "ServerConfigError",
    "ServerSettings",
    "create_app",
    "load_server_settings",
]
