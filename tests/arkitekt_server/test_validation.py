"""A refused request body is named, never echoed: the 422 answer holds no input value.

FastAPI's default 422 repeats the offending input, which may hold what JSON cannot carry back
(``NaN`` and ``Infinity``, which ``json.loads`` accepts): the refusal itself would become a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from arkitekt_server import EmbeddedServer
from arkitekt_server._app import MAX_PROBLEMS

# Routes of different services that take a JSON body, each given a non-finite value.
BODIES = [
    ("/f/start/", '{"manifest": NaN}', False),
    ("/f/claim/", '{"token": Infinity}', False),
    ("/mikro/datasets/", '{"name": NaN}', True),
    ("/rekuest/assignments/", '{"function": -Infinity}', True),
]


@pytest.mark.parametrize(("path", "body", "needs_token"), BODIES)
def test_a_non_finite_value_is_refused_with_422_naming_the_field(
    server: EmbeddedServer,
    fakts_for: Callable[[EmbeddedServer], Any],
    path: str,
    body: str,
    needs_token: bool,
) -> None:
    headers = {"Content-Type": "application/json"}
    if needs_token:
        headers["Authorization"] = f"Bearer {fakts_for(server).auto_bearer('validation')}"
    response = httpx.post(f"{server.url}{path}", content=body, headers=headers)
    assert response.status_code == 422, (response.status_code, response.text)
    errors = response.json()["detail"]
    assert errors, "the refusal names at least one problem"
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}, error
        assert error["loc"][0] == "body"
    assert "NaN" not in response.text
    assert "Infinity" not in response.text


def test_a_refusal_lists_a_bounded_number_of_problems(
    server: EmbeddedServer, fakts_for: Callable[[EmbeddedServer], Any]
) -> None:
    """One bad item per list entry: 100,000 problems would make a 10 MB answer."""
    token = fakts_for(server).auto_bearer("validation-many")
    body = {"name": "n", "shape": [1, 1, 1, 2, 2], "dtype": "uint8", "chunks": [1, 1, 1, 2, 2]}
    body["channel_names"] = list(range(5000))  # each an int where a string is expected
    response = httpx.post(
        f"{server.url}/mikro/uploads/", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == {
        "loc": ["body"],
        "msg": f"and {5000 - MAX_PROBLEMS:,} more",
        "type": "more",
    }
    assert len(response.content) < 10_000
