"""files: ``from_file`` of a 1 GiB OME-TIFF against reading the same file with bioio alone.

Cases, in rotating order per round (figures are medians over rounds):

- ``bioio read``: ``BioImage(path, reader=bioio_ome_tiff.Reader).get_image_data("TCZYX")``,
  the whole file into memory: what reading the file costs at all;
- ``from_file local``: the full API call against an embedded server (open the file with bioio,
  read it plane by plane, compress, write the zarr store, verify it, the image row), then the
  image is deleted again.

The file: uint16 Poisson noise (camera-like), TCZYX (1, 2, 64, 2048, 2048) = 1 GiB, one plane
per TIFF page, written by tifffile with OME metadata (channel names, pixel size).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench._harness import print_table, whole_rounds

SHAPE = (1, 2, 64, 2048, 2048)  # T C Z Y X, 1 GiB of uint16
ROUNDS = 3
MIB = 1 << 20


def _planes() -> Iterator[Any]:
    rng = np.random.default_rng(0)
    for _ in range(SHAPE[0] * SHAPE[1] * SHAPE[2]):
        yield rng.poisson(100, size=SHAPE[3:]).astype(np.uint16)


def _write_ome_tiff(path: Path) -> None:
    import tifffile

    metadata = {
        "axes": "TCZYX",
        "Channel": {"Name": ["DAPI", "GFP"]},
        "PhysicalSizeX": 0.1,
        "PhysicalSizeY": 0.1,
        "PhysicalSizeZ": 0.5,
    }
    tifffile.imwrite(path, _planes(), shape=SHAPE, dtype="uint16", ome=True, metadata=metadata)


def main() -> None:
    import bioio_ome_tiff
    from bioio import BioImage

    from arkitekt import easy
    from arkitekt.mikro import delete_image, from_file
    from arkitekt_server import EmbeddedServer, ServerSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        path = tmp / "stack.ome.tif"
        print("writing the 1 GiB OME-TIFF ...", flush=True)
        _write_ome_tiff(path)
        size = path.stat().st_size
        settings = ServerSettings(
            port=0, data_dir=tmp / "server", auto_approve=True, log_level="warning"
        )
        with EmbeddedServer(settings) as server:
            app = easy("bench-files", url=server.url, headless=True, cache_dir=tmp / "cache")
            with app:
                stored: list[str] = []

                def bioio_read() -> None:
                    image = BioImage(path, reader=bioio_ome_tiff.Reader)
                    pixels = image.get_image_data("TCZYX")
                    assert pixels.shape == SHAPE

                def import_file() -> None:
                    image = from_file(path, mikro=app.mikro)
                    assert image.channel_names == ["DAPI", "GFP"]
                    stored.append(image.id)

                def forget() -> None:  # the previous round's image (untimed)
                    if stored:
                        delete_image(stored.pop(), mikro=app.mikro)

                times = whole_rounds(
                    {"bioio read": bioio_read, "from_file local": import_file},
                    ROUNDS,
                    {"from_file local": forget},
                )
        _report(times, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _report(times: dict[str, list[float]], size: int) -> None:
    import statistics

    reference = times["bioio read"]
    rows = []
    for name, samples in times.items():
        ratios = [ref / own for ref, own in zip(reference, samples, strict=True)]
        median = statistics.median(samples)
        rows.append(
            [
                name,
                f"{median:.2f} s",
                f"{size / MIB / median:,.0f} MiB/s",
                f"{statistics.median(ratios):.2f}x",
            ]
        )
    print_table(
        f"from_file of a {size / MIB:,.0f} MiB OME-TIFF {SHAPE} uint16, medians of {ROUNDS} rounds",
        ["case", "time", "throughput", "speed vs bioio read (median of rounds)"],
        rows,
    )
