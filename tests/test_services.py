"""The test services themselves: a fresh PostgreSQL database and an S3 endpoint answer."""

from __future__ import annotations

import anyio
import asyncpg
import httpx


def test_postgres_database_is_fresh_and_answers(postgres_url: str) -> None:
    async def tables() -> int:
        connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            return int(
                await connection.fetchval(
                    "select count(*) from information_schema.tables where table_schema='public'"
                )
            )
        finally:
            await connection.close()

    assert anyio.run(tables) == 0


def test_s3_endpoint_creates_a_bucket(s3_endpoint: str, s3_bucket: str) -> None:
    assert httpx.put(f"{s3_endpoint}/{s3_bucket}").status_code == 200
    assert s3_bucket in httpx.get(s3_endpoint).text
