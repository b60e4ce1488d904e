"""The `arkitekt` pytest plugin, used the way a user's test suite uses it."""

from __future__ import annotations

from typing import Any

import pytest

from arkitekt import App


class FakeMikro:
    pass


FAKE = FakeMikro()


@pytest.fixture
def arkitekt_overrides() -> dict[str, Any]:
    return {"mikro": FAKE}


def test_the_app_fixture_applies_overrides_and_is_headless(arkitekt_app: App) -> None:
    assert arkitekt_app.settings.headless
    assert not arkitekt_app.is_open
    with arkitekt_app:
        assert arkitekt_app.mikro is FAKE
    assert arkitekt_app.settings.cache_dir is not None
    assert "arkitekt-cache" in str(arkitekt_app.settings.cache_dir)


def test_the_factory_builds_apps_like_easy(arkitekt_app_factory: Any) -> None:
    app = arkitekt_app_factory("other", version="3")
    assert app.manifest.identifier == "other"
    assert app.manifest.version == "3"
    assert app.mikro is not FAKE  # overrides belong to arkitekt_app only
