"""App lifecycle: declare an app, open it, close it, with no service used.

Cases, all in one run, interleaved:

- ``anyio portal start/stop``: ``with anyio.from_thread.start_blocking_portal(): pass``: an
  event loop started in a thread and stopped again, the floor of any sync ``with app:``;
- ``easy() + with app:``: ``with easy("bench", url=...): pass``: settings loaded, container
  built, scope opened on a new loop thread and closed;
- ``easy() only`` and ``with app: (app built once)`` split that total in its two parts.

No target: the ratio is reported.
"""

from __future__ import annotations

from itertools import repeat

import anyio.from_thread

from arkitekt import easy
from bench._harness import Runner, fmt, interleaved, print_table, ratio

CALLS = 10
ROUNDS = 15
URL = "http://127.0.0.1:9"  # never contacted: no service is used


def main() -> None:
    def portal(n: int) -> None:
        for _ in repeat(None, n):
            with anyio.from_thread.start_blocking_portal():
                pass

    def full(n: int) -> None:
        for _ in repeat(None, n):
            with easy("bench", url=URL):
                pass

    def declare(n: int) -> None:
        for _ in repeat(None, n):
            easy("bench", url=URL)

    app = easy("bench", url=URL)

    def enter_exit(n: int) -> None:
        for _ in repeat(None, n):
            with app:
                pass

    cases: dict[str, Runner] = {
        "anyio portal start/stop": portal,
        "easy() + with app:": full,
        "easy() only": declare,
        "with app: (app built once)": enter_exit,
    }
    results = interleaved(cases, calls=CALLS, rounds=ROUNDS)

    floor = results["anyio portal start/stop"]
    rows = []
    for name, samples in results.items():
        factor = ratio(results, name, "anyio portal start/stop")
        rows.append(
            [
                name,
                fmt(samples.median, "ms"),
                fmt(samples.min, "ms"),
                f"{factor:.2f}x",
                f"{samples.min / floor.min:.2f}x",
            ]
        )
    print_table(
        f"lifecycle: declare + open + close an app ({ROUNDS} rounds x {CALLS} cycles, interleaved)",
        ["case", "median/cycle", "min/cycle", "vs portal (median of rounds)", "vs portal (mins)"],
        rows,
    )
    total = ratio(results, "easy() + with app:", "anyio portal start/stop")
    print(f"easy() + enter + exit costs {total:.2f}x a bare anyio portal start/stop")


if __name__ == "__main__":
    main()
