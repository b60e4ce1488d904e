"""Time from ``with app:`` to the first authenticated call, cold and warm.

Cases, all in one run against one embedded server on loopback, interleaved:

- ``raw httpx GET``: a new ``httpx.Client`` and one GET of ``/health/`` (the floor: one
  connection, one request);
- ``raw GET, client reused``: one GET on an open connection (no client or TLS context setup);
- ``warm``: ``with app: whoami()`` with the claim token cached: claim, token exchange and the
  authenticated call;
- ``cold``: the same with an empty cache: discovery, device code (auto-approved), challenge,
  claim, token exchange and the authenticated call.

``easy()`` is built outside the timed region; the loop thread's start and stop are inside.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from itertools import count, repeat
from pathlib import Path

import httpx

from arkitekt import easy, whoami
from arkitekt_server import EmbeddedServer, ServerSettings
from bench._harness import Runner, fmt, interleaved, print_table, ratio

CALLS = 5
ROUNDS = 7


def main() -> None:
    logging.getLogger("arkitekt_server").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = ServerSettings(
            port=0, data_dir=root / "server", auto_approve=True, log_level="error"
        )
        with EmbeddedServer(settings) as server:
            _run(server, root)


def _run(server: EmbeddedServer, root: Path) -> None:
    fresh = count()
    warm_cache = root / "warm"
    with easy("bench-warm", url=server.url, headless=True, cache_dir=warm_cache):
        whoami()  # approve once; the warm case reuses it

    def raw(n: int) -> None:
        for _ in repeat(None, n):
            with httpx.Client() as client:
                client.get(server.url + "/health/").raise_for_status()

    reused = httpx.Client()

    def raw_reused(n: int) -> None:
        for _ in repeat(None, n):
            reused.get(server.url + "/health/").raise_for_status()

    def warm(n: int) -> None:
        apps = [easy("bench-warm", url=server.url, headless=True, cache_dir=warm_cache)]
        apps *= n
        for app in apps:
            with app:
                whoami()

    def cold(n: int) -> None:
        apps = [
            easy("bench-cold", url=server.url, headless=True, cache_dir=root / f"c{next(fresh)}")
            for _ in range(n)
        ]
        for app in apps:
            with app:
                whoami()

    cases: dict[str, Runner] = {
        "raw httpx GET": raw,
        "raw GET, client reused": raw_reused,
        "warm (cached token)": warm,
        "cold": cold,
    }
    with contextlib.redirect_stderr(io.StringIO()):  # the printed approval links
        results = interleaved(cases, calls=CALLS, rounds=ROUNDS)
    reused.close()
    rows = [
        [
            name,
            fmt(s.median, "ms"),
            fmt(s.min, "ms"),
            f"{ratio(results, name, 'raw httpx GET'):.2f}x",
        ]
        for name, s in results.items()
    ]
    print_table(
        "fakts: `with app:` to the first authenticated call",
        ["case", "median", "min", "x raw GET"],
        rows,
    )
