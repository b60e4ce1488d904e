"""Which ``arkitekt server`` processes run on this machine, so operator commands find them.

``arkitekt server`` writes a small file into ``<state_dir>/servers/`` while it runs (mode 0600,
removed at exit): its process id, URL, data directory, config file and database (shown without
its password). ``arkitekt approve`` and the other operator commands, given neither
``--data-dir``, ``--database-url`` nor ``--config``, act on the one server that runs (and say
so), instead of guessing a data directory and creating an empty database there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arkitekt_server._errors import ArkitektServerError

if TYPE_CHECKING:
    from arkitekt_server._settings import ServerSettings

__all__ = [
    "MAX_STATE_BYTES",
    "DeploymentChoiceError",
    "Running",
    "announce",
    "database_shown",
    "entry_of",
    "running",
    "the_running",
    "withdraw",
]

MAX_STATE_BYTES = 64 << 10
"""A state file larger than this is not ours: it is skipped unread."""


@dataclass(frozen=True)
class Running:
    """One running server, as its state file describes it.

    Attributes:
        pid: its process id.
        url: where it answers (``http://HOST:PORT``).
        data_dir: its data directory.
        config: the YAML file it was started with, if any.
        database: its database as shown to people (``host:port/db``, or the SQLite file).
        database_given: how its ``database_url`` was given (``"argument"``, ``"environment"``,
            ``"config"``), or ``None`` for SQLite in the data directory.
    """

    pid: int
    url: str
    data_dir: str
    config: str | None
    database: str
    database_given: str | None

    def describe(self) -> str:
        """One line naming the server, for the operator."""
        return f"the server at {self.url} (pid {self.pid}; database {self.database})"


def _servers(state_dir: Path) -> Path:
    return state_dir / "servers"


def announce(state_dir: Path, entry: Running) -> Path:
    """Write ``entry``'s state file (0600, atomically); return its path for :func:`withdraw`."""
    folder = _servers(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{entry.pid}.json"
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp makes it 0600
            json.dump(asdict(entry), file)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def withdraw(path: Path) -> None:
    """Remove a state file written by :func:`announce` (gone already is fine)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, though not ours
        return True
    return True


def _read(path: Path) -> Running | None:
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            return None
        data = json.loads(path.read_text())
        entry = Running(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(entry.pid, int) or int(path.stem) != entry.pid:
        return None
    return entry


def running(state_dir: Path) -> list[Running]:
    """The servers whose state files are in ``state_dir`` and whose processes are alive.

    Files of processes that are gone (a server killed with ``kill -9``) are removed.
    """
    folder = _servers(state_dir)
    if not folder.is_dir():
        return []
    found: list[Running] = []
    for path in sorted(folder.glob("*.json")):
        entry = _read(path) if path.stem.isdigit() else None
        if entry is None:
            continue
        if _alive(entry.pid):
            found.append(entry)
        else:
            withdraw(path)
    return found


class DeploymentChoiceError(ArkitektServerError):
    """No running server can be chosen for an operator command (several, or a secret missing)."""


def the_running(state_dir: Path) -> Running | None:
    """The one server running on this machine, or ``None`` when none runs.

    Raises:
        DeploymentChoiceError: several run (the message lists them and how to choose), or the
            one that runs got its database URL where this process cannot read it.

    """
    servers = running(state_dir)
    if len(servers) > 1:
        listed = "\n".join(
            f"  {server.describe()}: --data-dir {server.data_dir}" for server in servers
        )
        raise DeploymentChoiceError(
            f"{len(servers)} arkitekt servers run on this machine; choose one:\n{listed}"
        )
    if not servers:
        return None
    server = servers[0]
    if server.database_given in ("argument", "environment"):
        raise DeploymentChoiceError(
            f"{server.describe()} was given its database URL in its {server.database_given}; "
            "give the same here (ARKITEKT_SERVER_DATABASE_URL=..., or --database-url)"
        )
    return server


def database_shown(settings: ServerSettings) -> str:
    """The database of ``settings`` as shown to people (never its password)."""
    from arkitekt_server._db import database_file
    from arkitekt_server._dburl import shown_url

    if settings.database_url is not None:
        return shown_url(settings.database_url.get_secret_value())
    return str(database_file(settings.data_dir))


def entry_of(settings: ServerSettings, config: Path | None, database_url: str | None) -> Running:
    """The state file entry of a server started with ``settings`` in this process.

    Args:
        settings: its settings.
        config: the ``--config`` it was given, if any.
        database_url: the ``--database-url`` it was given, if any.
    """
    from arkitekt_server._settings import CONFIG_ENV, ENV_PREFIX

    config_file = config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    given: str | None = None
    if database_url:
        given = "argument"
    elif os.environ.get(ENV_PREFIX + "DATABASE_URL"):
        given = "environment"
    elif settings.database_url is not None:
        given = "config"
    return Running(
        pid=os.getpid(),
        url=f"http://{settings.host}:{settings.port}",
        data_dir=str(settings.data_dir.resolve()),
        config=str(config_file.resolve()) if config_file else None,
        database=database_shown(settings),
        database_given=given,
    )
