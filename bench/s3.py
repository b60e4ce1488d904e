"""mikro's s3 datalayer: upload and read-back speed against zarr writing to the same endpoint.

Cases, in rotating order per round (figures are medians over rounds):

- ``direct zarr``: ``zarr.create_array(ObjectStore(S3Store(...)))[:] = data`` with the codec
  and chunks mikro uses, straight to the bucket with the server's own key;
- ``from_xarray s3``: the full API call against an embedded server whose images live in the
  same bucket (grant with STS credentials scoped to the image, the client's zarr v3 write into
  the bucket, verification in the bucket, image row); it writes the pyramid too (for this
  shape 1.33x the bytes of level 0);
- ``from_xarray s3, levels=1``: the same storing level 0 alone (``levels=1``): the same
  array as ``direct zarr``, so the ratio is the datalayer's own cost.

Read back: ``get_image(id).data.values`` (read-only scoped credentials) against a direct zarr
read of the direct store. Same codec, chunks and endpoint for both; the ratio is measured in
this run.

The S3 endpoint is ``$ARKITEKT_BENCH_S3_ENDPOINT`` (e.g. MinIO; with
``$ARKITEKT_BENCH_S3_KEY`` and ``$ARKITEKT_BENCH_S3_SECRET``), else moto's server in a child
process on loopback (slow, but the same for both cases). ``$ARKITEKT_BENCH_S3_MIB`` sets the
array size (default 512).

Goals: upload of the same array (``levels=1``) >= 0.9x direct zarr, read back
>= 0.9x.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._harness import print_table, whole_rounds
from bench.mikro import ROUNDS, _median, _ratio

MIB = 1 << 20


def _shape() -> tuple[int, int, int, int, int]:
    mib = int(os.environ.get("ARKITEKT_BENCH_S3_MIB", "512"))
    planes = max(1, mib * MIB // (1024 * 2048 * 2 * 2))  # 2 channels of 1024 x 2048 uint16
    return (2, 1, planes, 1024, 2048)


@contextlib.contextmanager
def _endpoint() -> Iterator[tuple[str, str, str]]:
    """The S3 endpoint and a key for it: the given one, or moto's server in a child process."""
    given = os.environ.get("ARKITEKT_BENCH_S3_ENDPOINT")
    if given:
        key = os.environ.get("ARKITEKT_BENCH_S3_KEY", "minioadmin")
        yield given, key, os.environ.get("ARKITEKT_BENCH_S3_SECRET", "minioadmin")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield url, "bench", "bench-secret"
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    import xarray as xr
    import zarr
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    from arkitekt import easy
    from arkitekt.mikro import delete_image, from_xarray, get_image
    from arkitekt.mikro._normalize import choose_chunks
    from arkitekt.mikro._upload import codec
    from arkitekt_server import EmbeddedServer, ServerSettings

    shape = _shape()
    tmp = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    try:
        print(f"generating the {np.prod(shape) * 2 // MIB} MiB Poisson stack ...", flush=True)
        data = np.random.default_rng(0).poisson(100, size=shape).astype(np.uint16)
        array = xr.DataArray(data, dims=list("ctzyx"))
        chunks = choose_chunks(shape, 2)
        with _endpoint() as (endpoint, key, secret):
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            s3 = {
                "endpoint_url": endpoint,
                "bucket": bucket,
                "access_key_id": key,
                "secret_access_key": secret,
            }
            settings = ServerSettings(
                port=0, data_dir=tmp / "server", auto_approve=True, log_level="warning", s3=s3
            )
            with EmbeddedServer(settings) as server:  # creates the bucket
                direct_store = S3Store(
                    bucket,
                    prefix="direct",
                    endpoint=endpoint,
                    access_key_id=key,
                    secret_access_key=secret,
                    region="us-east-1",
                    client_options={"allow_http": endpoint.startswith("http://")},
                )
                app = easy("bench-s3", url=server.url, headless=True, cache_dir=tmp / "cache")
                with app:
                    warmup = xr.DataArray(np.zeros((4, 4), np.uint8), dims=["y", "x"])
                    from_xarray(warmup, name="w", mikro=app.mikro)
                    stored: list[str] = []

                    def direct() -> None:
                        target = zarr.create_array(
                            ObjectStore(direct_store),
                            shape=shape,
                            dtype="uint16",
                            chunks=chunks,
                            compressors=[codec(2)],
                            dimension_names=list("ctzyx"),
                            config={"write_empty_chunks": True},
                            overwrite=True,
                        )
                        target[:] = data

                    def upload() -> None:
                        stored.append(from_xarray(array, name="bench s3", mikro=app.mikro).id)

                    def forget() -> None:  # the previous round's image (untimed)
                        if stored:
                            delete_image(stored.pop(), mikro=app.mikro)

                    level0: list[str] = []

                    def upload_level0() -> None:
                        image = from_xarray(array, name="bench s3", levels=1, mikro=app.mikro)
                        level0.append(image.id)

                    def forget_level0() -> None:
                        if level0:
                            delete_image(level0.pop(), mikro=app.mikro)

                    times = whole_rounds(
                        {
                            "direct zarr": direct,
                            "from_xarray s3": upload,
                            "from_xarray s3, levels=1": upload_level0,
                        },
                        ROUNDS,
                        {"from_xarray s3": forget, "from_xarray s3, levels=1": forget_level0},
                    )
                    sink: list[Any] = []

                    def direct_read() -> None:
                        reader = ObjectStore(direct_store, read_only=True)
                        sink.append(zarr.open_array(reader, mode="r")[:])
                        sink.clear()

                    def read() -> None:
                        sink.append(get_image(stored[0], mikro=app.mikro).data.values)
                        sink.clear()

                    reads = whole_rounds(
                        {"direct zarr read": direct_read, "get_image s3": read}, ROUNDS
                    )
        _report(times, reads, shape, chunks, endpoint)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _report(
    times: dict[str, list[float]],
    reads: dict[str, list[float]],
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    endpoint: str,
) -> None:
    size = int(np.prod(shape)) * 2

    def rows(samples: dict[str, list[float]], reference: str) -> list[list[str]]:
        return [
            [
                name,
                f"{_median(values):.2f} s",
                f"{size / _median(values) / MIB:,.0f} MiB/s",
                f"{_ratio(samples, name, reference):.2f}x",
            ]
            for name, values in samples.items()
        ]

    def table(title: str, samples: dict[str, list[float]], reference: str) -> None:
        header = ["case", "time", "throughput", f"vs {reference}"]
        print_table(title, header, rows(samples, reference))

    table(
        f"upload of {size // MIB} MiB uint16 {shape} to S3 at {endpoint}, chunks {chunks}, "
        f"medians of {ROUNDS} rounds",
        times,
        "direct zarr",
    )
    table("read back of the whole array", reads, "direct zarr read")
    upload = _ratio(times, "from_xarray s3, levels=1", "direct zarr")
    pyramid = _ratio(times, "from_xarray s3", "direct zarr")
    read = _ratio(reads, "get_image s3", "direct zarr read")
    print(
        f"goals: from_xarray s3, levels=1 {upload:.2f}x (>= 0.9x) "
        f"{'ok' if upload >= 0.9 else 'MISSED'}, get_image s3 {read:.2f}x (>= 0.9x) "
        f"{'ok' if read >= 0.9 else 'MISSED'}; with the pyramid (1.33x the bytes) {pyramid:.2f}x"
    )
