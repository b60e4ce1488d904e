"""mikro with the server in its own process: a lost database, a kill -9, a memory budget."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dask.array as da
import httpx
import numpy as np
import pytest
import xarray as xr
from zarr.codecs import ZstdCodec

from arkitekt import App, easy
from arkitekt.mikro import UploadError, from_xarray, get_image, search_images
from arkitekt_server.mikro._storage import Layout
from tests.arkitekt_server.mikro.small_store import image_keys
from tests.helpers import ServerProcess, bearer_token, wait_until

BUDGET_MIB = 150


def _app(server: ServerProcess, tmp_path: Path, name: str) -> App:
    return easy(name, url=server.url, headless=True, cache_dir=tmp_path / f"cache-{name}")


def _stack(seed: int) -> xr.DataArray:
    values = np.random.default_rng(seed).integers(0, 4000, (3, 32, 24), dtype=np.uint16)
    return xr.DataArray(values, dims=["z", "y", "x"])


def _files(directory: Path) -> dict[str, int]:
    return {
        p.relative_to(directory).as_posix(): p.stat().st_size
        for p in directory.rglob("*")
        if p.is_file()
    }


def _adopt_stores(data_dir: Path) -> subprocess.CompletedProcess[str]:
    adopt = subprocess.run(
        [sys.executable, "-m", "arkitekt._cli", "adopt-stores", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert adopt.returncode == 0, adopt.stderr
    return adopt


@pytest.mark.sqlite_only("deletes the SQLite file to lose the database")
def test_a_lost_database_refuses_to_start_deletes_nothing_and_adopting_brings_images_back(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    server_process.start()
    with _app(server_process, tmp_path, "before-loss"):
        local = from_xarray(_stack(1), name="kept local", tags=["kept"], metadata={"k": 1})
        remote = from_xarray(_stack(2), name="kept http", datalayer="http", private=True)
    server_process.stop()
    layout = Layout(server_process.data_dir)
    before = {i: _files(layout.store(i)) for i in (local.id, remote.id)}
    for suffix in ("", "-wal", "-shm"):
        (server_process.data_dir / f"arkitekt.sqlite3{suffix}").unlink(missing_ok=True)

    server_process.start(wait=False)
    output = server_process.finish()
    assert server_process.process is not None
    assert server_process.process.returncode != 0
    assert "2 image store(s)" in output
    assert "not in the database" in output
    assert "arkitekt adopt-stores" in output
    assert "arkitekt server refused to start: mikro: 2 image store(s)" in output  # one line
    assert "Traceback" not in output
    assert {i: _files(layout.store(i)) for i in before} == before  # nothing deleted

    adopt = _adopt_stores(server_process.data_dir)
    assert "adopted 2 store(s)" in adopt.stdout
    server_process.start()
    with _app(server_process, tmp_path, "after-loss"):
        back = get_image(local.id)
        assert (back.name, back.tags, back.metadata) == ("kept local", ["kept"], {"k": 1})
        assert np.array_equal(back.data.values[0, 0], _stack(1).values)
        assert search_images("kept http").total == 0  # private: its app is gone with the db
    server_process.stop()
    print(f"\nlost database: refused to start, 2 stores kept, 2 adopted: {adopt.stdout!r}")


def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.05)
    return block


def test_kill_9_mid_upload_leaves_no_half_image_and_loses_nothing_finished(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    server_process.start()
    layout = Layout(server_process.data_dir)
    source = np.arange(60 * 16 * 16, dtype=np.uint16).reshape(60, 16, 16)
    slow = da.from_array(source, chunks=(1, 16, 16)).map_blocks(_slow, dtype=np.uint16)
    errors: list[BaseException] = []
    with _app(server_process, tmp_path, "crash") as app:
        finished = from_xarray(_stack(3), name="finished before the crash")

        def upload() -> None:
            try:
                from_xarray(
                    xr.DataArray(slow, dims=["z", "y", "x"]),
                    name="killed",
                    datalayer="http",
                    mikro=app.mikro,
                )
            except BaseException as error:
                errors.append(error)

        writer = threading.Thread(target=upload)
        writer.start()

        def written() -> list[Path]:
            return [p for p in layout.uploads.rglob("0/c/*/*/*/*/*") if p.is_file()]

        wait_until(lambda: len(written()) >= 5, 30)
        chunks = len(written())
        server_process.kill()
        writer.join(60)
    assert not writer.is_alive()
    (error,) = errors
    assert isinstance(error, UploadError), repr(error)
    assert "did not confirm the abort" in str(error)

    server_process.start()  # the same data dir: it knows the grant, so it starts
    with _app(server_process, tmp_path, "after-crash"):
        assert search_images("killed").total == 0  # no half image
        again = get_image(finished.id)
        assert np.array_equal(again.data.values[0, 0], _stack(3).values)
        retried = from_xarray(xr.DataArray(source, dims=["z", "y", "x"]), name="killed")
        assert np.array_equal(get_image(retried.id).data.values[0, 0], source)
    server_process.stop()
    print(
        f"\nkill -9 mid-upload: {chunks} chunk(s) written before the kill; client: "
        f"{type(error).__name__}; finished images kept 1/1; retry after restart: ok"
    )


# -- memory budget ---------------------------------------------------------------------------
SHAPE = [1, 1, 2, 64, 64]
CHUNKS = [1, 1, 1, 64, 64]  # 2 chunks of 4 KiB (uint8)


def _zstd_store() -> dict[str, bytes]:
    data = np.arange(2 * 64 * 64, dtype=np.uint8).reshape(SHAPE)
    return image_keys(SHAPE, CHUNKS, data, ZstdCodec())


@pytest.fixture
def raw_http(server_process: ServerProcess, tmp_path: Path) -> Iterator[httpx.Client]:
    server_process.start()
    with (
        _app(server_process, tmp_path, "memory") as app,
        httpx.Client(
            base_url=server_process.url + "/mikro",
            headers={"Authorization": f"Bearer {bearer_token(app)}"},
            timeout=60,
        ) as client,
    ):
        yield client


def _upload(http: httpx.Client, keys: dict[str, bytes], datalayer: str = "http") -> str:
    body = {"name": "budget", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint8"}
    grant = http.post("/uploads/", json=body | {"datalayer": datalayer}).json()
    for key, value in keys.items():
        if datalayer == "local":
            (Path(grant["path"]) / key).parent.mkdir(parents=True, exist_ok=True)
            (Path(grant["path"]) / key).write_bytes(value)
        else:
            assert http.put(f"/uploads/{grant['id']}/store/{key}", content=value).is_success
    return str(grant["id"])


def _objects(total: int, wrap: bytes = b'{"name":"a","x":[%s]}') -> bytes:
    """A JSON body of about ``total`` bytes that is mostly empty objects (``{},{},...``)."""
    return wrap.replace(b"%s", b",".join([b"{}"] * ((total - len(wrap)) // 3)))


def _huge_body(total: int) -> Iterator[bytes]:
    part = bytes(1 << 20)
    for _ in range(total >> 20):
        yield part


def test_server_memory_stays_bounded_under_hostile_chunks_and_bodies(
    server_process: ServerProcess,
    raw_http: httpx.Client,
    zstd_bomb: Callable[[int, int], bytes],
    peak_rss_mib: Callable[[int], float],
) -> None:
    http = raw_http
    keys = _zstd_store()
    warm = _upload(http, keys)  # everything a finish and a thumbnail import is loaded now
    assert http.post(f"/uploads/{warm}/finish/").status_code == 201
    assert http.get(f"/images/{warm}/thumbnail.png").status_code == 200
    baseline = peak_rss_mib(server_process.pid)
    print(f"\nserver peak RSS after warm-up: {baseline:.0f} MiB")
    bomb = zstd_bomb(1 << 30, 1 << 30)  # 33 KB -> 1 GiB
    answers: dict[str, int] = {}

    def record(what: str, response: httpx.Response) -> None:
        answers[what] = response.status_code
        peak = peak_rss_mib(server_process.pid)
        print(f"{what}: HTTP {response.status_code}, peak RSS +{peak - baseline:.0f} MiB")

    grant = _upload(http, keys | {"0/c/0/0/1/0/0": bomb})
    record("zstd bomb at finish", http.post(f"/uploads/{grant}/finish/"))
    hidden = zstd_bomb(64 * 64, 64 * 64) + bomb  # a small first frame, then the bomb
    grant = _upload(http, keys | {"0/c/0/0/1/0/0": hidden})
    record("second-frame bomb at finish", http.post(f"/uploads/{grant}/finish/"))
    local = _upload(http, keys, datalayer="local")
    assert http.post(f"/uploads/{local}/finish/").status_code == 201
    store = Layout(server_process.data_dir).store(local)
    (store / "0/c/0/0/1/0/0").write_bytes(bomb)  # tampered after finish
    record("zstd bomb at thumbnail", http.get(f"/images/{local}/thumbnail.png"))
    grant = _upload(http, {})
    url = f"/uploads/{grant}/store/0/c/0/0/0/0/0"
    record("200 MiB streamed PUT", http.put(url, content=_huge_body(200 << 20)))
    record("200 MiB declared PUT", http.put(url, content=bytes(200 << 20)))
    # JSON that expands when parsed (3 bytes of `{},` are a 64-byte dict): 16 MiB took 400 MiB
    json_type = {"Content-Type": "application/json"}
    for what, path, size in [
        ("16 MiB of JSON objects", "/datasets/", 16 << 20),
        ("2 MiB of JSON objects", "/datasets/", (2 << 20) - 1024),
        ("8 MiB of JSON objects in a call", server_process.url + "/rekuest/assignments/", 8 << 20),
    ]:
        record(what, http.post(path, content=_objects(size), headers=json_type))
    floats = b'{"name":"a","shape":[1,1,1,1,1],"chunks":[1,1,1,1,1],"dtype":"uint8",'
    floats += b'"metadata":{"x":[%s]}}' % b",".join([b"1.5"] * (((2 << 20) - 1024) // 4))
    record("2 MiB of metadata numbers", http.post("/uploads/", content=floats, headers=json_type))
    peak = peak_rss_mib(server_process.pid)
    assert answers == {
        "zstd bomb at finish": 400,
        "second-frame bomb at finish": 400,
        "zstd bomb at thumbnail": 422,
        "200 MiB streamed PUT": 413,
        "200 MiB declared PUT": 413,
        "16 MiB of JSON objects": 413,
        "2 MiB of JSON objects": 413,
        "8 MiB of JSON objects in a call": 413,
        "2 MiB of metadata numbers": 422,
    }
    assert peak - baseline < BUDGET_MIB


# -- a database restored from a backup taken while an upload was open ------------------------
@pytest.mark.sqlite_only("backs up and restores the SQLite file")
@pytest.mark.parametrize(
    ("grant_state", "damaged"), [("open", False), ("finishing", False), ("finishing", True)]
)
def test_a_backup_holding_a_finished_uploads_grant_never_costs_its_image(
    server_process: ServerProcess,
    raw_http: httpx.Client,
    tmp_path: Path,
    grant_state: str,
    damaged: bool,
) -> None:
    """The backup's grant (expired long ago) must not let the sweep delete the finished store.

    ``open``: the backup was taken during the upload; the store is unknown, so the server
    refuses to start (keeping the trash too) and adopting brings the image back.
    ``finishing``: taken during the finish (or a crash after the store moved); the sweep
    completes the image; a store damaged since goes to quarantine, still not deleted.
    """
    http, layout = raw_http, Layout(server_process.data_dir)
    database = server_process.data_dir / "arkitekt.sqlite3"
    kept = _upload(http, _zstd_store())
    assert http.post(f"/uploads/{kept}/finish/").status_code == 201
    late = _upload(http, _zstd_store())
    server_process.stop()
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    server_process.start(same_port=True)
    assert http.post(f"/uploads/{late}/finish/").status_code == 201
    server_process.stop()
    finished = {i: _files(layout.store(i)) for i in (kept, late)}
    record = layout.record(late).read_bytes()
    # an image the backup never knew, being deleted when the server stopped
    trashed = layout.trash / str(uuid.uuid4())
    shutil.copytree(layout.store(kept), trashed)

    for suffix in ("", "-wal", "-shm"):  # restore the backup, taken hours ago
        (server_process.data_dir / f"arkitekt.sqlite3{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(backup) as copy, sqlite3.connect(database) as restored:
        copy.backup(restored)
        changed = restored.execute(
            "UPDATE mikro_upload_grants SET state = ?, expires_at = datetime(expires_at, "
            "'-7 hours', '-1 day') WHERE id = ? AND state = 'open'",
            (grant_state, late),
        ).rowcount
    assert changed == 1  # the backup holds the upload's grant

    if grant_state == "open":
        server_process.start(wait=False, same_port=True)  # the client's port
        output = server_process.finish()
        assert server_process.process is not None
        assert server_process.process.returncode != 0
        assert "1 image store(s)" in output
        assert "arkitekt adopt-stores" in output
        assert {i: _files(layout.store(i)) for i in finished} == finished  # nothing deleted
        assert layout.record(late).read_bytes() == record
        assert _files(trashed) == finished[kept]  # the trash waits for a known database
        adopt = _adopt_stores(server_process.data_dir).stdout
        assert "adopted 1 store(s)" in adopt
        assert f"{trashed.name}: an image being deleted when the server stopped" in adopt
        assert _files(layout.quarantine / f"trash-{trashed.name}") == finished[kept]
    else:
        shutil.rmtree(trashed)  # no unknown store: nothing shows that this database is old
    if damaged:
        (layout.store(late) / "0/c/0/0/1/0/0").unlink()
        del finished[late]["0/c/0/0/1/0/0"]
    server_process.start(same_port=True)
    late_at = layout.quarantine / f"stores-{late}" if damaged else layout.store(late)
    assert _files(late_at) == finished[late]  # after the sweep
    assert _files(layout.store(kept)) == finished[kept]
    assert layout.record(late).read_bytes() == record
    back = http.get(f"/images/{late}")
    assert back.status_code == (404 if damaged else 200), back.text
    assert damaged or back.json()["name"] == "budget"
    assert http.get(f"/images/{kept}").status_code == 200
    server_process.stop()
