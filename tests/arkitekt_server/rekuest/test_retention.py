"""Finished assignments are deleted after the retention time; unfinished ones never are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import arkitekt_server.rekuest._upkeep as upkeep
from arkitekt import easy
from arkitekt_server import EmbeddedServer
from arkitekt_server._db import Database, utcnow
from arkitekt_server.rekuest._store import Store
from tests.helpers import abearer_token, until


@pytest.mark.anyio
async def test_prune_deletes_only_finished_rows_older_than_the_retention(tmp_path: Path) -> None:
    database = Database.in_dir(tmp_path / "db")
    await database.create_tables()
    store = Store(database)
    try:
        old = utcnow() - dt.timedelta(hours=2)
        row = {"function": "f", "caller_pk": 1, "args": {}}
        for id, status, finished in [
            ("old-done", "done", old),
            ("old-error", "error", old),
            ("old-cancelled", "cancelled", old),
            ("new-done", "done", utcnow()),
            ("old-assigned", "assigned", None),
            ("old-queued", "queued", None),
        ]:
            store.insert({**row, "id": id, "status": status, "finished_at": finished})
            store.log(id, "info", f"line of {id}")
        await store.flush()
        assert await store.prune(3600) == 3
        for id in ("old-done", "old-error", "old-cancelled"):
            assert await store.get(id) == (None, [])
        for id in ("new-done", "old-assigned", "old-queued"):
            kept, logs = await store.get(id)
            assert kept is not None
            assert [line.message for line in logs] == [f"line of {id}"]
    finally:
        await database.dispose()


@pytest.mark.anyio
async def test_the_server_prunes_finished_assignments_periodically(
    server_factory: Callable[..., EmbeddedServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upkeep, "PRUNE_EVERY_SECONDS", 0.05)
    server = server_factory(auto_approve=True, rekuest_retention_seconds=0.2)
    app = easy("retention", url=server.url, headless=True, cache_dir=tmp_path / "cache")
    async with app:
        token = await abearer_token(app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
        body = {"function": "nowhere", "wait": 0.05}
        id = (await client.post("/rekuest/assignments/", json=body)).json()["id"]
        statuses = []

        async def pruned() -> bool:
            response = await client.get(f"/rekuest/assignments/{id}")
            if response.status_code == 404:
                return True
            statuses.append(response.json()["status"])
            return False

        await until(pruned)
    assert "error" in statuses  # it was stored finished first, then pruned
