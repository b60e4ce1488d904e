"""rekuest across replicas: agent and caller on two ``arkitekt server`` replicas on PostgreSQL,
against both on the single-process SQLite server.

Three server processes (``arkitekt server``, auto-approving, on loopback): one on SQLite, and
two replicas sharing one PostgreSQL database (``$ARKITEKT_TEST_POSTGRES_URL``, or a throwaway
cluster of ``tests.services``). This process holds the apps (each on its own loop thread): an
agent serving ``echo`` and a caller, once on the SQLite server, once with the agent on replica
B and the caller on replica A. Cases, all in one run, in interleaved rounds:

- ``raw HTTP (sqlite)``, ``raw HTTP (replica A)``: one authenticated ``GET /lok/userinfo/``
  (bearer header, keep-alive): the reference of each;
- ``sqlite: acall x1`` / ``x16``: one caller awaiting ``acall`` in a loop / sixteen at once;
- ``replicas: acall x1`` / ``x16``: the same, the agent on the other replica.

Goals: replicas p50 at most 3x one raw authenticated GET; at least 1,000 calls/s
with 16 callers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx

from arkitekt import App, easy
from arkitekt.rekuest import Registry, acall
from bench._harness import Case, fmt, print_table

ROUNDS = 5
CALLS = 300  # per round and case (x16: per caller: CALLS // 8)
CONCURRENCY = 16

registry = Registry()


@registry.register
async def echo(x: int) -> int:
    return x


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """``arkitekt server`` in its own process; yields its URL, stops it at the end."""
    port = _free_port()
    command = [
        sys.executable, "-m", "arkitekt._cli", "server", "--port", str(port),
        "--data-dir", str(data_dir), "--auto-approve",
    ]  # fmt: skip
    full = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "error", **env}
    process = subprocess.Popen(command, env=full, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/.well-known/fakts", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server on port {port} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A fresh database (asyncpg URL) on ``$ARKITEKT_TEST_POSTGRES_URL`` or a cluster of our own."""
    from tests.services import postgres_admin, postgres_database

    with postgres_admin() as admin, postgres_database(admin, "bench_replicas") as url:
        yield url


async def _raw(client: httpx.AsyncClient, case: Case, n: int) -> None:
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        response = await client.get("/lok/userinfo/")
        case.latencies.append(time.perf_counter() - t)
        assert response.status_code == 200
    case.rates.append(n / (time.perf_counter() - start))


async def _sequential(app: App, case: Case, n: int) -> None:
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        assert await acall("echo", i, rekuest=app.rekuest) == i
        case.latencies.append(time.perf_counter() - t)
    case.rates.append(n / (time.perf_counter() - start))


async def _concurrent(app: App, case: Case, n: int) -> None:
    async def worker() -> None:
        for i in range(n):
            t = time.perf_counter()
            assert await acall("echo", i, rekuest=app.rekuest) == i
            case.latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(CONCURRENCY):
            tasks.start_soon(worker)
    case.rates.append(n * CONCURRENCY / (time.perf_counter() - start))


def main(rounds: int = ROUNDS, calls: int = CALLS) -> None:
    with tempfile.TemporaryDirectory(prefix="arkitekt-bench-replicas-") as tmp, _postgres() as db:
        root = Path(tmp)
        replica_env = {"ARKITEKT_SERVER_DATABASE_URL": db}
        with (
            _server(root / "sqlite", {}) as single,
            _server(root / "a", replica_env) as front,
            _server(root / "b", replica_env) as back,
        ):
            _run(root, single, front, back, rounds, calls)


def _apps(root: Path, name: str, agent_url: str, caller_url: str) -> tuple[App, App]:
    agent = easy(f"bench-{name}-agent", url=agent_url, headless=True, cache_dir=root / "cache")
    caller = easy(f"bench-{name}-caller", url=caller_url, headless=True, cache_dir=root / "cache")
    agent.rekuest.registry = registry
    return agent, caller


def _run(root: Path, single: str, front: str, back: str, rounds: int, calls: int) -> None:
    pairs = {
        "sqlite": _apps(root, "sqlite", single, single),
        "replicas": _apps(root, "rp", back, front),
    }
    names = [
        "raw HTTP (sqlite)",
        "sqlite: acall x1",
        "sqlite: acall x16",
        "raw HTTP (replica A)",
        "replicas: acall x1",
        "replicas: acall x16",
    ]
    cases = {name: Case(name) for name in names}
    with contextlib.ExitStack() as stack:
        for agent, caller in pairs.values():
            stack.enter_context(agent)
            agent.app_slot.scope.bridge.call(agent.rekuest.astart)
            stack.enter_context(caller)
        runners: dict[str, Callable[[Case, int], None]] = {}
        for kind, (_, caller) in pairs.items():
            bridge = caller.app_slot.scope.bridge
            url = single if kind == "sqlite" else front

            async def token(caller: App = caller) -> str:
                transport = await caller.rekuest._transport()
                return str(await transport.atoken())

            headers = {"Authorization": f"Bearer {bridge.call(token)}"}

            async def raw(case: Case, n: int, url: str = url, headers: Any = headers) -> None:
                async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                    await client.get("/lok/userinfo/")  # connect outside the timing
                    await _raw(client, case, n)

            label = "sqlite" if kind == "sqlite" else "replica A"
            runners[f"raw HTTP ({label})"] = lambda c, n, b=bridge, r=raw: b.call(r, c, n)
            runners[f"{kind}: acall x1"] = lambda c, n, b=bridge, a=caller: b.call(
                _sequential, a, c, n
            )
            runners[f"{kind}: acall x16"] = lambda c, n, b=bridge, a=caller: b.call(
                _concurrent, a, c, max(1, n // 8)
            )
        for runner in runners.values():  # warm up: connections, caches, lazy imports
            runner(Case("warmup"), 50)
        order = names
        for index in range(rounds):
            shift = index % len(order)
            for name in order[shift:] + order[:shift]:
                runners[name](cases[name], calls)
    _report(cases, rounds, calls)


def _report(cases: dict[str, Case], rounds: int, calls: int) -> None:
    reference = {
        "sqlite": cases["raw HTTP (sqlite)"].p(0.5),
        "replicas": cases["raw HTTP (replica A)"].p(0.5),
    }
    rows = []
    for case in cases.values():
        raw_p50 = reference["sqlite" if "sqlite" in case.name else "replicas"]
        rows.append(
            [
                case.name,
                fmt(case.p(0.5), "ms"),
                fmt(case.p(0.99), "ms"),
                f"{statistics.median(case.rates):,.0f}",
                f"{case.p(0.5) / raw_p50:.2f}x",
            ]
        )
    print_table(
        f"rekuest across replicas (PostgreSQL) vs one SQLite server ({rounds} rounds x {calls} "
        "calls per case, interleaved)",
        ["case", "p50", "p99", "calls/s (median of rounds)", "p50 vs raw HTTP"],
        rows,
    )
    ratio = cases["replicas: acall x1"].p(0.5) / reference["replicas"]
    rate = statistics.median(cases["replicas: acall x16"].rates)
    single = statistics.median(cases["sqlite: acall x16"].rates)
    print(
        f"replicas: acall x1 p50 = {ratio:.2f}x raw authenticated HTTP (target <= 3x: "
        f"{'met' if ratio <= 3 else 'MISSED'}); acall x16 = {rate:,.0f} calls/s (target >= "
        f"1000: {'met' if rate >= 1000 else 'MISSED'}; {rate / single:.2f}x the SQLite server)"
    )


if __name__ == "__main__":
    main()
