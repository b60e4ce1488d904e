"""Shared timing helpers: interleaved rounds, robust statistics, a small table printer.

The benchmark machine is small (2 cores) and noisy: the speed of one loop can change by 2x from
one second to the next. So each benchmark runs its cases in *interleaved* rounds (A, B, C, then
B, C, A, ...): a slow patch hits every case alike, and the figures to trust are the median
and the minimum over rounds, and ratios taken within one round.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Case",
    "Runner",
    "Samples",
    "added",
    "fmt",
    "interleaved",
    "paired_median",
    "print_table",
    "ratio",
    "whole_rounds",
]

# Runs ``n`` calls of the thing measured (with its own tight loop) and returns nothing.
Runner = Callable[[int], None]


class Case:
    """Latencies (seconds per call) and rates (calls per second, one per round) of one case
    measured call by call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.rates: list[float] = []

    def p(self, q: float) -> float:
        """The ``q`` quantile of the latencies (0.5: the median)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Samples:
    """Seconds per call of one case, one value per round."""

    name: str
    per_call: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)

    @property
    def min(self) -> float:
        return min(self.per_call)


def interleaved(
    cases: Mapping[str, Runner], *, calls: int, rounds: int, warmup: int = 1
) -> dict[str, Samples]:
    """Time every case ``rounds`` times, rotating the order each round.

    Args:
        cases: name -> runner; a runner makes ``n`` calls when called with ``n``.
        calls: calls per case per round.
        rounds: rounds to keep (after ``warmup`` rounds that are thrown away).
        warmup: rounds run first and discarded (caches, lazy singletons, branch predictors).

    Returns:
        name -> per-call seconds of every kept round, in the order of ``cases``.

    """
    names = list(cases)
    results = {name: Samples(name) for name in names}
    gc_was_enabled = gc.isenabled()
    try:
        for index in range(warmup + rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                cases[name](calls)
                elapsed = time.perf_counter() - start
                gc.enable()
                if index >= warmup:
                    results[name].per_call.append(elapsed / calls)
    finally:
        if gc_was_enabled:
            gc.enable()
        else:
            gc.disable()
    return results


def paired_median(
    results: Mapping[str, Samples], combine: Callable[[Mapping[str, float]], float]
) -> float:
    """Median over rounds of ``combine(values of that round)``: ratios robust to drift."""
    rounds = len(next(iter(results.values())).per_call)
    values = [
        combine({name: samples.per_call[i] for name, samples in results.items()})
        for i in range(rounds)
    ]
    return statistics.median(values)


def ratio(results: Mapping[str, Samples], name: str, reference: str) -> float:
    """Median over rounds of ``name / reference`` (paired within each round)."""
    return paired_median(results, lambda r: r[name] / r[reference])


def added(results: Mapping[str, Samples], name: str, reference: str) -> float:
    """Median over rounds of ``name - reference``: the time ``name`` adds per call."""
    return paired_median(results, lambda r: r[name] - r[reference])


def fmt(seconds: float, unit: str = "us") -> str:
    """Format a duration in ``ns``, ``us`` or ``ms``."""
    scale = {"ns": 1e9, "us": 1e6, "ms": 1e3}[unit]
    value = seconds * scale
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a small left/right aligned text table under a title."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [str(first).ljust(widths[0])]
            + [str(cell).rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        )

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))


def whole_rounds(
    cases: Mapping[str, Callable[[], None]],
    rounds: int,
    before: Mapping[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each case (one whole operation each), ``rounds`` times, rotating the order.

    A first round warms up (page cache, imports, lazy singletons) and is dropped. The disks
    are synced before each case (untimed): else the writeback of what one case wrote lands on
    whichever case runs when the kernel starts flushing. ``before[name]``, when given, runs
    untimed before each run of case ``name`` (e.g. removing what its previous run stored).
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds + 1):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            if before and name in before:
                before[name]()
            os.sync()
            start = time.perf_counter()
            cases[name]()
            if index:
                times[name].append(time.perf_counter() - start)
    return times
