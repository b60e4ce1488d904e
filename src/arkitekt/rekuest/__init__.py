"""rekuest: register functions, serve them as an agent, call others'."""

from arkitekt.rekuest.service import Rekuest

__all__ = ["Rekuest"]
