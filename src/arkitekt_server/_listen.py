"""The server's listening socket: bound before the server says where it runs.

``arkitekt server`` and :class:`~arkitekt_server.EmbeddedServer` bind it first and hand it to
uvicorn, so that port ``0`` is known as the port the system chose, and a port in use is said in
one line before anything is announced, noted or migrated.
"""

from __future__ import annotations

import errno
import socket

from arkitekt_server._errors import PortInUseError, ServerStartError

__all__ = ["listening_socket"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (port ``0``: one the system chooses).

    Bound as uvicorn binds (IPv6 for a host with ``:``, ``SO_REUSEADDR``, so a restart does not
    wait for the last run's connections to time out); uvicorn listens on it.

    Raises:
        PortInUseError: another process listens on that port.
        ServerStartError: the address cannot be bound (no such interface here, no permission
            for a port below 1024, a host name that does not resolve).

    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} is in use on {host} (another process listens there)"
            ) from None
        why = (error.strerror or str(error)).lower()
        raise ServerStartError(f"cannot listen on {shown}: {why}") from None
    return sock
