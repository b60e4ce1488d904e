"""The server's side of uploads, through raw HTTP: verification, keys, ownership, sweeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from arkitekt.protocol.mikro import DIMS
from arkitekt_server import EmbeddedServer
from arkitekt_server._app import load_services
from arkitekt_server._db import Database, utcnow
from arkitekt_server.mikro import _adopt as adopting
from arkitekt_server.mikro import _housekeeping as housekeeping
from arkitekt_server.mikro import sweep
from arkitekt_server.mikro._chunks import max_encoded_bytes
from arkitekt_server.mikro._common import GRANT_TTL
from arkitekt_server.mikro._storage import Layout
from tests.arkitekt_server.mikro.small_store import image_keys
from tests.helpers import server_database, wait_until

SHAPE = [1, 1, 2, 8, 8]
CHUNKS = [1, 1, 1, 8, 4]  # 4 chunks


def _grant(http: httpx.Client, datalayer: str = "http", **extra: Any) -> dict[str, Any]:
    body = {"name": "raw", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}
    response = http.post("/uploads/", json={**body, "datalayer": datalayer, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _store_bytes() -> dict[str, bytes]:
    """The keys of a valid store of SHAPE/CHUNKS, as a client would write them."""
    return image_keys(SHAPE, CHUNKS, np.arange(128, dtype=np.uint16).reshape(SHAPE))


def _put_all(http: httpx.Client, grant: dict[str, Any], skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    for key, value in _store_bytes().items():
        if key not in skip:
            response = http.put(f"/uploads/{grant['id']}/store/{key}", content=value)
            assert response.status_code == 204, response.text


def _visible(http: httpx.Client, image_id: str) -> bool:
    return http.get(f"/images/{image_id}").status_code == 200


def test_finish_verifies_chunk_count_then_a_retry_succeeds(http: httpx.Client) -> None:
    grant = _grant(http)
    _put_all(http, grant, skip={"0/c/0/0/1/0/1"})
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "3 chunk(s); 4 expected" in refused.json()["detail"]
    assert not _visible(http, grant["id"])
    _put_all(http, grant)
    done = http.post(f"/uploads/{grant['id']}/finish/")
    assert done.status_code == 201, done.text
    assert done.json()["id"] == grant["id"]
    assert _visible(http, grant["id"])
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 404  # grant is gone
    late = http.put(f"/uploads/{grant['id']}/store/0/c/0/0/0/0/0", content=b"x")
    assert late.status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": [1, 1, 2, 8, 9]}, "shape"),
        ({"data_type": "uint8"}, "data_type"),
        ({"dimension_names": ["a", "t", "z", "y", "x"]}, "dimension_names"),
        ({"zarr_format": 2}, "zarr_format"),
    ],
)
def test_finish_refuses_a_store_that_differs_from_the_grant(
    http: httpx.Client, change: dict[str, Any], message: str
) -> None:
    grant = _grant(http)
    _put_all(http, grant)
    meta = json.loads(_store_bytes()["0/zarr.json"]) | change
    http.put(f"/uploads/{grant['id']}/store/0/zarr.json", content=json.dumps(meta).encode())
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert message in refused.json()["detail"]
    assert not _visible(http, grant["id"])


def test_finish_refuses_undecodable_chunks(http: httpx.Client) -> None:
    grant = _grant(http)
    _put_all(http, grant)
    http.put(f"/uploads/{grant['id']}/store/0/c/0/0/1/0/1", content=b"not blosc")
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "chunk '0/c/0/0/1/0/1'" in refused.json()["detail"]


@pytest.mark.parametrize(
    "key", ["../escape", "0/c/0/0/0/0/9", "0/c/0/0/0/0", "zarr.json/x", "0/c/0/0/0/0/-1", ".zarray"]
)
def test_keys_outside_the_grid_are_refused(http: httpx.Client, key: str) -> None:
    grant = _grant(http)
    response = http.put(f"/uploads/{grant['id']}/store/{key}", content=b"x")
    assert response.status_code in (400, 404)


def test_oversized_chunks_are_refused(http: httpx.Client) -> None:
    grant = _grant(http)
    big = os.urandom(max_encoded_bytes(8 * 4 * 2) + 1)
    response = http.put(f"/uploads/{grant['id']}/store/0/c/0/0/0/0/0", content=big)
    assert response.status_code == 413


def test_local_grant_refuses_links_and_stray_files(http: httpx.Client, tmp_path: Path) -> None:
    for stray in ("link", "extra"):
        grant = _grant(http, datalayer="local")
        directory = Path(grant["path"])
        assert directory.is_dir()
        for key, value in _store_bytes().items():
            (directory / key).parent.mkdir(parents=True, exist_ok=True)
            (directory / key).write_bytes(value)
        if stray == "link":
            outside = tmp_path / "secret"
            outside.write_bytes(b"secret")
            (directory / "0/c/0/0/1/0/1").unlink()
            (directory / "0/c/0/0/1/0/1").symlink_to(outside)
        else:
            (directory / "notes.txt").write_text("hi")
        refused = http.post(f"/uploads/{grant['id']}/finish/")
        assert refused.status_code == 400, refused.text
        assert not _visible(http, grant["id"])


def test_grants_belong_to_their_app(http: httpx.Client, other: httpx.Client) -> None:
    grant = _grant(http)
    assert other.put(f"/uploads/{grant['id']}/store/zarr.json", content=b"{}").status_code == 404
    assert other.post(f"/uploads/{grant['id']}/finish/").status_code == 404
    assert other.delete(f"/uploads/{grant['id']}/").status_code == 404
    assert http.delete(f"/uploads/{grant['id']}/").status_code == 204


def test_abort_removes_the_directory(http: httpx.Client, server: EmbeddedServer) -> None:
    grant = _grant(http)
    _put_all(http, grant)
    directory = Layout(server.settings.data_dir).upload(grant["id"])
    assert directory.is_dir()
    assert http.delete(f"/uploads/{grant['id']}/").status_code == 204
    assert not directory.exists()
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 404
    assert http.put(f"/uploads/{grant['id']}/store/zarr.json", content=b"{}").status_code == 404
    assert not directory.exists()


def test_bad_grant_requests(http: httpx.Client) -> None:
    body = {"name": "x", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}
    for change in (
        {"dtype": "complex64"},
        {"shape": [1, 1, 0, 8, 8]},
        {"chunks": [1, 1, 1, 1, 1], "shape": [1, 1, 1000, 1000, 1000]},
        {"chunks": [1, 1, 9, 8, 8]},
        {"name": " "},
        {"channel_names": ["a", "b"]},
        {"datalayer": "s3"},
    ):
        assert http.post("/uploads/", json=body | change).status_code in (400, 422), change
    assert http.post("/uploads/", json=body | {"dataset": "nope"}).status_code == 404


def _sweep(server: EmbeddedServer, now: dt.datetime | None = None) -> int:
    async def run() -> int:
        database = server_database(server)
        try:
            return await sweep(database, Layout(server.settings.data_dir), now=now)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_sweep_removes_expired_grants_and_leaves_unknown_directories_alone(
    http: httpx.Client,
    server: EmbeddedServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    grant = _grant(http)
    _put_all(http, grant, skip={"0/c/0/0/0/0/0"})
    layout = Layout(server.settings.data_dir)
    unknown = [layout.uploads / str(uuid.uuid4()), layout.stores / str(uuid.uuid4())]
    for directory in unknown:
        directory.mkdir()
        (directory / "zarr.json").write_text("{}")
    monkeypatch.setattr(housekeeping, "UNKNOWN_MIN_AGE", dt.timedelta(0))
    _sweep(server)  # nothing expired: nothing goes
    assert all(directory.is_dir() for directory in unknown)
    assert layout.upload(grant["id"]).is_dir()
    assert _sweep(server, utcnow() + GRANT_TTL + dt.timedelta(seconds=1)) >= 1
    assert not layout.upload(grant["id"]).exists()
    assert all((directory / "zarr.json").is_file() for directory in unknown)  # never deleted
    logged = caplog.text
    assert all(str(directory) in logged for directory in unknown)  # but reported
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 404
    late = http.put(f"/uploads/{grant['id']}/store/0/c/0/0/0/0/0", content=b"x")
    assert late.status_code == 404
    assert not layout.upload(grant["id"]).exists()
    for directory in unknown:
        shutil.rmtree(directory)


def test_store_reads_only_visible_images_and_known_keys(
    http: httpx.Client, other: httpx.Client
) -> None:
    grant = _grant(http, private=True)
    _put_all(http, grant)
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201
    image = grant["id"]
    chunk = http.get(f"/images/{image}/store/0/c/0/0/0/0/0")
    assert chunk.status_code == 200
    assert chunk.content == _store_bytes()["0/c/0/0/0/0/0"]
    assert http.get(f"/images/{image}/store/0/c/0/0/0/0/7").status_code == 404
    assert http.get(f"/images/{image}/store/../../arkitekt.sqlite3").status_code == 404
    assert other.get(f"/images/{image}/store/zarr.json").status_code == 404
    assert other.get(f"/images/{image}").status_code == 404
    root = LocalStore(Path(http.get(f"/images/{image}").json()["local_path"]))
    opened = zarr.open_array(root, path="0")
    assert opened.shape == tuple(SHAPE)


@pytest.mark.parametrize(
    "encoding",
    [
        "default",
        ["default"],
        {"name": "default", "configuration": []},
        {"name": "default", "configuration": "/"},
        {"name": "default", "configuration": {"separator": "."}},
    ],
)
def test_finish_refuses_a_malformed_chunk_key_encoding_and_stays_retryable(
    http: httpx.Client, encoding: Any
) -> None:
    grant = _grant(http)
    _put_all(http, grant)
    meta = json.loads(_store_bytes()["0/zarr.json"]) | {"chunk_key_encoding": encoding}
    http.put(f"/uploads/{grant['id']}/store/0/zarr.json", content=json.dumps(meta).encode())
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400, refused.text
    assert "chunk_key_encoding" in refused.json()["detail"]
    assert not _visible(http, grant["id"])  # the same keep-alive connection still answers
    _put_all(http, grant)
    done = http.post(f"/uploads/{grant['id']}/finish/")
    assert done.status_code == 201, done.text


def test_sweep_spares_a_grant_created_after_it_read_the_grants(
    http: httpx.Client, server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []
    original = housekeeping.unknown_entries

    def racing(*args: Any) -> list[Path]:  # a grant is committed between the snapshot and the scan
        if not made:
            made.append(_grant(http))
        return original(*args)

    monkeypatch.setattr(housekeeping, "unknown_entries", racing)
    monkeypatch.setattr(housekeeping, "UNKNOWN_MIN_AGE", dt.timedelta(0))
    _sweep(server)
    (grant,) = made
    assert Layout(server.settings.data_dir).upload(grant["id"]).is_dir()
    _put_all(http, grant)
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201


def _held_body(chunk: bytes, release: threading.Event) -> Iterator[bytes]:
    """A chunk PUT's body that stops after 10 bytes until ``release`` is set."""
    yield chunk[:10]
    release.wait(10)
    yield chunk[10:]


def _client_like(http: httpx.Client) -> httpx.Client:
    """Another client of the same app (its own connection), for requests in parallel."""
    return httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=20)


def test_finish_waits_for_chunk_writes_in_progress_and_refuses_new_ones(
    http: httpx.Client, server: EmbeddedServer
) -> None:
    grant = _grant(http)
    _put_all(http, grant)  # the grant is now cached for chunk PUTs
    chunk = _store_bytes()["0/c/0/0/0/0/0"]
    release = threading.Event()
    slow_body = functools.partial(_held_body, chunk, release)
    client = functools.partial(_client_like, http)

    with client() as slow, client() as finisher, ThreadPoolExecutor(2) as pool:
        writing = pool.submit(
            slow.put, f"/uploads/{grant['id']}/store/0/c/0/0/0/0/0", content=slow_body()
        )
        directory = Layout(server.settings.data_dir).upload(grant["id"])
        # until the PUT is in progress (its temporary file exists)
        wait_until(lambda: list(directory.rglob("*.partial")), interval=0.01)
        deadline = time.monotonic() + 10
        finishing = pool.submit(finisher.post, f"/uploads/{grant['id']}/finish/")
        while time.monotonic() < deadline:  # until finish has started and refuses new chunks
            late = http.put(f"/uploads/{grant['id']}/store/0/c/0/0/1/0/0", content=chunk)
            if late.status_code != 204:
                break
        assert late.status_code == 409, late.text
        assert "being finished" in late.json()["detail"]
        assert not finishing.done()
        release.set()
        assert writing.result().status_code == 204, writing.result().text
        assert finishing.result().status_code == 201, finishing.result().text
    layout = Layout(server.settings.data_dir)
    assert not layout.upload(grant["id"]).exists()
    store = layout.store(grant["id"])
    assert not [p for p in store.rglob("*") if p.name.endswith(".partial")]
    assert http.get(f"/images/{grant['id']}/store/0/c/0/0/0/0/0").content == chunk


def test_an_abort_that_meets_a_finish_waits_for_it_and_undoes_the_image(
    http: httpx.Client, server: EmbeddedServer
) -> None:
    grant = _grant(http)
    _put_all(http, grant)
    chunk = _store_bytes()["0/c/0/0/0/0/0"]
    release = threading.Event()
    slow_body = functools.partial(_held_body, chunk, release)
    client = functools.partial(_client_like, http)

    layout = Layout(server.settings.data_dir)
    with client() as slow, client() as finisher, client() as aborter, ThreadPoolExecutor(3) as pool:
        writing = pool.submit(
            slow.put, f"/uploads/{grant['id']}/store/0/c/0/0/0/0/0", content=slow_body()
        )
        wait_until(lambda: list(layout.upload(grant["id"]).rglob("*.partial")), interval=0.01)
        deadline = time.monotonic() + 10
        finishing = pool.submit(finisher.post, f"/uploads/{grant['id']}/finish/")
        late = f"/uploads/{grant['id']}/store/0/c/0/0/1/0/0"
        while http.put(late, content=chunk).status_code == 204:
            assert time.monotonic() < deadline  # until the finish has started
        aborting = pool.submit(aborter.delete, f"/uploads/{grant['id']}/")  # it waits for it
        release.set()
        assert writing.result().status_code == 204
        assert finishing.result().status_code == 201  # this answer never reached the client
        assert aborting.result().status_code == 204
    assert not _visible(http, grant["id"])
    assert not layout.store(grant["id"]).exists()
    assert not layout.record(grant["id"]).exists()
    assert not layout.upload(grant["id"]).exists()


def test_existing_mikro_directories_are_made_owner_only(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "loose")
    for directory in (layout.root, layout.uploads, layout.stores, layout.thumbs):
        directory.mkdir(parents=True, mode=0o755)
        directory.chmod(0o755)
    server_factory(data_dir=tmp_path / "loose")
    for directory in (layout.root, layout.uploads, layout.stores, layout.thumbs, layout.records):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


def _adopt(data_dir: Path, layout: Layout) -> adopting.AdoptReport:
    """Run adopt-stores on a fresh database in ``data_dir``."""

    async def run() -> adopting.AdoptReport:
        database = Database.in_dir(data_dir)
        try:
            await database.create_tables()
            async with database.sessions() as session:
                return await adopting.adopt_stores(session, layout)
        finally:
            await database.dispose()

    return asyncio.run(run())


def test_adopting_sets_aside_what_fails_verification_and_deletes_nothing(tmp_path: Path) -> None:
    load_services()
    layout = Layout(tmp_path)
    layout.create()
    broken, unfinished = layout.stores / str(uuid.uuid4()), layout.uploads / str(uuid.uuid4())
    for directory in (broken, unfinished):
        directory.mkdir()
        (directory / "zarr.json").write_text('{"zarr_format": 3}')

    report = _adopt(tmp_path, layout)
    assert report.adopted == []
    assert sorted(report.quarantined) == sorted([broken.name, unfinished.name])
    assert "KeyError" in report.reasons[broken.name]
    assert not broken.exists()
    assert not unfinished.exists()
    kept = sorted(p.name for p in layout.quarantine.iterdir())
    assert kept == sorted([f"stores-{broken.name}", f"uploads-{unfinished.name}"])
    assert all((layout.quarantine / name / "zarr.json").is_file() for name in kept)


def _valid_store(directory: Path) -> None:
    """A finished store as the client writes it: a 5-d uint8 array, every chunk written."""
    array = zarr.create_array(
        LocalStore(directory), shape=(1, 1, 1, 2, 2), chunks=(1, 1, 1, 2, 2), dtype="uint8",
        dimension_names=DIMS, config={"write_empty_chunks": True},
    )  # fmt: skip
    array[...] = np.arange(4, dtype=np.uint8).reshape(1, 1, 1, 2, 2)


def test_adopting_survives_damaged_records_and_stores(tmp_path: Path) -> None:
    """One damaged file costs at most its own store (set aside), never the whole run."""
    load_services()
    layout = Layout(tmp_path)
    layout.create()
    bad_date, deep_record, fine = (str(uuid.uuid4()) for _ in range(3))
    for image_id in (bad_date, deep_record, fine):
        _valid_store(layout.stores / image_id)
    request = {
        "name": "kept",
        "shape": [1, 1, 1, 2, 2],
        "chunks": [1, 1, 1, 2, 2],
        "dtype": "uint8",
    }
    layout.records.mkdir(exist_ok=True)
    layout.record(bad_date).write_text(json.dumps({"request": request, "created_at": "yesterday"}))
    layout.record(deep_record).write_text("[" * 100_000 + "]" * 100_000)
    deep_store = layout.stores / str(uuid.uuid4())
    deep_store.mkdir()
    (deep_store / "zarr.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)

    report = _adopt(tmp_path, layout)
    assert sorted(report.adopted) == sorted([bad_date, deep_record, fine])
    assert report.quarantined == [deep_store.name]
    assert "zarr.json" in report.reasons[deep_store.name]
    assert len(report.reasons[deep_store.name]) < 300
