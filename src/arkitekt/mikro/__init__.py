"""mikro: store and read microscopy images."""

from arkitekt.mikro.service import Mikro

__all__ = ["Mikro"]
