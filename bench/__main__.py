"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench bridge inject`` (some)."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

# Each module exposes ``main() -> None`` and prints its own table.
MODULES: tuple[str, ...] = (
    "bench.bridge",
    "bench.inject",
    "bench.lifecycle",
    "bench.fakts",
    "bench.mikro",
    "bench.files",
    "bench.s3",
    "bench.search",
    "bench.rekuest",
    "bench.replicas",
    "bench.imports",
)


def _select(names: list[str]) -> list[str]:
    if not names:
        return list(MODULES)
    known = {module.rsplit(".", 1)[-1]: module for module in MODULES}
    unknown = [name for name in names if name.removeprefix("bench.") not in known]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from: {', '.join(known)}"
        )
    return [known[name.removeprefix("bench.")] for name in names]


def main(argv: list[str]) -> None:
    selected = _select(argv)
    print(
        f"arkitekt benchmarks: Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; "
        "ratios compare cases of the same run only"
    )
    for module_name in selected:
        start = time.perf_counter()
        importlib.import_module(module_name).main()
        print(f"({module_name}: {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
