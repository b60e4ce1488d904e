"""A hostile server's stores: the client neither writes nor reads ``local`` paths outside the
local root the server advertises, writes only into an empty directory, and reads no http chunk
larger than its encoded bound.

The ``recording_server`` fixture plays the server: it grants ``local`` uploads into whatever
directory a test names.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from arkitekt import App
from arkitekt.mikro import LocalPathError, from_xarray, get_image, search_images
from arkitekt.mikro._localdisk import LocalDisk
from arkitekt.protocol.mikro import ImageRecord

PRECIOUS = b'{"the user\'s": "own file"}'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The local root the hostile server advertises."""
    path = tmp_path / "server" / "mikro"
    (path / "uploads").mkdir(parents=True)
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory of the user's, outside the root, with a file a zarr upload would replace."""
    path = tmp_path / "victim"
    path.mkdir()
    (path / "zarr.json").write_bytes(PRECIOUS)
    return path


def _grant(server: Any, path: Path | str) -> None:
    grant = {
        "id": "g1",
        "datalayer": "local",
        "path": str(path),
        "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
    }
    server.answers["/mikro/uploads/"] = (201, grant)
    server.answers["/mikro/uploads/g1/"] = (204, b"")


def _record(server: Any, local_path: Path | str | None) -> dict[str, Any]:
    return ImageRecord(
        id="i1",
        name="n",
        shape=(1, 1, 1, 2, 2),
        chunks=(1, 1, 1, 2, 2),
        dtype="uint8",
        created_at=dt.datetime.now(dt.UTC),
        owner="o",
        store=server.url + "/mikro/images/i1/store/",
        local_path=None if local_path is None else str(local_path),
    ).model_dump(mode="json")


def _upload() -> Any:
    return from_xarray(xr.DataArray(np.ones((2, 2), np.uint8), dims=["y", "x"]), name="n")


def _symlink_out(root: Path, victim: Path) -> Path:
    link = root / "uploads" / "g1"
    link.symlink_to(victim)
    return link


def _full_dir(root: Path, victim: Path) -> Path:
    inside = root / "uploads" / "g1"
    inside.mkdir()
    (inside / "zarr.json").write_bytes(PRECIOUS)
    return inside


@pytest.mark.parametrize(
    ("target", "advertised", "why"),
    [
        (lambda root, victim: victim, True, "not inside the server's local root"),
        (_symlink_out, True, "not inside the server's local root"),
        (_full_dir, True, "must be empty"),
        (lambda root, victim: victim, False, "advertises no local datalayer root"),
    ],
    ids=["outside", "symlink-out", "not-empty", "no-root"],
)
def test_an_unsafe_local_grant_writes_nothing(
    recording_server: Any,
    record_app: Callable[..., App],
    root: Path,
    victim: Path,
    target: Callable[[Path, Path], Path],
    advertised: bool,
    why: str,
) -> None:
    granted = target(root, victim)
    _grant(recording_server, granted)
    app = record_app(mikro={"local_root": str(root)} if advertised else {})
    with app, pytest.raises(LocalPathError) as caught:
        _upload()
    message = str(caught.value)
    assert str(granted) in message
    assert why in message
    assert "nothing was stored" in message  # the grant was aborted on the server
    assert ("DELETE", "/mikro/uploads/g1/") in recording_server.seen
    for directory in (victim, root / "uploads" / "g1"):
        if directory.is_dir():
            assert [p.name for p in directory.iterdir()] in (["zarr.json"], [])
            if (directory / "zarr.json").exists():
                assert (directory / "zarr.json").read_bytes() == PRECIOUS


@pytest.mark.parametrize("advertised", [True, False])
def test_uploads_ask_for_http_unless_a_local_grant_could_be_used(
    recording_server: Any, record_app: Callable[..., App], root: Path, advertised: bool
) -> None:
    _grant(recording_server, root)  # the root itself: refused, whatever was asked
    app = record_app(mikro={"local_root": str(root)} if advertised else {})
    with app, pytest.raises(LocalPathError):
        _upload()
    asked = json.loads(
        recording_server.bodies[recording_server.seen.index(("POST", "/mikro/uploads/"))]
    )["datalayer"]
    assert asked == (None if advertised else "http")


def test_a_safe_local_grant_is_written_and_read_back_from_the_resolved_path(
    recording_server: Any, record_app: Callable[..., App], root: Path
) -> None:
    fresh = root / "uploads" / "g1"
    fresh.mkdir()
    _grant(recording_server, fresh)
    written = _record(recording_server, fresh) | {"level_chunks": [[1, 1, 1, 2, 2]]}  # a group
    recording_server.answers["/mikro/uploads/g1/finish/"] = (201, written)
    with record_app(mikro={"local_root": str(root)}):
        image = _upload()
        assert image.local_path == str(fresh.resolve())
        assert image.data.values.tolist() == [[[[[1, 1], [1, 1]]]]]


@pytest.mark.parametrize("where", ["outside", "no-root"])
def test_local_paths_of_images_outside_the_root_are_not_used(
    recording_server: Any, record_app: Callable[..., App], root: Path, victim: Path, where: str
) -> None:
    recording_server.answers["/mikro/images/i1"] = (200, _record(recording_server, victim))
    app = record_app(mikro={"local_root": str(root)} if where == "outside" else {})
    app.mikro.datalayer = "local"
    with app:
        image = get_image("i1")
        assert image.local_path is None  # the server said: the victim directory
        with pytest.raises(LocalPathError, match="not on a disk this machine can read"):
            image.data  # noqa: B018


def test_local_paths_are_refused_when_the_server_is_another_machine(root: Path) -> None:
    disk = LocalDisk.of({"local_root": str(root)}, "http://192.0.2.1:8000/mikro/")
    with pytest.raises(LocalPathError, match=r"the server \(192.0.2.1\) is not this machine"):
        disk.check(str(root / "uploads"), fresh=False)


@pytest.mark.parametrize("advertised", ["/", str(Path.home()), "relative/dir", "/no/such/dir"])
def test_a_root_too_broad_or_unusable_is_refused(advertised: str) -> None:
    disk = LocalDisk.of({"local_root": advertised}, "http://127.0.0.1:8000/mikro/")
    assert disk.root is None
    with pytest.raises(LocalPathError, match="refusing the local path"):
        disk.check(str(Path.home() / "x"), fresh=False)


def test_a_chunk_over_its_encoded_bound_is_not_read(
    recording_server: Any, recorded_app: App, tmp_path: Path
) -> None:
    import zarr

    from arkitekt.errors import ResponseTooLargeError

    zarr.create_array(tmp_path / "z", shape=(1, 1, 1, 2, 2), chunks=(1, 1, 1, 2, 2), dtype="u1")
    store = "/mikro/images/i1/store/"
    answers = recording_server.answers
    answers["/mikro/images/i1"] = (200, _record(recording_server, None))
    answers[store + "zarr.json"] = (200, (tmp_path / "z" / "zarr.json").read_bytes())
    answers[store + "c/0/0/0/0/0"] = (200, bytes(1 << 20))  # 4 pixels may take 64 KiB + 8
    with recorded_app, pytest.raises(ResponseTooLargeError) as caught:
        get_image("i1").data.values  # noqa: B018
    assert f"{recording_server.url}{store}c/0/0/0/0/0 answered more than 65544 bytes" in str(
        caught.value
    )


def test_a_page_of_refused_local_paths_logs_one_warning(
    recording_server: Any,
    record_app: Callable[..., App],
    root: Path,
    victim: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = [{**_record(recording_server, victim), "id": f"i{n}"} for n in range(5)]
    page = {"items": records, "total": 5, "offset": 0, "limit": 50}
    recording_server.answers["/mikro/images/"] = (200, page)
    caplog.set_level(logging.WARNING, logger="arkitekt.mikro")
    with record_app(mikro={"local_root": str(root)}):
        found = search_images()
    assert [image.local_path for image in found.items] == [None] * 5
    refused = [r.getMessage() for r in caplog.records if "local path" in r.getMessage()]
    assert len(refused) == 1, refused
    assert "5 image(s)" in refused[0]
    assert "not inside the server's local root" in refused[0]


def test_the_local_root_is_resolved_once_per_configuration(
    recording_server: Any,
    record_app: Callable[..., App],
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    of = LocalDisk.of

    def counted(group: Any, endpoint: str) -> LocalDisk:
        built.append(endpoint)
        return of(group, endpoint)

    monkeypatch.setattr(LocalDisk, "of", staticmethod(counted))
    recording_server.answers["/mikro/images/i1"] = (200, _record(recording_server, None))
    page = {"items": [], "total": 0, "offset": 0, "limit": 50}
    recording_server.answers["/mikro/images/"] = (200, page)
    with record_app(mikro={"local_root": str(root)}):
        search_images()
        search_images()
        assert get_image("i1").local_path is None
    assert len(built) == 1
