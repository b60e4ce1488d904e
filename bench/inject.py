"""Injection: what ``@inject`` adds to a call that receives one service.

Cases, all in one run, interleaved, all called from the thread that opened ``with app:``:

- ``plain (argument)``: the same function, the service passed as an argument: the floor;
- ``arkitekt @inject``: ``mikro: Mikro = Provide("mikro")`` filled from the active app;
- ``dependency-injector @inject``: its own ``@inject`` + ``Provide[Container.mikro]`` after
  ``container.wire()``, with a ``Singleton`` provider (like the app's ``mikro``).

Targets: under 1 us added per call, and at least 2.5x less added than dependency-injector.
"""

from __future__ import annotations

import sys
from itertools import repeat

from dependency_injector import containers, providers
from dependency_injector.wiring import Provide as DIProvide
from dependency_injector.wiring import inject as di_inject

from arkitekt import Provide, easy, inject
from arkitekt.mikro import Mikro
from bench._harness import Runner, added, fmt, interleaved, paired_median, print_table

CALLS = 20_000
ROUNDS = 21
TARGET_ADDED = 1e-6
TARGET_FACTOR = 2.5


class FakeMikro:
    """The service the dependency-injector container provides."""


class DIContainer(containers.DeclarativeContainer):
    mikro = providers.Singleton(FakeMikro)


def plain(x: int, mikro: object) -> object:
    return mikro


@inject
def ours(x: int, mikro: Mikro = Provide("mikro")) -> object:
    return mikro


@di_inject
def theirs(x: int, mikro: FakeMikro = DIProvide[DIContainer.mikro]) -> object:
    return mikro


def main() -> None:
    app = easy("bench", url="http://127.0.0.1:9")  # no service call: nothing is contacted
    container = DIContainer()
    container.wire(modules=[sys.modules[__name__]])
    try:
        with app:
            service = app.mikro

            def run_plain(n: int) -> None:
                for _ in repeat(None, n):
                    plain(1, service)

            def run_ours(n: int) -> None:
                for _ in repeat(None, n):
                    ours(1)

            def run_theirs(n: int) -> None:
                for _ in repeat(None, n):
                    theirs(1)

            assert ours(1) is service
            assert isinstance(theirs(1), FakeMikro)
            cases: dict[str, Runner] = {
                "plain (argument)": run_plain,
                "arkitekt @inject": run_ours,
                "dependency-injector @inject": run_theirs,
            }
            results = interleaved(cases, calls=CALLS, rounds=ROUNDS)
    finally:
        container.unwire()

    floor = results["plain (argument)"]
    rows = []
    for name, samples in results.items():
        extra = added(results, name, "plain (argument)")
        rows.append(
            [
                name,
                fmt(samples.median, "ns"),
                fmt(samples.min, "ns"),
                fmt(extra, "ns"),
                fmt(samples.min - floor.min, "ns"),
            ]
        )
    print_table(
        f"inject: a call receiving one service ({ROUNDS} rounds x {CALLS} calls, interleaved)",
        ["case", "median/call", "min/call", "added (median of rounds)", "added (mins)"],
        rows,
    )
    added_ours = added(results, "arkitekt @inject", "plain (argument)")
    factor = paired_median(
        results,
        lambda r: (
            (r["dependency-injector @inject"] - r["plain (argument)"])
            / (r["arkitekt @inject"] - r["plain (argument)"])
        ),
    )
    factor_mins = (results["dependency-injector @inject"].min - floor.min) / (
        results["arkitekt @inject"].min - floor.min
    )
    verdict = "met" if added_ours < TARGET_ADDED and factor >= TARGET_FACTOR else "MISSED"
    print(
        f"arkitekt adds {fmt(added_ours, 'ns')} per call; dependency-injector adds "
        f"{factor:.2f}x as much (mins: {factor_mins:.2f}x); "
        f"target < {fmt(TARGET_ADDED, 'ns')} and >= {TARGET_FACTOR}x: {verdict}"
    )


if __name__ == "__main__":
    main()
