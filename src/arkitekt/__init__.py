"""arkitekt: connect bioimage apps to a lab backend without knowing where it is.

Example:
    >>> from arkitekt import easy
    >>> app = easy("my-app")
    >>> app.is_open
    False

"""

from arkitekt._app import App, easy
from arkitekt._bridge import loopsafe, syncify
from arkitekt._container import ArkitektContainer
from arkitekt._inject import Provide, inject
from arkitekt._scope import ScopeKind, current_scope
from arkitekt._settings import Settings, load_settings
from arkitekt.errors import ArkitektError, NoActiveAppError
from arkitekt.protocol.fakts import Manifest
from arkitekt.transport import awhoami, whoami

__all__ = [
    "App",
    "ArkitektContainer",
    "ArkitektError",
    "Manifest",
    "NoActiveAppError",
    "Provide",
    "ScopeKind",
    "Settings",
    "awhoami",
    "current_scope",
    "easy",
    "inject",
    "load_settings",
    "loopsafe",
    "syncify",
    "whoami",
]

__version__ = "0.1.0"
