"""Schemathesis against the server's own OpenAPI schema (built in process; never served), on a
real server over 127.0.0.1, without a token and with a valid one.

Every operation gets bounded positive and negative examples. No answer may be a 5xx, and every
status code must be one the schema documents for that operation. Failures are collected (not
shrunk) and listed together; the figures are printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from arkitekt_server import EmbeddedServer, ServerSettings
from arkitekt_server._app import create_app
from tests.services import postgres_database

EXAMPLES = 20  # per operation, generation mode and token: bounded so the whole run stays short
SKIP_WITH_TOKEN = {("POST", "/lok/revoke/")}  # would revoke the fuzzer's own token


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, backend: str, request: pytest.FixtureRequest
) -> Iterator[tuple[EmbeddedServer, str]]:
    """The fuzzed server and a bearer token for it, taken before any fuzzing: the fuzzer's own
    ``/f/start/`` requests may use up the device codes one address may hold open."""
    data = tmp_path_factory.mktemp("fuzzed")
    with contextlib.ExitStack() as stack:
        url = None
        if backend == "postgresql":  # a database of its own: its codes count against caps
            admin = request.getfixturevalue("postgres_admin_url")
            url = stack.enter_context(postgres_database(admin))
        settings = ServerSettings(
            data_dir=data, port=0, auto_approve=True, log_level="warning", database_url=url
        )
        server = stack.enter_context(EmbeddedServer(settings))
        yield server, _token(server)


def _operations(data_dir: Path) -> list[Any]:
    schema = schemathesis.openapi.from_dict(create_app(ServerSettings(data_dir=data_dir)).openapi())
    results = list(schema.get_all_operations())
    return [result.ok() for result in results]


def _token(server: EmbeddedServer) -> str:
    base = server.url
    code = requests.post(
        base + "/f/start/", json={"manifest": {"identifier": "fuzzer", "version": "1"}}, timeout=10
    ).json()["code"]
    claim = requests.post(base + "/f/challenge/", json={"code": code}, timeout=10).json()["token"]
    lok = requests.post(base + "/f/claim/", json={"token": claim}, timeout=10).json()["config"][
        "lok"
    ]
    answer = requests.post(
        lok["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(lok["client_id"], lok["client_secret"]),
        timeout=10,
    )
    return str(answer.json()["access_token"])


def _example(case: Any, response: requests.Response) -> str:
    body = "" if type(case.body).__name__ == "NotSet" else f" body={str(case.body)[:200]!r}"
    return (
        f"{case.method} {case.formatted_path[:120]} query={str(case.query)[:200]}{body} "
        f"-> {response.text[:160]!r}"
    )


@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
def test_fuzzing_finds_no_5xx_and_only_documented_status_codes(
    fuzzed: tuple[EmbeddedServer, str],
    tmp_path: Path,
    with_token: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, token = fuzzed
    operations = _operations(tmp_path)
    assert len(operations) >= 25  # the schema holds every route (a guard that sees nothing fails)
    headers = {"Authorization": f"Bearer {token}"} if with_token else {}
    session = requests.Session()
    sent = server_errors = 0
    # (what, method, path, status) -> [count, first example]
    failures: dict[tuple[str, str, str, int], list[Any]] = {}

    def fail(what: str, case: Any, response: requests.Response) -> None:
        key = (what, case.method, operation.path, response.status_code)
        failures.setdefault(key, [0, _example(case, response)])[0] += 1

    for operation in operations:
        if with_token and (operation.method.upper(), operation.path) in SKIP_WITH_TOKEN:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal sent, server_errors
                response = case.call(base_url=server.url, session=session, headers=headers)
                sent += 1
                if response.status_code >= 500:
                    server_errors += 1
                    fail("5xx", case, response)
                    return
                try:
                    case.validate_response(response, checks=[status_code_conformance])
                except (Failure, FailureGroup):  # collected and listed below
                    fail("undocumented status", case, response)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE, operation.path
    with capsys.disabled():
        print(
            f"\nfuzzed ({'with' if with_token else 'without'} a token): {sent} requests on "
            f"{len(operations)} operations, {server_errors} answered 5xx, "
            f"{sum(n for (what, *_), (n, _) in failures.items() if what != '5xx')} "
            "with an undocumented status"
        )
    assert sent >= len(operations) * 2
    listing = [
        f"{what}: {method} {path} answered {status} ({count}x), e.g. {example}"
        for (what, method, path, status), (count, example) in sorted(failures.items())
    ]
    assert not listing, f"{len(listing)} kinds of failure:\n" + "\n".join(listing)
