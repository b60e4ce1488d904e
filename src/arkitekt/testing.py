"""pytest plugin: fixtures for testing code that uses an arkitekt app.

Registered as the ``arkitekt`` pytest plugin (entry point), so the fixtures are available
wherever arkitekt is installed. Redefine ``arkitekt_overrides`` to replace services.

Example:
    A test module (pytest runs it; ``tests/arkitekt/test_testing_plugin.py`` does so)::

        import pytest


        class FakeMikro:
            '''Stands in for the image service.'''


        @pytest.fixture
        def arkitekt_overrides():
            return {"mikro": FakeMikro()}


        def test_counts(arkitekt_app):
            with arkitekt_app:
                assert isinstance(arkitekt_app.mikro, FakeMikro)

The app is headless, caches nothing outside ``tmp_path``, and contacts nothing unless a test
calls a service that is not overridden.

"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arkitekt import App, easy

__all__ = ["arkitekt_app", "arkitekt_app_factory", "arkitekt_overrides"]


@pytest.fixture
def arkitekt_overrides() -> dict[str, Any]:
    """Providers to replace in :func:`arkitekt_app`; redefine this fixture to set them."""
    return {}


@pytest.fixture
def arkitekt_app_factory(tmp_path: Path) -> Callable[..., App]:
    """Build headless apps whose token cache lives in ``tmp_path``.

    Call it like :func:`arkitekt.easy`: ``arkitekt_app_factory("my-app", url=...)``.
    """

    def build(identifier: str = "arkitekt-test-app", **kwargs: Any) -> App:
        kwargs.setdefault("headless", True)
        kwargs.setdefault("cache_dir", tmp_path / "arkitekt-cache")
        return easy(identifier, **kwargs)

    return build


@pytest.fixture
def arkitekt_app(
    arkitekt_app_factory: Callable[..., App], arkitekt_overrides: dict[str, Any]
) -> Iterator[App]:
    """A headless app with :func:`arkitekt_overrides` applied; enter it in the test."""
    app = arkitekt_app_factory()
    with app.override(**arkitekt_overrides):
        yield app
