"""mikro search: ``GET /mikro/images/`` over 100,000 image records, PostgreSQL against SQLite.

``ARKITEKT_BENCH_SEARCH_RECORDS`` changes the number of records (a quick check of the benchmark
itself).

Two servers in this process, each an :class:`~arkitekt_server.EmbeddedServer` on its own
database: SQLite in a temporary data dir (the embedded default, the reference) and a throwaway
PostgreSQL database (``$ARKITEKT_TEST_POSTGRES_URL``, or a cluster started here with
``tests.services``). Both get the same 100,000 records (written straight into the tables), then
the same queries, interleaved, each timed as one authenticated request:

- ``first page``: the newest 50 visible images (what the gallery asks first);
- ``name part``: a case-insensitive substring of the name that matches 10 images;
- ``tag``: one tag shared by 1% of the images.

Goal: report PostgreSQL's p50 against SQLite's for each query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy import insert

from arkitekt import easy
from arkitekt_server import EmbeddedServer, ServerSettings
from arkitekt_server._db import Database
from arkitekt_server.mikro._models import ImageRow, TagRow
from bench._harness import fmt, print_table

RECORDS = int(os.environ.get("ARKITEKT_BENCH_SEARCH_RECORDS", "100000"))
BATCH = 5_000
ROUNDS = 5
CALLS = 40  # per round, query and backend
QUERIES = {
    "first page": {"limit": 50},
    "name part": {"name": "ELL-4242"},  # cell-4242, cell-14242, ... cell-94242: 10 images
    "tag": {"tag": "t17", "limit": 50},
}


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A fresh database (asyncpg URL) on ``$ARKITEKT_TEST_POSTGRES_URL`` or a cluster of our own."""
    from tests.services import postgres_admin, postgres_database

    with postgres_admin() as admin, postgres_database(admin, "bench_search") as url:
        yield url


async def _fill(settings: ServerSettings) -> None:
    database = Database.of(settings.database_url, settings.data_dir)
    engine = database.engine
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        for first in range(0, RECORDS, BATCH):
            images: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            for i in range(first, first + BATCH):
                image_id = str(uuid.UUID(int=i + 1))
                images.append(
                    {
                        "id": image_id,
                        "name": f"cell-{i}",
                        "owner_pk": 1,
                        "owner": "bench",
                        "private": i % 10 == 0,
                        "shape": [1, 1, 1, 64, 64],
                        "chunks": [1, 1, 1, 64, 64],
                        "dtype": "uint16",
                        "created_at": start + dt.timedelta(seconds=i),
                    }
                )
                tags.append({"image_id": image_id, "tag": f"t{i % 100}", "position": 0})
            async with engine.begin() as connection:
                await connection.execute(insert(ImageRow), images)
                await connection.execute(insert(TagRow), tags)
    finally:
        await engine.dispose()


def _time(client: httpx.Client, params: dict[str, Any], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get("/mikro/images/", params=params)
        latencies.append(time.perf_counter() - start)
        response.raise_for_status()
    return latencies


def _token(server: EmbeddedServer, cache: Path) -> str:
    app = easy("bench-search", url=server.url, headless=True, cache_dir=cache)
    with app:

        async def token() -> str:
            transport = await app.mikro._transport()
            return str(await transport.atoken())

        return str(app.app_slot.scope.bridge.call(token))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="arkitekt-bench-search-") as tmp, _postgres() as pg:
        folder = Path(tmp)
        backends = {"sqlite": None, "postgresql": pg}
        servers: dict[str, EmbeddedServer] = {}
        clients: dict[str, httpx.Client] = {}
        with contextlib.ExitStack() as stack:
            for name, url in backends.items():
                settings = ServerSettings(
                    port=0,
                    data_dir=folder / name,
                    database_url=url,
                    auto_approve=True,
                    log_level="error",
                )
                server = stack.enter_context(EmbeddedServer(settings))
                servers[name] = server
                filled = time.perf_counter()
                anyio.run(_fill, settings)
                seconds = time.perf_counter() - filled
                print(f"{name}: {RECORDS:,} records written in {seconds:.1f} s")
                token = _token(server, folder / f"cache-{name}")
                clients[name] = stack.enter_context(
                    httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
                )
            for name, client in clients.items():  # same answers on both, and a warm-up
                for params in QUERIES.values():
                    assert client.get("/mikro/images/", params=params).json()["total"] > 0, name
            samples: dict[tuple[str, str], list[float]] = {}
            order = [(q, b) for q in QUERIES for b in backends]
            for index in range(ROUNDS):
                shift = index % len(order)
                for query, backend in order[shift:] + order[:shift]:
                    samples.setdefault((query, backend), []).extend(
                        _time(clients[backend], QUERIES[query], CALLS)
                    )
    rows = []
    for query in QUERIES:
        p50 = {b: sorted(samples[(query, b)])[len(samples[(query, b)]) // 2] for b in backends}
        rows.append(
            [
                query,
                fmt(p50["sqlite"], "ms"),
                fmt(p50["postgresql"], "ms"),
                f"{p50['postgresql'] / p50['sqlite']:.2f}x",
            ]
        )
    print_table(
        f"mikro search over {RECORDS:,} image records ({ROUNDS} rounds x {CALLS} requests, "
        "interleaved; one authenticated GET each)",
        ["query", "SQLite p50", "PostgreSQL p50", "PostgreSQL vs SQLite"],
        rows,
    )


if __name__ == "__main__":
    main()
