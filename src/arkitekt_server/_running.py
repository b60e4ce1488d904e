"""Which ``arkitekt server`` processes run on this machine, so operator commands find them.

``arkitekt server`` writes a small file into ``<state_dir>/servers/`` while it runs (mode 0600,
removed at exit): its process id and start time, URL, data directory and config file, and its
database as shown to people (never its password). ``arkitekt approve`` and the other operator
commands, given neither ``--data-dir``, ``--database-url`` nor ``--config``, act on the one
server that runs (and say so), instead of guessing a data directory.

The files steer an operator's commands, so only files this user wrote are believed: the folder
and each file must belong to this user and be writable by nobody else, a file must be a regular
file (no symlink, no FIFO) of at most :data:`MAX_STATE_BYTES`, every field is validated, and a
server counts as running only if a process with its id *and start time* still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arkitekt.protocol.text import STORABLE
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

MAX_STATE_BYTES = 16 << 10
"""A state file larger than this is not ours: it is skipped unread."""

_Text = Annotated[str, Field(min_length=1, max_length=4096), STORABLE]


class DeploymentChoiceError(ArkitektServerError):
    """No running server can be chosen for an operator command (several, or a secret missing)."""


class Running(BaseModel):
    """One running server, as its state file describes it.

    Attributes:
        pid: its process id.
        started: when its process started (clock ticks since boot, from ``/proc``), so that a
            later process with the same id is not taken for it; ``None`` where unknown.
        url: where it answers (``http://HOST:PORT``).
        data_dir: its data directory.
        config: the YAML file it was started with, if any.
        database: its database as shown to people (``host:port/db``, or the SQLite file).
        database_given: how its ``database_url`` was given, or ``None`` for SQLite in the data
            directory.

    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    pid: int = Field(gt=1, lt=1 << 31)
    started: int | None = Field(default=None, ge=0)
    url: Annotated[str, Field(min_length=1, max_length=300, pattern=r"^https?://[\x21-\x7e]+$")]
    data_dir: _Text
    config: _Text | None
    database: _Text
    database_given: Literal["argument", "environment", "config"] | None

    def describe(self) -> str:
        """One line naming the server, for the operator."""
        return f"the server at {self.url} (pid {self.pid})"


def _servers(state_dir: Path) -> Path:
    return state_dir / "servers"


def _private_folder(folder: Path) -> None:
    """Refuse a state folder another user owns or may write (they could plant files)."""
    info = folder.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise DeploymentChoiceError(
            f"the state folder {folder} is not private to this user (owner {info.st_uid}, mode "
            f"{stat.filemode(info.st_mode)}): running servers are not looked up there; make it "
            "yours with mode 0700, or name the deployment (--data-dir, --database-url, --config)"
        )


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` (no such process, or
    no ``/proc`` here)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat_line.rsplit(")", 1)[-1].split()  # the command name may hold spaces
    try:
        return int(fields[19])  # field 22 of proc(5); the first two are before ')'
    except (IndexError, ValueError):
        return None


def announce(state_dir: Path, entry: Running) -> Path:
    """Write ``entry``'s state file (0600, atomically); return its path for :func:`withdraw`.

    Raises:
        DeploymentChoiceError: the state folder is not private to this user.

    """
    folder = _servers(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _private_folder(folder)
    path = folder / f"{entry.pid}.json"
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp makes it 0600
            file.write(entry.model_dump_json())
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


def _read(path: Path) -> Running | None:
    """The entry of one state file, or ``None`` for anything this user did not write."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a symlink, gone, unreadable
        return None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & 0o077
            or info.st_size > MAX_STATE_BYTES
        ):
            return None
        raw = file.read(MAX_STATE_BYTES + 1)
    try:
        entry = Running.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None
    return entry if path.name == f"{entry.pid}.json" else None


def _alive(entry: Running) -> bool:
    try:
        os.kill(entry.pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's process now
        return False
    # a later process may have been given the id: then it started at another time
    return entry.started is None or process_start(entry.pid) == entry.started


def running(state_dir: Path) -> list[Running]:
    """The servers noted in ``state_dir`` whose processes are alive.

    Files of processes that are gone (a server killed with ``kill -9``) are removed; files this
    user did not write are ignored.

    Raises:
        DeploymentChoiceError: the state folder is not private to this user.

    """
    folder = _servers(state_dir)
    if not folder.is_dir():
        return []
    _private_folder(folder)
    found: list[Running] = []
    for path in sorted(folder.glob("[0-9]*.json")):
        entry = _read(path)
        if entry is None:
            continue
        if _alive(entry):
            found.append(entry)
        else:
            withdraw(path)
    return found


def the_running(state_dir: Path) -> Running | None:
    """The one server running on this machine, or ``None`` when none runs.

    Raises:
        DeploymentChoiceError: several run (the message lists them and how to choose), the
            one that runs got its database URL where this process cannot read it, or the state
            folder is not private to this user.

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
    given: Literal["argument", "environment", "config"] | None = None
    if database_url:
        given = "argument"
    elif os.environ.get(ENV_PREFIX + "DATABASE_URL"):
        given = "environment"
    elif settings.database_url is not None:
        given = "config"
    return Running(
        pid=os.getpid(),
        started=process_start(os.getpid()) if sys.platform.startswith("linux") else None,
        url=f"http://{settings.host}:{settings.port}",
        data_dir=str(settings.data_dir.resolve()),
        config=str(config_file.resolve()) if config_file else None,
        database=database_shown(settings),
        database_given=given,
    )
