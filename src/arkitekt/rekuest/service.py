"""The rekuest service object (``app.rekuest``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arkitekt.fakts import Fakts
from arkitekt.scope import Runtime
from arkitekt.service import Service
from arkitekt.settings import Settings

__all__ = ["Rekuest"]


class Rekuest(Service):
    """The function service of an app."""

    def __init__(
        self, runtime: Runtime, transport: Callable[[], Any], fakts: Fakts, settings: Settings
    ) -> None:
        super().__init__(runtime)
        self._transport = transport
        self.fakts = fakts
        self.settings = settings
