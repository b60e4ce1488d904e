"""The claim-token cache: odd files at its path, hostile contents, and a server that moved."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arkitekt import App, whoami
from arkitekt.errors import ConfigError, DiscoveryError
from arkitekt.fakts import TokenCache
from arkitekt.fakts._cache import CacheEntry
from arkitekt_server import EmbeddedServer

BOUNDED = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _cache(tmp_path: Path) -> TokenCache:
    return TokenCache(tmp_path / "cache", "app", "1", "http://127.0.0.1:8000")


def test_a_directory_at_the_cache_path_is_a_clear_error_before_approval(
    connect: Callable[..., App], server: EmbeddedServer
) -> None:
    app = connect("dir-at-cache")
    app.fakts.cache.path.mkdir(parents=True)
    with app, pytest.raises(ConfigError) as caught:
        whoami()
    assert str(app.fakts.cache.path) in str(caught.value)
    assert "remove it" in str(caught.value)
    with pytest.raises(ConfigError, match="not a regular file"):
        app.fakts.logout()


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo"])
def test_anything_but_a_file_at_the_entry_path_names_the_path(tmp_path: Path, kind: str) -> None:
    cache = _cache(tmp_path)
    cache.directory.mkdir(mode=0o700)
    if kind == "directory":
        cache.path.mkdir()
    elif kind == "symlink":
        target = tmp_path / "elsewhere"
        target.write_text("{}")
        cache.path.symlink_to(target)
    else:
        os.mkfifo(cache.path)
    for action in (cache.load, lambda: cache.store(CacheEntry("http://h/f/", "t")), cache.delete):
        with pytest.raises(ConfigError) as caught:
            action()
        assert str(cache.path) in str(caught.value)


def test_an_unusable_cache_directory_names_it(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.directory.write_text("a file where the directory should be")
    with pytest.raises(ConfigError) as caught:
        cache.store(CacheEntry("http://h/f/", "t"))
    assert str(cache.directory) in str(caught.value)
    with pytest.raises(ConfigError):
        cache.load()


_key = {"identifier": "app", "version": "1", "url": "http://127.0.0.1:8000"}
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
contents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"format": st.just(1), "key": st.just(_key)},
        optional={"base_url": json_values, "token": json_values},
    ).map(lambda value: json.dumps(value).encode()),
    st.integers(1000, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.just(b" " * (1 << 20)),
)


def test_hostile_contents_are_a_miss_and_the_next_store_replaces_them(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.store(CacheEntry("http://127.0.0.1:8000/f/", "good"))

    @BOUNDED
    @given(raw=contents)
    def check(raw: bytes) -> None:
        cache.path.write_bytes(raw)
        entry = cache.load()
        if entry is not None:  # only a well-formed entry of this app is ever trusted
            data = json.loads(raw)
            assert (entry.base_url, entry.token) == (data["base_url"], data["token"])
            assert isinstance(entry.token, str)
            assert entry.base_url.startswith(("http://", "https://"))
        cache.store(CacheEntry("http://127.0.0.1:8000/f/", "good"))
        assert cache.load() == CacheEntry("http://127.0.0.1:8000/f/", "good")
        assert cache.path.stat().st_mode & 0o777 == 0o600

    check()


def test_a_corrupt_entry_is_rewritten_by_the_next_approval(connect: Callable[..., App]) -> None:
    app = connect("deep-cache")
    path = app.fakts.cache.path
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[" * 100_000)  # once crashed json.loads with RecursionError
    path.chmod(0o600)
    with app:
        assert whoami().identifier == "deep-cache"
    assert app.fakts.cache.load() is not None
    assert path.stat().st_mode & 0o777 == 0o600


def _dead_root() -> str:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/f/"


def test_a_cached_server_root_that_moved_is_found_again_by_discovery(
    connect: Callable[..., App], server: EmbeddedServer
) -> None:
    with connect("moved") as app:
        first = whoami()
    cached = app.fakts.cache.load()
    assert cached is not None
    app.fakts.cache.store(CacheEntry(_dead_root(), cached.token))  # approved at the old port
    with connect("moved") as again:
        second = whoami()
    assert second.client_id == first.client_id  # the same approval, claimed at the new root
    assert again.fakts.cache.load() == cached


def test_a_cached_root_and_discovery_both_gone_name_both(connect: Callable[..., App]) -> None:
    url = _dead_root().removesuffix("/f/")
    app = connect("gone", url=url)
    app.fakts.cache.store(CacheEntry(url + "/f/", "token"))
    with app, pytest.raises(DiscoveryError) as caught:
        whoami()
    message = str(caught.value)
    assert f"the cached server root {url}/f/ does not answer" in message
    assert f"{url}/.well-known/fakts" in message
