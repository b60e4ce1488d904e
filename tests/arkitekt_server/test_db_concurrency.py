"""Requests that race for one row: replicas on PostgreSQL run them truly at once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from typer.testing import CliRunner

from arkitekt._cli import build
from arkitekt_server import EmbeddedServer
from tests.helpers import database_args


def test_concurrent_redeems_of_one_static_token_all_get_its_claim_token(
    server_factory: Callable[..., EmbeddedServer],
) -> None:
    first = server_factory()
    second = server_factory(data_dir=first.settings.data_dir)  # a replica (SQLite: the same file)
    created = CliRunner().invoke(
        build(), ["token", "create", "--identifier", "racer", *database_args(first)]
    )
    assert created.exit_code == 0, created.output
    body = {"manifest": {"identifier": "racer", "version": "1"}, "token": created.stdout.strip()}

    def redeem(n: int) -> dict[str, object]:
        url = (first, second)[n % 2].url + "/f/redeem/"
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(redeem, range(32)))
    assert {answer["status"] for answer in answers} == {"granted"}
    assert len({answer["token"] for answer in answers}) == 1
    listed = CliRunner().invoke(build(), ["clients", *database_args(first)])
    assert listed.output.count("racer@1") == 1  # one approval, however many redeemed at once
