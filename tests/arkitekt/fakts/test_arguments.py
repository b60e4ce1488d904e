"""Settings of discovery and the transport, and grant arguments: bad values fail when given.

Property tests: every rejected value raises an arkitekt error naming the setting or argument,
when the app or grant is built (nothing is contacted then); valid values pass.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arkitekt import easy
from arkitekt.errors import ArkitektError, ConfigError, ScopeLockedError
from arkitekt.fakts import (
    CachedGrant,
    DeviceCodeGrant,
    StaticConfigGrant,
    StaticTokenGrant,
)

BOUNDED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DAY = 86_400

bad_seconds = st.one_of(
    st.floats(max_value=0),
    st.floats(min_value=DAY, exclude_min=True),
    st.sampled_from([math.nan, math.inf, "abc", [1]]),
)
good_seconds = st.floats(min_value=0.001, max_value=DAY)
controls = st.characters(categories=["Cc", "Zs"])
bad_url = st.one_of(
    st.sampled_from(["", "   "]),
    st.tuples(st.text(max_size=5), controls, st.text(max_size=5)).map("".join),
    st.integers(2049, 5000).map(lambda n: "h" * n),
)

SETTINGS_BAD: dict[str, st.SearchStrategy[Any]] = {
    "timeout": bad_seconds,
    "discovery_timeout": bad_seconds,
    "approval_timeout": bad_seconds,
    "url": bad_url.filter(lambda url: url.strip() == url or not url.strip()),
    "cache_dir": st.text(max_size=5).map(lambda part: f"/tmp/{part}\0x"),
}


def _named(argument: str, error: BaseException) -> None:
    assert isinstance(error, ArkitektError), repr(error)
    assert argument in str(error), str(error)


@pytest.mark.parametrize("setting", list(SETTINGS_BAD))
def test_bad_settings_are_refused_naming_the_setting(setting: str) -> None:
    @BOUNDED
    @given(value=SETTINGS_BAD[setting])
    def check(value: Any) -> None:
        with pytest.raises(ConfigError) as caught:
            easy("settings", **{setting: value})
        _named(setting, caught.value)

    check()


def test_bad_settings_from_the_environment_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARKITEKT_TIMEOUT", "inf")
    with pytest.raises(
        ConfigError, match=r"timeout \(from environment variable ARKITEKT_TIMEOUT\)"
    ):
        easy("settings")


# URLs in their one spelling (tests/arkitekt/fakts/test_urls.py: other spellings, bad ones)
one_spelling = st.builds(
    lambda scheme, host, port: f"{scheme}{host}{port}",
    st.sampled_from(["", "http://", "https://"]),
    st.from_regex(r"\A[a-z]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){1,3}\Z"),
    st.sampled_from(["", ":1", ":8000", ":65535"]),
)


@BOUNDED
@given(
    timeout=good_seconds,
    discovery=good_seconds,
    approval=good_seconds,
    url=one_spelling,
)
def test_valid_settings_pass(timeout: float, discovery: float, approval: float, url: str) -> None:
    app = easy(
        "settings",
        url=url,
        timeout=timeout,
        discovery_timeout=discovery,
        approval_timeout=approval,
    )
    assert (app.settings.timeout, app.settings.url) == (timeout, url)


GRANT_BAD: list[tuple[str, Any, st.SearchStrategy[Any]]] = [
    ("poll_interval", lambda v: DeviceCodeGrant(poll_interval=v), bad_seconds),
    (
        "open_browser",
        lambda v: DeviceCodeGrant(open_browser=v),
        st.one_of(st.text(), st.integers()),
    ),
    (
        "token",
        lambda v: StaticTokenGrant(token=v),
        st.one_of(
            st.sampled_from(["", " t", "t\n", "a b\0"]),
            st.integers(),
            st.integers(4097, 10_000).map("t".__mul__),
        ),
    ),
    (
        "config",
        lambda v: StaticConfigGrant(config=v),
        st.one_of(
            st.lists(st.integers(), max_size=2),
            st.text(min_size=1, max_size=3),
            st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
        ),
    ),
    (
        "inner",
        lambda v: CachedGrant(v),
        st.one_of(st.none(), st.text(), st.just(StaticConfigGrant())),
    ),
]


@pytest.mark.parametrize(("argument", "build", "bad"), GRANT_BAD, ids=[g[0] for g in GRANT_BAD])
def test_bad_grant_arguments_are_refused_naming_the_argument(
    argument: str, build: Any, bad: st.SearchStrategy[Any]
) -> None:
    @BOUNDED
    @given(value=bad)
    def check(value: Any) -> None:
        with pytest.raises(ConfigError) as caught:
            build(value)
        _named(argument, caught.value)

    check()


def test_valid_grant_arguments_pass() -> None:
    assert DeviceCodeGrant(open_browser=False, poll_interval=0.5).poll_interval == 0.5
    assert StaticTokenGrant("a-static-token").token == "a-static-token"
    assert CachedGrant(DeviceCodeGrant()).inner.poll_interval == 1.0
    assert StaticConfigGrant({"lok": {"base_url": "http://127.0.0.1:1"}}).config is not None


def test_only_a_grant_can_be_assigned_and_only_before_entering(tmp_path: Path) -> None:
    app = easy("swap-check", url="http://127.0.0.1:9", cache_dir=tmp_path)
    for bad in ("nope", None, {"lok": {}}, DeviceCodeGrant):
        with pytest.raises(ConfigError) as caught:
            app.fakts.grant = bad  # type: ignore[assignment]
        _named("grant", caught.value)
    app.fakts.grant = StaticConfigGrant({})
    with app, pytest.raises(ScopeLockedError):
        app.fakts.grant = StaticConfigGrant({})
