"""Callers refuse a ``wait`` or ``timeout`` the server would refuse, before sending anything."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from arkitekt import App
from arkitekt.rekuest import acall


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("wait", "timeout"),
    [(math.inf, None), (-1.0, None), (86401.0, None), (0.0, 0.0), (0.0, -1.0), (0.0, math.nan)],
)
async def test_unbounded_wait_or_timeout_fails_at_once(
    connect: Callable[..., App],
    wait: float,
    timeout: float | None,  # noqa: ASYNC109
) -> None:
    async with connect() as app:
        with pytest.raises(ValueError, match="must be a finite number of seconds"):
            await acall("bounds_nowhere", wait=wait, timeout=timeout, rekuest=app.rekuest)
