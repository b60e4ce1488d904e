"""The fakts service object (``app.fakts``)."""

from __future__ import annotations

from typing import Any

from arkitekt.protocol.fakts import Manifest
from arkitekt.scope import Runtime
from arkitekt.service import Service
from arkitekt.settings import Settings

__all__ = ["Fakts"]


class Fakts(Service):
    """Discovery and grants of an app. Configure before ``with app:``."""

    def __init__(self, runtime: Runtime, manifest: Manifest, settings: Settings) -> None:
        super().__init__(runtime)
        self.manifest = manifest
        self.settings = settings
        self.grant: Any = None
