from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from arkitekt_server import EmbeddedServer

_names = itertools.count()


@pytest.fixture
def new_uploads(server: EmbeddedServer) -> Callable[[], set[Path]]:
    """Upload directories of the session server that appeared since the test started."""
    path = server.settings.data_dir / "mikro" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    before = set(path.iterdir())
    return lambda: set(path.iterdir()) - before


@pytest.fixture
def unique() -> str:
    """A name no other test uses (the session server is shared)."""
    return f"img-{next(_names)}-{np.random.default_rng().integers(1 << 30)}"
