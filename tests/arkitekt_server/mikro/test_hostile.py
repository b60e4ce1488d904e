"""Hostile input to mikro: non-canonical keys, decompression bombs, unbounded parameters."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec, GzipCodec, ZstdCodec

from arkitekt.protocol.mikro import MAX_ID_CHARS
from arkitekt.protocol.text import ECHO_CHARS
from arkitekt_server import EmbeddedServer
from arkitekt_server.mikro._chunks import ChunkRefusedError, Pipeline, check_key, chunk_index
from arkitekt_server.mikro._storage import Layout
from tests.arkitekt_server.mikro.small_store import CHUNKS, SHAPE, store_keys

RAW = 64


def _grant(http: httpx.Client, datalayer: str = "http") -> dict[str, Any]:
    body = {"name": "hostile", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}
    response = http.post("/uploads/", json={**body, "datalayer": datalayer})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _write_local(directory: Path, keys: dict[str, bytes]) -> None:
    for key, value in keys.items():
        (directory / key).parent.mkdir(parents=True, exist_ok=True)
        (directory / key).write_bytes(value)


# -- chunk keys ------------------------------------------------------------------------------
@given(index=st.tuples(*[st.integers(0, 3)] * 5))
@settings(max_examples=50, deadline=None)
def test_the_canonical_key_of_every_grid_index_is_accepted(index: tuple[int, ...]) -> None:
    key = "c/" + "/".join(map(str, index))
    assert chunk_index(key, [4] * 5) == index


# ASCII, Arabic-Indic, Devanagari and fullwidth digits
_DIGITS = st.sampled_from("0123456789\u0660\u0661\u0968\u0969\u096a\u096b\uff16\uff17")


@given(parts=st.lists(st.text(_DIGITS, min_size=1, max_size=3), min_size=5, max_size=5))
@settings(max_examples=200, deadline=None)
def test_only_canonical_keys_name_a_chunk(parts: list[str]) -> None:
    key = "c/" + "/".join(parts)
    canonical = all(p.isascii() and (p == "0" or not p.startswith("0")) for p in parts)
    assert check_key(key, [1000] * 5) is canonical
    if canonical:  # one chunk, one key: the key is the index written back
        index = chunk_index(key, [1000] * 5)
        assert index is not None
        assert "c/" + "/".join(map(str, index)) == key


@pytest.mark.parametrize(
    "key", ["0/c/00/0/0/0/0", "0/c/\u0660/0/0/0/0", "0/c/0/0/0/0/01", "0/c/+1/0/0/0/0"]
)
def test_non_canonical_keys_are_refused_at_put_and_at_finish(
    http: httpx.Client, key: str, server: EmbeddedServer
) -> None:
    grant = _grant(http)
    assert http.put(f"/uploads/{grant['id']}/store/{key}", content=b"x").status_code == 400
    local = _grant(http, datalayer="local")
    keys = store_keys()
    keys[key] = keys.pop("0/c/0/0/0/0/0")  # the chunk under another spelling: one is missing
    _write_local(Path(local["path"]), keys)
    refused = http.post(f"/uploads/{local['id']}/finish/")
    assert refused.status_code == 400, refused.text
    assert "unexpected file" in refused.json()["detail"]
    assert http.get(f"/images/{local['id']}").status_code == 404  # no half image


# -- decoded sizes ---------------------------------------------------------------------------
def _meta_with(compressor: Any) -> dict[str, Any]:
    return dict(json.loads(store_keys(compressor)["0/zarr.json"]))


def test_the_pipeline_bounds_every_accepted_codec(zstd_bomb: Callable[[int, int], bytes]) -> None:
    blosc = Pipeline.from_metadata(_meta_with(None), RAW)
    good = store_keys()["0/c/0/0/0/0/0"]
    blosc.check_chunk("0/c/0/0/0/0/0", good)
    lying = good[:4] + struct.pack("<I", 1 << 30) + good[8:]
    with pytest.raises(ChunkRefusedError, match=r"'0/c/0/0/0/0/0' declares 1073741824"):
        blosc.check_chunk("0/c/0/0/0/0/0", lying)
    zstd = Pipeline.from_metadata(_meta_with(ZstdCodec()), RAW)
    zstd.check_chunk("k", store_keys(ZstdCodec())["0/c/0/0/0/0/0"])
    with pytest.raises(ChunkRefusedError, match="declares 1073741824"):
        zstd.check_chunk("k", zstd_bomb(1 << 30, 1 << 30))
    with pytest.raises(ChunkRefusedError, match="exactly one zstd frame"):  # a second frame hides
        zstd.check_chunk("k", zstd_bomb(RAW, RAW) + zstd_bomb(1 << 30, 1 << 30)[:1000])
    zipped = Pipeline.from_metadata(_meta_with(GzipCodec()), RAW)
    zipped.check_chunk("k", store_keys(GzipCodec())["0/c/0/0/0/0/0"])
    with pytest.raises(ChunkRefusedError, match="exactly one gzip member"):
        zipped.check_chunk("k", gzip.compress(bytes(1 << 20)))
    with pytest.raises(ChunkRefusedError, match="more than"):
        zipped.check_chunk("k", bytes(1 << 20))
    meta = _meta_with(None) | {"codecs": [BytesCodec().to_dict(), {"name": "transpose"}]}
    with pytest.raises(ChunkRefusedError, match="are not accepted"):
        Pipeline.from_metadata(meta, RAW)


def test_a_zstd_bomb_is_refused_at_finish_naming_the_chunk_and_the_upload_stays_retryable(
    http: httpx.Client, zstd_bomb: Callable[[int, int], bytes]
) -> None:
    grant = _grant(http)
    keys = store_keys(ZstdCodec())
    for key, value in keys.items():
        assert http.put(f"/uploads/{grant['id']}/store/{key}", content=value).status_code == 204
    bomb = zstd_bomb(1 << 30, 1 << 30)  # 33 KB that decode to 1 GiB
    put = http.put(f"/uploads/{grant['id']}/store/0/c/0/0/1/0/1", content=bomb)
    assert put.status_code == 204  # within the chunk's encoded bound: finish decides
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400, refused.text
    assert "chunk '0/c/0/0/1/0/1' declares 1073741824 decoded bytes" in refused.json()["detail"]
    assert http.get(f"/images/{grant['id']}").status_code == 404
    http.put(f"/uploads/{grant['id']}/store/0/c/0/0/1/0/1", content=keys["0/c/0/0/1/0/1"])
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201


def test_a_tampered_store_is_not_decoded_for_its_thumbnail(
    http: httpx.Client, server: EmbeddedServer, zstd_bomb: Callable[[int, int], bytes]
) -> None:
    grant = _grant(http, datalayer="local")
    _write_local(Path(grant["path"]), store_keys(ZstdCodec()))
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201
    store = Layout(server.settings.data_dir).store(grant["id"])
    (store / "0/c/0/0/0/0/0").write_bytes(zstd_bomb(1 << 30, 1 << 30))  # after finish
    refused = http.get(f"/images/{grant['id']}/thumbnail.png")
    assert refused.status_code == 422, refused.text
    assert "'0/c/0/0/0/0/0'" in refused.json()["detail"]


def test_a_grown_chunk_file_is_not_served(http: httpx.Client, server: EmbeddedServer) -> None:
    grant = _grant(http, datalayer="local")
    _write_local(Path(grant["path"]), store_keys())
    assert http.post(f"/uploads/{grant['id']}/finish/").status_code == 201
    store = Layout(server.settings.data_dir).store(grant["id"])
    (store / "0/c/0/0/0/0/0").write_bytes(bytes(2 << 20))  # after finish, beyond any chunk
    refused = http.get(f"/images/{grant['id']}/store/0/c/0/0/0/0/0")
    assert refused.status_code == 422, refused.text
    assert "'0/c/0/0/0/0/0' is larger than any key" in refused.json()["detail"]
    assert http.get(f"/images/{grant['id']}/store/0/c/0/0/0/0/1").status_code == 200


def test_every_chunk_file_is_size_checked_before_it_is_read(http: httpx.Client) -> None:
    grant = _grant(http, datalayer="local")
    keys = store_keys()
    keys["0/c/0/0/0/0/1"] = bytes(1 << 20)
    _write_local(Path(grant["path"]), keys)
    refused = http.post(f"/uploads/{grant['id']}/finish/")
    assert refused.status_code == 400
    assert "chunk '0/c/0/0/0/0/1' is 1048576 bytes" in refused.json()["detail"]
    shutil.rmtree(grant["path"])


# -- parameters and metadata -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/images/?offset=9223372036854775808", "offset"),
        ("/images/?limit=9223372036854775808", "limit"),
        ("/?offset=9223372036854775808", "offset"),
        ("/images/?name=" + "n" * 501, "name"),
        ("/images/?tag=" + "t" * 101, "tag"),
    ],
)
def test_unbounded_query_parameters_are_422_naming_them(
    http: httpx.Client, path: str, param: str
) -> None:
    response = http.get(path)
    assert response.status_code == 422, response.text
    assert param in json.dumps(response.json()["detail"])


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"metadata": _nested(400)}, "nests deeper than 32 levels"),
        ({"metadata": {"a": [_nested(32)]}}, "metadata.a[0]"),
        ({"metadata": {"blob": "x" * (1 << 20)}}, "more than 1048576"),
        ({"chunks": [1, 1, 1, 8192, 8192], "dtype": "uint16"}, "at most 67108864"),
        ({"shape": [1, 1, 1, 8, 1 << 41]}, "less than or equal to 1099511627776"),
        ({"pixel_size": {"x": "inf"}}, "finite"),
        ({"channel_names": ["c" * 501]}, "at most 500 characters"),
    ],
)
def test_grant_requests_beyond_the_bounds_are_422_naming_the_field(
    http: httpx.Client, change: dict[str, Any], words: str
) -> None:
    body = {"name": "bounded", "shape": [1, 1, 1, 8192, 8192], "chunks": CHUNKS, "dtype": "uint8"}
    response = http.post("/uploads/", json=body | change)
    assert response.status_code == 422, response.text
    assert words in json.dumps(response.json()["detail"])


def test_non_finite_metadata_is_refused(http: httpx.Client) -> None:
    body = {"name": "nan", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}
    text = json.dumps(body | {"metadata": {"x": float("nan")}})  # NaN: what json.loads accepts
    response = http.post("/uploads/", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "metadata.x is nan" in response.text


# -- texts -----------------------------------------------------------------------------------
_GRANT = {"name": "texts", "shape": SHAPE, "chunks": CHUNKS, "dtype": "uint16"}


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body`` as JSON with every non-ASCII character escaped (lone surrogates too)."""
    content = json.dumps(body)
    return http.post(path, content=content, headers={"content-type": "application/json"})


@pytest.mark.parametrize("bad", ["a\0b", "a\ud800b", "\udfff"])
@pytest.mark.parametrize(
    ("path", "change", "loc"),
    [
        ("/uploads/", {"name": "{}"}, ["body", "name"]),
        ("/uploads/", {"tags": ["ok", "{}"]}, ["body", "tags", 1]),
        ("/uploads/", {"channel_names": ["{}"]}, ["body", "channel_names", 0]),
        ("/uploads/", {"dataset": "{}"}, ["body", "dataset"]),
        ("/uploads/", {"origins": ["{}"]}, ["body", "origins", 0]),
        ("/datasets/", {"name": "{}"}, ["body", "name"]),
        ("/datasets/", {"name": "d", "description": "{}"}, ["body", "description"]),
    ],
)
def test_a_text_a_database_cannot_store_is_422_naming_the_field(
    http: httpx.Client, bad: str, path: str, change: dict[str, Any], loc: list[Any]
) -> None:
    filled = json.loads(json.dumps(change).replace("{}", json.dumps(bad)[1:-1]))
    response = _post(http, path, (_GRANT if path == "/uploads/" else {}) | filled)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == loc
    # pydantic refuses a lone surrogate in any string already; a NUL only the wire models
    reasons = ["NUL character or a lone surrogate"]
    if "\0" not in bad:
        reasons.append("unable to parse raw data as a unicode string")
    assert any(reason in problem["msg"] for reason in reasons), problem


def test_refusals_repeat_at_most_a_short_prefix_of_the_input(
    http: httpx.Client, server: EmbeddedServer
) -> None:
    long = "z" * MAX_ID_CHARS  # as long as an id may be: the refusal is a 404 naming it
    shown, too_much = "z" * (ECHO_CHARS - 10), "z" * (ECHO_CHARS + 1)
    answers = {
        "dataset": _post(http, "/uploads/", _GRANT | {"dataset": long}),
        "origin": _post(http, "/uploads/", _GRANT | {"origins": [long]}),
        "key": http.put(f"/uploads/{_grant(http)['id']}/store/0/c/{long * 50}", content=b"x"),
        "host": http.get(server.url + "/health/", headers={"Host": long * 50}),
        "public app": http.post(
            server.url + "/f/retrieve/", json={"manifest": {"identifier": long, "version": "1"}}
        ),
    }
    for name, keys in [("data type", {}), ("codec", {"codecs": [{"name": long * 50}]})]:
        grant, store = _grant(http), store_keys()
        meta = json.loads(store["0/zarr.json"])
        meta |= keys or {"data_type": long * 50}
        for key, value in (store | {"0/zarr.json": json.dumps(meta).encode()}).items():
            assert http.put(f"/uploads/{grant['id']}/store/{key}", content=value).is_success
        answers[name] = http.post(f"/uploads/{grant['id']}/finish/")
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "dataset": 404,
        "origin": 404,
        "key": 400,
        "host": 400,
        "public app": 200,
        "data type": 400,
        "codec": 400,
    }
    for name, response in answers.items():
        assert shown in response.text, (name, response.text)  # it names the input ...
        assert too_much not in response.text, (name, response.text)  # ... by a short prefix
