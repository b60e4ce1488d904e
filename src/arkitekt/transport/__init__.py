"""HTTP transport: one httpx ``AsyncClient`` per open app, with the app's bearer token."""

from arkitekt.transport.client import Transport, open_transport

__all__ = ["Transport", "open_transport"]
