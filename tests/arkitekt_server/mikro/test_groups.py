"""The server verifies the whole OME-Zarr image group before an image exists: the group's
``ome`` attributes, every level's array and chunks; reads check every level too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from arkitekt_server import EmbeddedServer
from arkitekt_server.mikro._storage import Layout
from tests.arkitekt_server.mikro.small_store import image_keys

SHAPE = [1, 1, 1, 300, 20]  # two levels: 300 x 20 and 150 x 10
LEVEL_CHUNKS = [[1, 1, 1, 100, 20], [1, 1, 1, 50, 10]]
DATA = np.arange(6000, dtype=np.uint16).reshape(SHAPE)
BODY = {"name": "pyramid", "shape": SHAPE, "chunks": LEVEL_CHUNKS[0], "dtype": "uint16"}


def _keys() -> dict[str, bytes]:
    return image_keys(SHAPE, LEVEL_CHUNKS[0], DATA, level_chunks=LEVEL_CHUNKS)


def _grant(http: httpx.Client) -> dict[str, Any]:
    body = BODY | {"level_chunks": LEVEL_CHUNKS, "datalayer": "http"}
    response = http.post("/uploads/", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _put(http: httpx.Client, grant: dict[str, Any], keys: dict[str, bytes]) -> None:
    for key, value in keys.items():
        response = http.put(f"/uploads/{grant['id']}/store/{key}", content=value)
        assert response.status_code == 204, (key, response.text)


def _group(change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    document = json.loads(_keys()["zarr.json"])
    change(document)
    return {"zarr.json": json.dumps(document).encode()}


def _ome(document: dict[str, Any]) -> Any:
    return document["attributes"]["ome"]


def _set_scale(document: dict[str, Any]) -> None:
    _ome(document)["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = [
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]


def _level_one_shape() -> dict[str, bytes]:
    meta = json.loads(_keys()["1/zarr.json"])
    meta["shape"] = [1, 1, 1, 151, 10]
    return {"1/zarr.json": json.dumps(meta).encode()}


BROKEN: list[tuple[str, Callable[[], dict[str, bytes]], str]] = [
    ("array at root", lambda: {"zarr.json": _keys()["0/zarr.json"]}, "node_type"),
    ("version", lambda: _group(lambda d: _ome(d).update(version="0.4")), "version '0.5'"),
    ("scale", lambda: _group(_set_scale), "multiscales is not the one of this image"),
    (
        "one level listed",
        lambda: _group(lambda d: _ome(d)["multiscales"][0]["datasets"].pop()),
        "multiscales",
    ),
    (
        "channels",
        lambda: _group(lambda d: _ome(d)["omero"]["channels"].append({})),
        "ome.omero.channels must list 1 channel(s)",
    ),
    (
        "colour",
        lambda: _group(lambda d: _ome(d)["omero"]["channels"][0].update(color="red")),
        "color must be six hex digits",
    ),
    (
        "window",
        lambda: _group(lambda d: _ome(d)["omero"]["channels"][0]["window"].update(end="high")),
        "window must have finite",
    ),
    (
        "extra attribute",
        lambda: _group(lambda d: d["attributes"].update(other=1)),
        "exactly the 'ome' object",
    ),
    ("level shape", _level_one_shape, "1/zarr.json: shape is"),
    ("no such level", lambda: {"2/c/0/0/0/0/0": b"x"}, None),  # refused at the PUT already
]


@pytest.mark.sqlite_only("the store's checks do not touch the database")
@pytest.mark.parametrize(("change", "message"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_finish_refuses_a_group_that_is_not_the_uploads_image_and_stays_retryable(
    http: httpx.Client, change: Callable[[], dict[str, bytes]], message: str | None
) -> None:
    grant = _grant(http)
    _put(http, grant, _keys())
    if message is None:
        (key,) = change()
        refused = http.put(f"/uploads/{grant['id']}/store/{key}", content=b"x")
        assert refused.status_code == 400
        assert "is not a key of this image" in refused.json()["detail"]
    else:
        _put(http, grant, change())
        refused = http.post(f"/uploads/{grant['id']}/finish/")
        assert refused.status_code == 400, refused.text
        assert message in refused.json()["detail"]
        assert http.get(f"/images/{grant['id']}").status_code == 404  # no image
        _put(http, grant, _keys())
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201


def test_a_level_missing_a_chunk_or_holding_a_stray_one_is_refused(
    http: httpx.Client, server: EmbeddedServer
) -> None:
    grant = _grant(http)
    _put(http, grant, {k: v for k, v in _keys().items() if k != "1/c/0/0/0/2/0"})
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "the store holds 2 chunk(s); 3 expected in level 1" in refused.json()["detail"]
    _put(http, grant, _keys())
    stray = Layout(server.settings.data_dir).upload(grant["id"]) / "1" / "c" / "0" / "x"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"")  # written behind the server's back (a local upload could)
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "unexpected file '1/c/0/x'" in refused.json()["detail"]
    stray.unlink()
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201


@pytest.mark.parametrize(
    ("level_chunks", "message"),
    [
        (
            [*LEVEL_CHUNKS, LEVEL_CHUNKS[1]],
            "level_chunks must give the chunks of the first 1 to 2 level(s)",
        ),
        ([LEVEL_CHUNKS[1], LEVEL_CHUNKS[1]], "level 0's being chunks"),
        ([LEVEL_CHUNKS[0], [1, 1, 1, 150, 20]], "holds more than a chunk of level 0"),
    ],
)
def test_a_grant_names_the_chunks_of_every_level(
    http: httpx.Client, level_chunks: list[list[int]], message: str
) -> None:
    refused = http.post("/uploads/", json=BODY | {"level_chunks": level_chunks})
    assert refused.status_code == 422
    assert message in refused.text
    refused = http.post(
        "/uploads/", json=BODY | {"level_chunks": [LEVEL_CHUNKS[0], [1] * 4 + [11]]}
    )
    assert refused.status_code == 400
    assert "a chunk of level 1 is larger than the level" in refused.json()["detail"]


def test_an_upload_may_store_only_the_first_levels(http: httpx.Client) -> None:
    one = [LEVEL_CHUNKS[0]]
    response = http.post("/uploads/", json=BODY | {"level_chunks": one, "datalayer": "http"})
    assert response.status_code == 201, response.text
    grant = response.json()
    keys = image_keys(SHAPE, LEVEL_CHUNKS[0], DATA, level_chunks=one)
    _put(http, grant, keys | {"zarr.json": _keys()["zarr.json"]})  # the group lists 2 levels
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "multiscales is not the one of this image" in refused.json()["detail"]
    _put(http, grant, {"zarr.json": keys["zarr.json"]})
    finished = http.post(f"/uploads/{grant['id']}/finish/")
    assert finished.status_code == 201, finished.text
    assert finished.json()["level_chunks"] == one


def test_every_level_is_read_and_checked_through_the_store_route(
    http: httpx.Client, server: EmbeddedServer
) -> None:
    grant = _grant(http)
    keys = _keys()
    _put(http, grant, keys)
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201
    image = grant["id"]
    record = http.get(f"/images/{image}").json()
    assert record["level_chunks"] == LEVEL_CHUNKS
    for key in ("zarr.json", "1/zarr.json", "1/c/0/0/0/2/0", "0/c/0/0/0/2/0"):
        served = http.get(f"/images/{image}/store/{key}")
        assert served.status_code == 200, key
        assert served.content == keys[key]
    for key in ("2/zarr.json", "1/c/0/0/0/3/0", "1/zarr.json/x", "0/c/0/0/0/2"):
        assert http.get(f"/images/{image}/store/{key}").status_code == 404, key
    store = Path(record["local_path"])
    meta = json.loads((store / "1" / "zarr.json").read_text()) | {"shape": [1, 1, 1, 150, 10]}
    (store / "1" / "zarr.json").write_text(json.dumps(meta))  # tampered after finish
    refused = http.get(f"/images/{image}/store/1/zarr.json")
    assert refused.status_code == 422
    assert "1/zarr.json is not the one verified" in refused.json()["detail"]


def test_the_thumbnail_comes_from_the_smallest_level(http: httpx.Client) -> None:
    import io

    from PIL import Image

    grant = _grant(http)
    _put(http, grant, _keys())
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201
    store = Path(http.get(f"/images/{grant['id']}").json()["local_path"])
    for chunk in (store / "0").rglob("c/*/*/*/*/*"):
        chunk.write_bytes(b"level 0 is not read for a thumbnail")
    thumbnail = http.get(f"/images/{grant['id']}/thumbnail.png")
    assert thumbnail.status_code == 200, thumbnail.text
    assert Image.open(io.BytesIO(thumbnail.content)).size == (10, 150)  # level 1: 10 x 150


@pytest.mark.parametrize("levels", [2, 1], ids=["every level", "level 0 alone"])
def test_a_pyramid_store_without_its_record_is_adopted_with_every_level(
    tmp_path: Path, levels: int
) -> None:
    import asyncio
    import uuid

    from sqlalchemy import select

    from arkitekt_server._app import load_services
    from arkitekt_server._db import Database
    from arkitekt_server.mikro import _adopt as adopting
    from arkitekt_server.mikro._models import ImageRow

    load_services()
    layout = Layout(tmp_path)
    layout.create()
    image_id = str(uuid.uuid4())
    stored = LEVEL_CHUNKS[:levels]
    keys = image_keys(SHAPE, LEVEL_CHUNKS[0], DATA, level_chunks=stored)
    for key, value in keys.items():  # a lost database, and no record beside the store
        (layout.store(image_id) / key).parent.mkdir(parents=True, exist_ok=True)
        (layout.store(image_id) / key).write_bytes(value)

    async def adopt() -> tuple[adopting.AdoptReport, ImageRow]:
        database = Database.in_dir(tmp_path)
        try:
            await database.create_tables()
            async with database.sessions() as session:
                report = await adopting.adopt_stores(session, layout)
                return report, (await session.scalars(select(ImageRow))).one()
        finally:
            await database.dispose()

    report, row = asyncio.run(adopt())
    assert report.adopted == [image_id]
    assert [level["chunks"] for level in row.levels or []] == stored
    assert all(level["sha256"] for level in row.levels or [])
