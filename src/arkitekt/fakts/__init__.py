"""fakts: discover the backend, get the app approved, claim its configuration."""

from arkitekt.fakts.service import Fakts

__all__ = ["Fakts"]
