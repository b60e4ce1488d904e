"""Sync bridge: one blocking call of a trivial coroutine on a loop running in another thread.

Cases, all in one run, interleaved:

- ``arkitekt syncify``: the blocking twin built by :func:`arkitekt.syncify`, called inside
  ``with app:`` (what every sync API function does);
- ``arkitekt Bridge.call``: the app scope's :class:`~arkitekt._bridge.Bridge` called directly;
- ``raw asyncio``: ``asyncio.run_coroutine_threadsafe(coro, loop).result()`` on a plain
  asyncio loop in a thread: the floor;
- ``koil unkoil``: koil's bridge (what the public Arkitekt client uses), inside ``with Koil():``.

Target: arkitekt's twin at most 1.0x the raw floor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat

from koil import Koil, unkoil

from arkitekt import easy
from arkitekt.extension import current_scope, syncify
from bench._harness import Runner, fmt, interleaved, print_table, ratio

CALLS = 500
ROUNDS = 21
TARGET = 1.0


async def anoop() -> int:
    return 1


noop = syncify(anoop)


@contextmanager
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """A plain asyncio loop running forever in a daemon thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-raw-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def main() -> None:
    app = easy("bench", url="http://127.0.0.1:9")  # no service is used: nothing is contacted
    with loop_thread() as loop, app, Koil(uvify=False):
        bridge = current_scope().bridge

        def ours(n: int) -> None:
            for _ in repeat(None, n):
                noop()

        def ours_direct(n: int) -> None:
            call = bridge.call
            for _ in repeat(None, n):
                call(anoop)

        def raw(n: int) -> None:
            submit = asyncio.run_coroutine_threadsafe
            for _ in repeat(None, n):
                submit(anoop(), loop).result()

        def koil(n: int) -> None:
            for _ in repeat(None, n):
                unkoil(anoop)

        cases: dict[str, Runner] = {
            "arkitekt syncify": ours,
            "arkitekt Bridge.call": ours_direct,
            "raw asyncio": raw,
            "koil unkoil": koil,
        }
        assert noop() == bridge.call(anoop) == unkoil(anoop) == 1
        results = interleaved(cases, calls=CALLS, rounds=ROUNDS)

    floor = results["raw asyncio"]
    rows = []
    for name, samples in results.items():
        factor = ratio(results, name, "raw asyncio")
        rows.append(
            [
                name,
                fmt(samples.median, "us"),
                fmt(samples.min, "us"),
                f"{factor:.2f}x",
                f"{samples.min / floor.min:.2f}x",
            ]
        )
    print_table(
        f"bridge: sync call of a trivial coroutine ({ROUNDS} rounds x {CALLS} calls, interleaved)",
        ["case", "median/call", "min/call", "vs raw (median of rounds)", "vs raw (mins)"],
        rows,
    )
    ours_ratio = ratio(results, "arkitekt syncify", "raw asyncio")
    koil_ratio = ratio(results, "koil unkoil", "raw asyncio")
    verdict = "met" if ours_ratio <= TARGET else "MISSED"
    print(
        f"ours/raw {ours_ratio:.2f}x, koil/raw {koil_ratio:.2f}x; "
        f"target ours <= {TARGET:.1f}x raw: {verdict}"
    )


if __name__ == "__main__":
    main()
