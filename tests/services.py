"""The real PostgreSQL and S3 servers the tests use, started on free loopback ports.

One implementation for two callers:

- CI (``.ci/run``) starts both once around the whole run::

      python -m tests.services make test

  which exports ``ARKITEKT_TEST_POSTGRES_URL`` and ``ARKITEKT_TEST_S3_ENDPOINT`` to the command
  and stops both when it ends;
- the test fixtures (``tests/conftest.py``) use those variables when they are set, and otherwise
  start their own for the session: PostgreSQL from Debian's ``postgresql`` package (``initdb``
  and ``pg_ctl`` run as the ``postgres`` user), S3 from moto's server mode.

Without PostgreSQL binaries (or without root to run them as ``postgres``) the PostgreSQL suites
are skipped with a reason naming what is missing; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg

__all__ = [
    "POSTGRES_ENV",
    "S3_ENDPOINT_ENV",
    "ServiceMissingError",
    "postgres_admin",
    "postgres_binaries",
    "postgres_cluster",
    "postgres_database",
    "postgres_execute",
    "s3_server",
]

POSTGRES_ENV = "ARKITEKT_TEST_POSTGRES_URL"
"""A PostgreSQL superuser URL (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
S3_ENDPOINT_ENV = "ARKITEKT_TEST_S3_ENDPOINT"
"""An S3 endpoint (``http://127.0.0.1:PORT``) that accepts any credentials."""


class ServiceMissingError(RuntimeError):
    """A service the tests need cannot be started on this machine (the message says why)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` folder.

    Raises:
        ServiceMissingError: PostgreSQL is not installed, or this process cannot run it as the
            ``postgres`` user.
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0]),
    )
    if not found:
        raise ServiceMissingError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "`apt-get install postgresql` to run the PostgreSQL suites"
        )
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        raise ServiceMissingError(
            "the PostgreSQL suites start PostgreSQL as the `postgres` user, which needs root "
            f"and runuser; or set {POSTGRES_ENV} to a running server's superuser URL"
        )
    return Path(found[-1]).parent


def _as_postgres(*argv: str | Path) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, argv)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster on a free loopback port; yield its superuser URL.

    The cluster lives in a fresh temporary folder (mode 0755 and owned by ``postgres``:
    ``initdb`` refuses a data folder whose parent it cannot enter, so never under a 0700
    folder such as pytest's) and is stopped and deleted on exit.

    Raises:
        ServiceMissingError: see :func:`postgres_binaries`.
    """
    binaries = postgres_binaries()
    folder = Path(tempfile.mkdtemp(prefix="arkitekt-pg-", dir="/tmp"))
    folder.chmod(0o755)
    shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    data = folder / "data"
    try:
        _as_postgres(
            binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        _as_postgres(
            binaries / "pg_ctl", "-D", data, "-l", folder / "postgres.log", "-w", "-t", "30",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=300",
            "start",
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        log = folder / "postgres.log"
        detail = log.read_text() if log.exists() else error.stderr
        shutil.rmtree(folder, ignore_errors=True)
        raise ServiceMissingError(f"PostgreSQL did not start: {detail.strip()[-2000:]}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _as_postgres(binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_admin() -> Iterator[str]:
    """A superuser URL: ``$ARKITEKT_TEST_POSTGRES_URL``, else a cluster of our own (see
    :func:`postgres_cluster`) for the ``with`` block."""
    given = os.environ.get(POSTGRES_ENV)
    if given:
        yield given
        return
    with postgres_cluster() as url:
        yield url


def postgres_execute(admin_url: str, *statements: str) -> None:
    """Run ``statements`` (e.g. ``CREATE DATABASE``) as the PostgreSQL superuser, one by one."""

    async def run() -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    anyio.run(run)


@contextlib.contextmanager
def postgres_database(admin_url: str, prefix: str = "test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (an asyncpg URL) for the ``with`` block; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    postgres_execute(admin_url, f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        postgres_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Run moto's S3 server mode on a free loopback port; yield its endpoint URL.

    moto accepts any credentials and enforces no policy: tests of credential scoping test the
    server's own scoping code.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    """Start PostgreSQL and S3, run ``argv`` with their addresses in its environment, stop both.

    Returns:
        The command's exit code.
    """
    if not argv:
        print("usage: python -m tests.services COMMAND [ARG...]", file=sys.stderr)
        return 2
    with postgres_cluster() as postgres, s3_server() as s3:
        env = {**os.environ, POSTGRES_ENV: postgres, S3_ENDPOINT_ENV: s3}
        print(f"tests.services: PostgreSQL at {postgres}, S3 at {s3}", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
