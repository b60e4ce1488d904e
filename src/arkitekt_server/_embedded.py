"""Run the server inside this process, in a background thread (tests, demos, notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from arkitekt_server._app import create_app
from arkitekt_server._errors import ServerStartError
from arkitekt_server._listen import listening_socket
from arkitekt_server._logs import set_log_levels
from arkitekt_server._settings import ServerSettings

__all__ = ["EmbeddedServer"]


def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    # uvicorn exits the thread when its startup fails (and logs why); start() raises for it
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock])


class EmbeddedServer:
    """The server on a loopback port, in a daemon thread, for the length of a ``with`` block.

    It listens on ``settings.host`` and ``settings.port`` (by default ``127.0.0.1:8000``, as
    ``arkitekt server``); port ``0`` picks a free port, and :attr:`url` says which.

    The host process's logging is left as it is: no handler is added, replaced or closed
    (uvicorn's own configuration would close every handler of the process, so a host's
    ``FileHandler`` would drop every later record). Only the levels of the server's loggers
    (``arkitekt_server``, ``uvicorn.*``) are set, to ``settings.log_level``; their records go
    wherever the host sends its records. Third-party loggers the host gave no level of its own
    (botocore, the database drivers, ...) are held at WARNING: their debug output holds
    credentials.

    Example:
        >>> import tempfile
        >>> from arkitekt_server import EmbeddedServer, ServerSettings
        >>> with tempfile.TemporaryDirectory() as data_dir:
        ...     with EmbeddedServer(ServerSettings(data_dir=data_dir, port=0)) as server:
        ...         server.url.startswith("http://127.0.0.1:")
        True

    """

    def __init__(self, settings: ServerSettings, *, start_timeout: float = 20.0) -> None:
        self.settings = settings
        self._start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.settings.host}:{self.port}"

    def start(self) -> None:
        """Start serving; returns once the server accepts connections.

        Raises:
            ServerStartError: the server refused to start (the message says why: e.g. its
                port is in use, a :class:`~arkitekt_server.PortInUseError`; or its
                database cannot be used), failed (its log says why) or did not start within
                ``start_timeout`` seconds; it is stopped again.

        """
        sock = listening_socket(self.settings.host, self.settings.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        app = create_app(self.settings)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.port,  # for uvicorn's "running on" line; it listens on sock
            log_config=None,  # never dictConfig: that closes the host's handlers
            log_level=self.settings.log_level,
            lifespan="on",
            ws="websockets-sansio",
        )
        set_log_levels(self.settings.log_level)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=_serve, args=(server, sock), name="arkitekt-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not server.started:
            if not self._thread.is_alive():
                self.stop()
                refusal = getattr(app.state, "refusal", None)  # a deliberate refusal, one line
                raise ServerStartError(
                    f"the embedded arkitekt server refused to start: {refusal}"
                    if refusal is not None
                    else "the embedded arkitekt server failed to start (see the log)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"the embedded arkitekt server did not start within {self._start_timeout} s"
                )
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (forcing it after ``timeout`` seconds)."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedServer {self.url}>"

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an EmbeddedServer cannot be pickled")
