"""mikro: upload and read-back speed, and client memory while streaming a large dask array.

Cases, all in one run, in rotating order per round (the figures are medians over rounds):

- ``ndarray.tofile``: the raw array to a file, the disk's limit;
- ``direct zarr``: ``zarr.create_array(...)[:] = data`` with the codec and chunks mikro uses:
  level 0 alone, no pyramid and no OME metadata;
- ``from_xarray local`` / ``from_xarray http``: the full API call against an embedded server
  (grant, the OME-Zarr image with its pyramid, verification, image row), one per datalayer
  (for this shape 4 levels, 1024 x 2048 down to 128 x 256: 1.33x the bytes of level 0);
- ``local, levels=1``: ``from_xarray local`` storing level 0 alone (``levels=1``): the same
  array as ``direct zarr``, so its ratio is the API's own cost, the pyramid's left out;
- ``http, server process``: the http datalayer against ``arkitekt server`` in its own process,
  as deployed (the embedded server shares this process's GIL with the client's compression).

The array is a camera-like stack: Poisson noise (lambda = 100), uint16, shape
(2, 1, 64, 1024, 2048) = 512 MiB. Read-back compares ``get_image(id).data.values`` with a direct
zarr read of the same store, through each datalayer: ``local``, ``http`` against the embedded
server, and ``http, server process``. Peak RSS is measured in a child process (client only;
the server runs here) that uploads a 4 GiB dask-backed array.

Targets: the upload with its pyramid through ``local`` >= 0.8x direct zarr writing level 0 only
and through ``http`` (server in its own process) >= 0.8x, peak RSS < 1 GiB; read-back of level
0 through ``local`` >= 0.9x and ``http`` (server process) >= 0.6x of a direct zarr read.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._harness import print_table, whole_rounds

SHAPE = (2, 1, 64, 1024, 2048)
BIG_SHAPE = (2, 1, 256, 2048, 2048)  # 4 GiB of uint16
BIG_CHUNKS = (1, 1, 4, 2048, 2048)  # 32 MiB dask blocks
ROUNDS = 5
MIB = 1 << 20


def _camera_stack() -> Any:
    rng = np.random.default_rng(0)
    return rng.poisson(100, size=SHAPE).astype(np.uint16)


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _rss_child(url: str, cache: str, datalayer: str) -> None:
    """In a fresh process: upload a 4 GiB dask array, print the peak RSS as JSON.

    The peak is ``VmHWM`` of /proc/self/status (``ru_maxrss`` would include the parent's peak,
    which Linux carries over fork and exec).
    """

    import dask.array as da
    import xarray as xr

    from arkitekt import easy
    from arkitekt.mikro import delete_image, from_xarray

    def block(block_info: Any = None) -> Any:
        info = block_info[None]
        seed = abs(hash(tuple(info["chunk-location"])))
        return np.random.default_rng(seed).integers(80, 120, info["chunk-shape"], np.uint16)

    chunks = tuple((c,) * (s // c) for s, c in zip(BIG_SHAPE, BIG_CHUNKS, strict=True))
    lazy = da.map_blocks(block, dtype=np.uint16, chunks=chunks)
    app = easy("bench-mikro-rss", url=url, headless=True, cache_dir=cache)
    with app:
        from_xarray(xr.DataArray(np.zeros((4, 4), np.uint8), dims=["y", "x"]), name="warm-up")
        before = _hwm()
        start = time.perf_counter()
        image = from_xarray(
            xr.DataArray(lazy, dims=list("ctzyx")), name="4 GiB", datalayer=datalayer
        )
        elapsed = time.perf_counter() - start
        peak = _hwm()
        delete_image(image)
    print(json.dumps({"before": before, "peak": peak, "seconds": elapsed}))


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system, every thread) of this process, or of process ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure_rss(url: str, cache: Path, datalayer: str) -> dict[str, float]:
    code = f"from bench.mikro import _rss_child; _rss_child({url!r}, {str(cache)!r}, {datalayer!r})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def _server_process(data_dir: Path) -> Iterator[tuple[str, int]]:
    """``arkitekt server`` in its own process, as deployed (the in-process one shares our GIL).

    Yields its URL and process id.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "arkitekt._cli", "server", "--port", str(port),
        "--data-dir", str(data_dir), "--auto-approve",
    ]  # fmt: skip
    env = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "warning"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/health/", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server process did not start") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def main() -> None:
    import xarray as xr
    import zarr
    from zarr.storage import LocalStore

    from arkitekt import easy
    from arkitekt.mikro import delete_image, from_xarray, get_image
    from arkitekt.mikro._normalize import choose_chunks
    from arkitekt.mikro._upload import codec
    from arkitekt_server import EmbeddedServer, ServerSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-mikro-"))
    try:
        print("generating the 512 MiB Poisson stack ...", flush=True)
        data = _camera_stack()
        array = xr.DataArray(data, dims=list("ctzyx"))
        chunks = choose_chunks(SHAPE, 2)
        settings = ServerSettings(
            port=0, data_dir=tmp / "server", auto_approve=True, log_level="warning"
        )
        with (
            EmbeddedServer(settings) as server,
            _server_process(tmp / "apart") as (
                apart_url,
                apart_pid,
            ),
        ):
            app = easy("bench-mikro", url=server.url, headless=True, cache_dir=tmp / "cache")
            reader = easy(
                "bench-mikro-http", url=server.url, headless=True, cache_dir=tmp / "cache"
            )
            reader.mikro.datalayer = "http"
            remote = easy("bench-mikro-apart", url=apart_url, headless=True, cache_dir=tmp / "c2")
            remote.mikro.datalayer = "http"
            with app, reader, remote:
                warmup = xr.DataArray(np.zeros((4, 4), np.uint8), dims=["y", "x"])
                for each in (app, remote):
                    from_xarray(warmup, name="w", mikro=each.mikro)
                stored: dict[str, str] = {}

                def tofile() -> None:
                    data.tofile(tmp / "raw.bin")

                def direct() -> None:
                    target = zarr.create_array(
                        LocalStore(tmp / "direct.zarr"),
                        shape=SHAPE,
                        dtype="uint16",
                        chunks=chunks,
                        compressors=[codec(2)],
                        dimension_names=list("ctzyx"),
                        config={"write_empty_chunks": True},
                    )
                    target[:] = data

                def upload(datalayer: str, levels: int | None = None) -> Callable[[], None]:
                    def run() -> None:
                        image = from_xarray(
                            array,
                            name=f"bench {datalayer}",
                            datalayer=datalayer,
                            levels=levels,
                            mikro=app.mikro,
                        )
                        stored[datalayer if levels is None else f"{datalayer} {levels}"] = image.id

                    return run

                def forget(datalayer: str) -> Callable[[], None]:
                    def run() -> None:  # the previous round's image (untimed)
                        if datalayer in stored:
                            delete_image(stored.pop(datalayer), mikro=app.mikro)

                    return run

                apart: list[str] = []

                def upload_apart() -> None:
                    image = from_xarray(array, name="bench apart", mikro=remote.mikro)
                    apart.append(image.id)

                def forget_apart() -> None:
                    if apart:
                        delete_image(apart.pop(), mikro=remote.mikro)

                cases: dict[str, Callable[[], None]] = {
                    "ndarray.tofile": tofile,
                    "direct zarr": direct,
                    "from_xarray local": upload("local"),
                    "local, levels=1": upload("local", 1),
                    "from_xarray http": upload("http"),
                    "http, server process": upload_apart,
                }
                before = {
                    "direct zarr": lambda: shutil.rmtree(tmp / "direct.zarr", ignore_errors=True),
                    "from_xarray local": forget("local"),
                    "local, levels=1": forget("local 1"),
                    "from_xarray http": forget("http"),
                    "http, server process": forget_apart,
                }
                cpu: dict[str, list[tuple[float, float]]] = {}

                def counted(name: str, run: Callable[[], None]) -> Callable[[], None]:
                    def wrapped() -> None:  # CPU of this process and of the server process
                        own, apart = _cpu_seconds(), _cpu_seconds(apart_pid)
                        run()
                        used = (_cpu_seconds() - own, _cpu_seconds(apart_pid) - apart)
                        cpu.setdefault(name, []).append(used)

                    return wrapped

                cases = {name: counted(name, run) for name, run in cases.items()}
                times = whole_rounds(cases, ROUNDS, before)
                stored["http, server process"] = apart[0]
                apps = {"local": app, "http": reader, "http, server process": remote}
                reads = _read_back(apps, stored, tmp, get_image)
            print("measuring peak RSS of 4 GiB dask uploads (child processes) ...", flush=True)
            rss = {
                layer: _measure_rss(server.url, tmp / "cache", layer) for layer in ("local", "http")
            }
        _report(times, cpu, reads, rss, chunks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_back(
    apps: dict[str, Any], stored: dict[str, str], tmp: Path, get_image: Any
) -> dict[str, list[float]]:
    import zarr
    from zarr.storage import LocalStore

    sink: list[Any] = []

    def direct() -> None:
        sink.append(zarr.open_array(LocalStore(tmp / "direct.zarr", read_only=True), mode="r")[:])
        sink.clear()

    def via(datalayer: str) -> Callable[[], None]:
        def run() -> None:  # each app reads through its own datalayer
            image = get_image(stored[datalayer], mikro=apps[datalayer].mikro)
            sink.append(image.data.values)
            sink.clear()

        return run

    cases = {"direct zarr read": direct}
    cases.update({f"get_image {datalayer}": via(datalayer) for datalayer in apps})
    return whole_rounds(cases, ROUNDS)


def _ratio(times: dict[str, list[float]], name: str, reference: str = "direct zarr") -> float:
    """Median over rounds of ``reference / name`` (speed relative to the reference)."""
    pairs = zip(times[reference], times[name], strict=True)
    return _median([ref / value for ref, value in pairs])


def _report(
    times: dict[str, list[float]],
    cpu: dict[str, list[tuple[float, float]]],
    reads: dict[str, list[float]],
    rss: dict[str, dict[str, float]],
    chunks: tuple[int, ...],
) -> None:
    size = int(np.prod(SHAPE)) * 2
    rows = []
    for name, samples in times.items():
        seconds = _median(samples)
        rows.append(
            [
                name,
                f"{seconds:.2f} s",
                f"{size / seconds / MIB:,.0f} MiB/s",
                f"{_ratio(times, name):.2f}x",
            ]
        )
    print_table(
        f"upload of {size // MIB} MiB uint16 {SHAPE}, chunks {chunks}, medians of {ROUNDS} rounds",
        ["case", "time", "throughput", "vs direct zarr (median of rounds)"],
        rows,
    )
    rows = []
    for name, counted in cpu.items():
        used = counted[1:]  # the first round warms up, as in the times
        own, apart = _median([pair[0] for pair in used]), _median([pair[1] for pair in used])
        cores = (own + apart) / _median(times[name])
        rows.append(
            [name, f"{own:.2f} s", f"{apart:.2f} s", f"{(own + apart) / 2:.2f} s", f"{cores:.1f}"]
        )
    print_table(
        f"CPU per upload (medians): {os.cpu_count()} cores bound the time from below",
        ["case", "this process", "server process", "CPU / 2 cores", "cores busy"],
        rows,
    )
    rows = [
        [
            name,
            f"{_median(samples):.2f} s",
            f"{size / _median(samples) / MIB:,.0f} MiB/s",
            f"{_ratio(reads, name, 'direct zarr read'):.2f}x",
        ]
        for name, samples in reads.items()
    ]
    print_table("read back of the whole array", ["case", "time", "throughput", "vs direct"], rows)
    rows = [
        [
            f"from_xarray {layer}",
            f"{result['seconds']:.1f} s",
            f"{result['before'] / MIB:,.0f} MiB",
            f"{result['peak'] / MIB:,.0f} MiB",
        ]
        for layer, result in rss.items()
    ]
    print_table(
        f"4 GiB dask-backed upload {BIG_SHAPE}, blocks {BIG_CHUNKS} (client process)",
        ["case", "time", "RSS before", "peak RSS"],
        rows,
    )
    local = _ratio(times, "from_xarray local")
    http = _ratio(times, "from_xarray http")
    apart = _ratio(times, "http, server process")
    peak = max(result["peak"] for result in rss.values()) / MIB
    read_local = _ratio(reads, "get_image local", "direct zarr read")
    read_apart = _ratio(reads, "get_image http, server process", "direct zarr read")

    def verdict(ratio: float, target: float) -> str:
        return f"{ratio:.2f}x (>= {target}x) {'ok' if ratio >= target else 'MISSED'}"

    print(
        f"\ngoals: upload local with the pyramid {verdict(local, 0.8)}; http {http:.2f}x "
        f"in-process, server process {verdict(apart, 0.8)}; "
        f"peak RSS {peak:,.0f} MiB (< 1024 MiB) {'ok' if peak < 1024 else 'MISSED'}; "
        f"read-back local {verdict(read_local, 0.9)}, "
        f"http server process {verdict(read_apart, 0.6)}"
    )


if __name__ == "__main__":
    main()
