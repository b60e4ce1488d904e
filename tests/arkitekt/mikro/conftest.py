from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from arkitekt_server import EmbeddedServer

_names = itertools.count()


@pytest.fixture
def uploads_dir(server: EmbeddedServer) -> Path:
    """Where the session server keeps unfinished uploads (empty when none is in progress)."""
    path = server.settings.data_dir / "mikro" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def unique() -> str:
    """A name no other test uses (the session server is shared)."""
    return f"img-{next(_names)}-{np.random.default_rng().integers(1 << 30)}"
