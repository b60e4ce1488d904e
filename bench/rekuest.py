"""rekuest: round trip of ``call`` to a trivial function on a local agent, embedded server.

One process: an :class:`~arkitekt_server.EmbeddedServer` (its own thread and loop), an agent
app serving ``echo`` (its own loop thread) and a caller app (its own loop thread). Cases, all in
one run, in interleaved rounds:

- ``raw HTTP``: one authenticated ``GET /lok/userinfo/`` with httpx (bearer header, keep-alive)
  to the same server: the reference;
- ``raw HTTP, no auth``: ``GET /health/`` (no token, no database): the floor of one request;
- ``acall x1``: one caller awaiting ``acall("echo", i)`` in a loop (async function on the agent);
- ``call x1 (sync)``: the blocking ``call`` from a plain thread (through the bridge), sync
  function on the agent (runs in a worker thread);
- ``acall x16``: sixteen concurrent callers on the caller app's loop.

Goals: p50 of ``acall x1`` under 3 raw requests; at least 1000 calls/s with 16.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from arkitekt import easy
from arkitekt.rekuest import Registry, acall, call
from arkitekt_server import EmbeddedServer, ServerSettings
from bench._harness import Case, fmt, print_table

ROUNDS = 5
CALLS = 300  # per round and case (x16: per caller: CALLS // 8)
CONCURRENCY = 16

registry = Registry()


@registry.register
async def echo(x: int) -> int:
    return x


@registry.register
def echo_sync(x: int) -> int:
    return x


async def _raw(client: httpx.AsyncClient, case: Case, n: int, path: str) -> None:
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        response = await client.get(path)
        case.latencies.append(time.perf_counter() - t)
        assert response.status_code == 200
    case.rates.append(n / (time.perf_counter() - start))


async def _sequential(case: Case, n: int) -> None:
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        assert await acall("echo", i) == i
        case.latencies.append(time.perf_counter() - t)
    case.rates.append(n / (time.perf_counter() - start))


def _sync(case: Case, n: int) -> None:
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        assert call("echo_sync", i) == i
        case.latencies.append(time.perf_counter() - t)
    case.rates.append(n / (time.perf_counter() - start))


async def _concurrent(case: Case, n: int) -> None:
    async def worker() -> None:
        for i in range(n):
            t = time.perf_counter()
            assert await acall("echo", i) == i
            case.latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(CONCURRENCY):
            tasks.start_soon(worker)
    case.rates.append(n * CONCURRENCY / (time.perf_counter() - start))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="arkitekt-bench-rekuest-") as tmp:
        settings = ServerSettings(
            port=0, data_dir=Path(tmp) / "server", auto_approve=True, log_level="error"
        )
        with EmbeddedServer(settings) as server:
            _run(server, Path(tmp))


def _run(server: EmbeddedServer, tmp: Path) -> None:
    options: dict[str, Any] = {"url": server.url, "headless": True, "cache_dir": tmp / "cache"}
    agent_app = easy("bench-rekuest-agent", **options)
    caller_app = easy("bench-rekuest-caller", **options)
    agent_app.rekuest.registry = registry
    names = ("raw HTTP", "raw HTTP, no auth", "acall x1", "call x1 (sync)", "acall x16")
    cases = {name: Case(name) for name in names}
    with agent_app:
        agent_app.app_slot.scope.bridge.call(agent_app.rekuest.astart)
        with caller_app:
            bridge = caller_app.app_slot.scope.bridge

            async def token() -> str:
                transport = await caller_app.rekuest._transport()
                return str(await transport.atoken())

            headers = {"Authorization": f"Bearer {bridge.call(token)}"}

            async def raw(case: Case, n: int, path: str = "/lok/userinfo/") -> None:
                async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
                    await client.get(path)  # connect outside the timing
                    await _raw(client, case, n, path)

            runners: dict[str, Callable[[Case, int], None]] = {
                "raw HTTP": lambda case, n: bridge.call(raw, case, n),
                "raw HTTP, no auth": lambda case, n: bridge.call(raw, case, n, "/health/"),
                "acall x1": lambda case, n: bridge.call(_sequential, case, n),
                "call x1 (sync)": _sync,
                "acall x16": lambda case, n: bridge.call(_concurrent, case, n // 8),
            }
            for runner in runners.values():  # warm up: connections, caches, lazy imports
                runner(Case("warmup"), 50)
            order = list(runners)
            for index in range(ROUNDS):
                shift = index % len(order)
                for name in order[shift:] + order[:shift]:
                    runners[name](cases[name], CALLS)
    raw_p50 = cases["raw HTTP"].p(0.5)
    rows = [
        [
            case.name,
            fmt(case.p(0.5), "ms"),
            fmt(case.p(0.99), "ms"),
            f"{statistics.median(case.rates):,.0f}",
            f"{case.p(0.5) / raw_p50:.2f}x",
        ]
        for case in cases.values()
    ]
    print_table(
        f"rekuest: call round trip through the embedded server ({ROUNDS} rounds x {CALLS} "
        "calls per case, interleaved)",
        ["case", "p50", "p99", "calls/s (median of rounds)", "p50 vs raw HTTP"],
        rows,
    )
    ratio = cases["acall x1"].p(0.5) / raw_p50
    floor = cases["acall x1"].p(0.5) / cases["raw HTTP, no auth"].p(0.5)
    rate = statistics.median(cases["acall x16"].rates)
    print(
        f"acall x1 p50 = {ratio:.2f}x raw authenticated HTTP (target < 3x: "
        f"{'met' if ratio < 3 else 'MISSED'}; {floor:.2f}x an unauthenticated GET); "
        f"acall x16 = {rate:,.0f} calls/s (target >= 1000: {'met' if rate >= 1000 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
