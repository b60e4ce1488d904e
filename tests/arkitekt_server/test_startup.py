"""A server that refuses to start stops what it started, closes its database, and says why."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import types
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import select

from arkitekt_server import ServerSettings, create_app
from arkitekt_server._db import Database
from arkitekt_server._periodic import background, every
from arkitekt_server._service import ServerService
from arkitekt_server.mikro._housekeeping import UnknownStoresError
from arkitekt_server.mikro._storage import Layout

log = logging.getLogger(__name__)


def _lost_database(data_dir: Path) -> None:
    """A data dir whose stores the (new, empty) database does not know: mikro refuses."""
    layout = Layout(data_dir)
    layout.create()
    layout.store(str(uuid.uuid4())).mkdir()


def _service_module(monkeypatch: pytest.MonkeyPatch, name: str, service: ServerService) -> str:
    module = types.ModuleType(name)
    module.service = service  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return name


def test_a_refusal_while_an_earlier_service_is_mid_round_stops_it_and_leaves_no_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lost_database(tmp_path / "data")
    mid_round = anyio.Event()
    release = anyio.Event()
    finished: list[str] = []

    async def one_round(database: Database) -> None:
        async with database.sessions() as session:  # holds a connection for the whole round
            await session.execute(select(1))
            mid_round.set()
            await release.wait()
            await session.execute(select(1))
        finished.append("round")

    @asynccontextmanager
    async def with_upkeep(app: FastAPI) -> AsyncIterator[None]:
        work = functools.partial(one_round, app.state.database)
        async with background(
            functools.partial(every, 3600, work, what="a round", log=log, at_once=True)
        ):
            yield

    @asynccontextmanager
    async def waiting_for_the_round(app: FastAPI) -> AsyncIterator[None]:
        await mid_round.wait()  # the next service (mikro) refuses while the round is under way
        try:
            yield
        finally:  # unwound before the upkeep's tasks are cancelled
            release.set()

    upkeep = ServerService("upkeep", APIRouter(), lifespan=with_upkeep)
    gate = ServerService("gate", APIRouter(), lifespan=waiting_for_the_round)
    services = (
        "arkitekt_server.fakts",
        _service_module(monkeypatch, "upkeep_service", upkeep),
        _service_module(monkeypatch, "gate_service", gate),
        "arkitekt_server.mikro",
    )
    app = create_app(ServerSettings(data_dir=tmp_path / "data"), services)

    async def start() -> list[asyncio.Task[object]]:
        with pytest.raises(UnknownStoresError, match="1 image store"):  # itself, not a group
            async with app.router.lifespan_context(app):
                pass
        return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    # Cut off mid-query, the round's connection would be closed by a task of its own that
    # outlives the lifespan (and can hang the process at exit).
    assert anyio.run(start) == []
    assert finished == ["round"]
    assert app.state.refusal.startswith("mikro: 1 image store(s)")
