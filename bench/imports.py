"""Import cost: how long a fresh process takes to import arkitekt, and to print the CLI's help.

Cases, each a fresh interpreter (wall time of the whole process, startup included), all in
one run, in rotating order per round (the figures are medians over rounds):

- ``import httpx``: the reference (an HTTP client library of similar scope);
- ``import arkitekt``, ``from arkitekt import easy``, ``import arkitekt.mikro``;
- ``easy('x')``: an app built (what a script pays before its first call; no target);
- ``arkitekt --help``: the console script.

Measured in two environments:

- a library-only install (``pip install -e .`` without extras, as app authors install it; then
  dependency-injector does not import FastAPI): a venv built once in ``.venv-bench-lib/``
  (ignored by git) and reused while ``pyproject.toml`` is unchanged. If it cannot be built
  (no package index), the dev venv stands in and the output says so;
- the dev venv running this benchmark (server extra and test tools installed), importing this
  checkout's ``src``.

Goals (library-only install): ``import arkitekt`` <= 1.5x ``import httpx``,
``arkitekt --help`` <= 2x.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from itertools import repeat
from pathlib import Path

from bench._harness import Runner, Samples, fmt, interleaved, print_table, ratio

ROUNDS = 11
ROOT = Path(__file__).resolve().parents[1]
LIB_VENV = ROOT / ".venv-bench-lib"
REFERENCE = "import httpx"
CASES = {
    REFERENCE: ["-c", "import httpx"],
    "import arkitekt": ["-c", "import arkitekt"],
    "from arkitekt import easy": ["-c", "from arkitekt import easy"],
    "import arkitekt.mikro": ["-c", "import arkitekt.mikro"],
    # What a script pays before its first call: building the app imports the container,
    # dependency-injector, the settings and the services (no array library yet).
    "easy('x') (app built)": ["-c", "from arkitekt import easy; easy('x')"],
    "arkitekt --help": ["--help"],  # run by the venv's console script, not by python -c
}
TARGETS = {"import arkitekt": 1.5, "arkitekt --help": 2.0}


def _stamp() -> str:
    """What the library venv was built from: the project's dependencies and Python."""
    text = (ROOT / "pyproject.toml").read_bytes() + sys.version.encode()
    return hashlib.sha256(text).hexdigest()


def _library_venv() -> tuple[Path | None, str]:
    """The library-only venv's python (built once), or ``None`` and why it is missing."""
    python = LIB_VENV / "bin" / "python"
    stamp = LIB_VENV / ".bench-stamp"
    if python.exists() and stamp.exists() and stamp.read_text() == _stamp():
        return python, "reused"
    shutil.rmtree(LIB_VENV, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LIB_VENV)], check=True, timeout=300)
        (LIB_VENV / ".gitignore").write_text("*\n")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e",
             str(ROOT)],
            check=True, timeout=900, capture_output=True, text=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        shutil.rmtree(LIB_VENV, ignore_errors=True)
        said = getattr(error, "stderr", None) or str(error)
        return None, said.strip().splitlines()[-1] if said.strip() else type(error).__name__
    stamp.write_text(_stamp())
    return python, "built"


def _runner(python: Path | str, args: list[str], env: dict[str, str]) -> Runner:
    program = Path(python).parent / "arkitekt" if args[0] == "--help" else Path(python)
    command = [str(program), *args]

    def run(n: int) -> None:
        for _ in repeat(None, n):
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=60)

    return run


def _environments() -> dict[str, tuple[Path | str, dict[str, str]]]:
    """Name -> (python, environment) of each environment measured."""
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    dev_env = {**clean, "PYTHONPATH": str(ROOT / "src")}
    library, how = _library_venv()
    if library is None:
        print(f"library-only venv unavailable ({how}); the dev venv stands in for it")
        return {"dev venv": (sys.executable, dev_env)}
    print(f"library-only venv: {LIB_VENV.relative_to(ROOT)} ({how}; pip install -e . , no extras)")
    return {"library only": (library, clean), "dev venv": (sys.executable, dev_env)}


def main() -> None:
    environments = _environments()
    cases: dict[str, Runner] = {}
    for where, (python, env) in environments.items():
        for name, args in CASES.items():
            cases[f"{where}: {name}"] = _runner(python, args, env)
    results = interleaved(cases, calls=1, rounds=ROUNDS)

    for where in environments:
        mine: dict[str, Samples] = {name: results[f"{where}: {name}"] for name in CASES}
        rows = []
        for name, samples in mine.items():
            target = TARGETS.get(name)
            rows.append(
                [
                    name,
                    fmt(samples.median, "ms"),
                    fmt(samples.min, "ms"),
                    f"{ratio(mine, name, REFERENCE):.2f}x",
                    "" if target is None else f"<= {target:g}x",
                ]
            )
        print_table(
            f"imports, {where}: a fresh process each ({ROUNDS} rounds, interleaved)",
            ["case", "median", "min", "vs import httpx (median of rounds)", "target"],
            rows,
        )
        for name, target in TARGETS.items():
            factor = ratio(mine, name, REFERENCE)
            verdict = "met" if factor <= target else "NOT met"
            print(
                f"{where}: {name} costs {factor:.2f}x import httpx (target {target:g}x: {verdict})"
            )


if __name__ == "__main__":
    main()
