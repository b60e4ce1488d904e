"""Answers from the network are hostile: whatever the server sends, calls fail as arkitekt errors.

The ``recording_server`` fixture plays the server and answers what each test sets.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arkitekt import App, whoami
from arkitekt.errors import ArkitektError, BadResponseError, GrantError
from arkitekt.mikro import (
    InvalidImageError,
    MikroError,
    create_dataset,
    get_image,
    list_datasets,
    search_images,
)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"detail": json_values}),
    st.binary(max_size=50),
)
statuses = st.sampled_from([200, 201, 400, 403, 404, 409, 413, 422, 500, 503])


@pytest.mark.parametrize(
    ("path", "call", "what"),
    [
        ("/mikro/images/some-id", lambda: get_image("some-id"), "an image record"),
        ("/mikro/images/", search_images, "a page of images"),
        ("/mikro/datasets/", list_datasets, "a list of datasets"),
    ],
    ids=["get_image", "search_images", "list_datasets"],
)
def test_a_malformed_answer_names_the_request(
    recording_server: Any, recorded_app: App, path: str, call: Any, what: str
) -> None:
    recording_server.answers[path] = (200, {"items": "no", "id": [1, 2]})
    with recorded_app, pytest.raises(MikroError) as caught:
        call()
    message = str(caught.value)
    assert f"{recording_server.url}{path}" in message
    assert f"did not answer {what}" in message


def test_refusals_of_any_shape_are_described(recording_server: Any, recorded_app: App) -> None:
    answers = recording_server.answers
    with recorded_app:
        answers["/mikro/datasets/"] = (
            422,
            {"detail": [1, {"loc": 5}, {"loc": ["body", "name"], "msg": "too long"}]},
        )
        with pytest.raises(InvalidImageError, match="name: too long"):
            create_dataset("n")
        answers["/mikro/datasets/"] = (400, [1, 2])
        with pytest.raises(InvalidImageError, match=r"\[1, 2\]"):
            create_dataset("n")


@pytest.mark.parametrize("answer", [(200, {"sub": 1}), (500, "boom"), (404, {"detail": "no"})])
def test_a_userinfo_off_the_protocol_is_a_bad_response_naming_the_url(
    recording_server: Any, recorded_app: App, answer: tuple[int, Any]
) -> None:
    """Outside the grant flow, an answer the client cannot read is not a refused grant."""
    recording_server.answers["/lok/userinfo/"] = answer
    with recorded_app, pytest.raises(BadResponseError) as caught:
        whoami()
    assert not isinstance(caught.value, GrantError)
    assert f"{recording_server.url}/lok/userinfo/" in str(caught.value)


def test_a_userinfo_refused_with_403_is_a_grant_error(
    recording_server: Any, recorded_app: App
) -> None:
    recording_server.answers["/lok/userinfo/"] = (403, {"detail": "revoked"})
    with recorded_app, pytest.raises(GrantError, match=r"refused the app \(HTTP 403\)"):
        whoami()


def test_any_answer_is_a_result_or_an_arkitekt_error(
    recording_server: Any, recorded_app: App
) -> None:
    calls = {
        "/mikro/images/x": lambda: get_image("x"),
        "/mikro/images/": search_images,
        "/mikro/datasets/": list_datasets,
        "/lok/userinfo/": whoami,
    }
    with recorded_app:

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(path=st.sampled_from(sorted(calls)), status=statuses, body=bodies)
        def check(path: str, status: int, body: Any) -> None:
            recording_server.answers[path] = (status, body)
            try:
                calls[path]()
            except ArkitektError as error:  # anything else fails the test
                outcomes.add(type(error).__name__)

        outcomes: set[str] = set()
        check()
    assert {"MikroError", "BadResponseError"} <= outcomes  # the guard saw refusals of both kinds


@pytest.mark.parametrize(
    ("path", "call", "wrap"),
    [
        ("/mikro/datasets/", list_datasets, lambda items: items),
        ("/mikro/images/", search_images, lambda items: {"items": items, "total": 1}),
    ],
    ids=["list_datasets", "search_images"],
)
def test_a_list_of_bad_items_fails_at_the_first(
    recording_server: Any, recorded_app: App, path: str, call: Any, wrap: Any
) -> None:
    # an error object per bad item would cost ~1 KiB each: gigabytes for 8 MiB of `{},`
    recording_server.answers[path] = (200, wrap([{}] * 30_000))
    with recorded_app, pytest.raises(MikroError) as caught:
        call()
    problems = re.search(r"\((\d+) problem\(s\), first: (items\.)?0\.", str(caught.value))
    assert problems is not None, caught.value
    assert int(problems.group(1)) <= 10  # those of the first item only, not 30,000 items'
