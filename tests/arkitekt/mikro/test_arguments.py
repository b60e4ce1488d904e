"""Every public mikro function checks its arguments before any request (property tests).

Rejected calls run against the ``recording_server`` fixture, which records every request it
reads: a rejection must raise an arkitekt error naming the argument, and the server must have
seen nothing (not even a token request). Valid arguments, up to the bounds, go to the real
session server, which must accept them too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arkitekt import App
from arkitekt.errors import ArkitektError, InvalidImageError, MikroError
from arkitekt.mikro import (
    create_dataset,
    delete_image,
    from_xarray,
    get_image,
    search_images,
)
from arkitekt.mikro._checks import (
    MAX_ID_CHARS,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TAG_CHARS,
    NAME_CHARS,
    check_text,
)
from arkitekt.protocol.mikro_metadata import MAX_METADATA_BYTES, MAX_METADATA_DEPTH

BOUNDED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_ARRAY = xr.DataArray(np.zeros((2, 3), np.uint8), dims=["y", "x"])

# -- strategies of bad values -----------------------------------------------------------------
not_str = st.one_of(
    st.none(), st.integers(), st.floats(), st.binary(max_size=5), st.lists(st.text(max_size=3))
)
control = st.characters(categories=["Cc", "Cs"])


def _with(char: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.text(max_size=5), char, st.text(max_size=5)).map("".join)


def bad_text(max_chars: int, *, blank_ok: bool = False) -> st.SearchStrategy[Any]:
    """Values a name-like argument must refuse."""
    options = [not_str, _with(control), st.integers(max_chars + 1, 4 * max_chars).map("n".__mul__)]
    if not blank_ok:
        options.append(st.sampled_from(["", " ", "\u3000"]))
    return st.one_of(options)


bad_id = st.one_of(
    st.integers(), st.lists(st.integers(), max_size=2), bad_text(MAX_ID_CHARS)
).filter(lambda value: value is not None)  # None means "none" where an id is optional
bad_list = st.one_of(
    st.text(min_size=1, max_size=5),
    st.integers(),
    st.lists(
        st.one_of(not_str, st.sampled_from(["", "  "]), _with(control)), min_size=1, max_size=3
    ),
)
bad_number = st.one_of(
    st.floats(max_value=0),
    st.sampled_from([math.nan, math.inf, -math.inf, True, "abc", "1.0", [1.0]]),
)
bad_pixel_size = st.one_of(
    st.text(max_size=5),
    st.lists(st.floats(min_value=1), max_size=3),
    st.integers(),
    st.dictionaries(st.sampled_from(["x", "y", "z", "t"]), bad_number, min_size=1, max_size=2),
    st.dictionaries(
        st.text(max_size=3).filter(lambda key: key not in "xyzt"), st.just(1.0), min_size=1
    ),
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


bad_leaf = st.one_of(
    st.sampled_from([math.nan, math.inf, object(), b"bytes", {1, 2}, np.float32(1.0), 10**5000]),
    _with(st.sampled_from(["\0", "\ud800"])),
)
bad_metadata = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.text(max_size=3),
    st.integers(),
    st.integers(MAX_METADATA_DEPTH, 5000).map(_nested),
    st.dictionaries(st.text(max_size=3), bad_leaf, min_size=1, max_size=2),
    st.dictionaries(st.one_of(st.integers(), st.none()), st.just(1), min_size=1, max_size=2),
    st.just({"big": "x" * MAX_METADATA_BYTES}),
)
not_bool = st.one_of(st.text(max_size=5), st.integers(), st.none(), st.floats())

FROM_XARRAY_BAD: dict[str, st.SearchStrategy[Any]] = {
    "name": bad_text(NAME_CHARS),
    "tags": st.one_of(bad_list, st.just(["t" * (MAX_TAG_CHARS + 1)]), st.just(["t"] * 201)),
    "dataset": bad_id,
    "origins": st.one_of(st.text(min_size=1, max_size=5), st.lists(bad_id, min_size=1, max_size=2)),
    "channel_names": st.one_of(bad_list, st.just(["a", "b"])),
    "pixel_size": bad_pixel_size,
    "metadata": bad_metadata,
    "private": not_bool,
    "datalayer": st.text(max_size=8).filter(lambda layer: layer not in ("local", "http", "s3")),
}

SEARCH_BAD: dict[str, st.SearchStrategy[Any]] = {
    "name": bad_text(NAME_CHARS, blank_ok=True).filter(lambda value: value is not None),
    "tag": bad_text(MAX_TAG_CHARS).filter(lambda value: value is not None),
    "dataset": bad_id,
    "limit": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=MAX_PAGE + 1),
        st.sampled_from([True, None, "5", 5.0, [5]]),
    ),
    "offset": st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=MAX_OFFSET + 1),
        st.sampled_from([False, None, "5", 5.0]),
    ),
}


def _rejects(
    server: Any, call: Callable[..., Any], argument: str, value: Any, **kwargs: Any
) -> None:
    with pytest.raises(ArkitektError) as caught:
        call(**{argument: value}, **kwargs)
    assert argument in str(caught.value), str(caught.value)
    assert server.seen == [], f"{argument}={value!r} was sent: {server.seen}"


@pytest.mark.parametrize("argument", list(FROM_XARRAY_BAD))
def test_from_xarray_rejects_bad_arguments_before_any_request(
    recording_server: Any, recorded_app: App, argument: str
) -> None:
    with recorded_app:

        @BOUNDED
        @given(value=FROM_XARRAY_BAD[argument])
        def check(value: Any) -> None:
            kwargs = {"name": "ok"} if argument != "name" else {}
            _rejects(recording_server, from_xarray, argument, value, array=_ARRAY, **kwargs)

        check()


@pytest.mark.parametrize("argument", list(SEARCH_BAD))
def test_search_images_rejects_bad_arguments_before_any_request(
    recording_server: Any, recorded_app: App, argument: str
) -> None:
    with recorded_app:

        @BOUNDED
        @given(value=SEARCH_BAD[argument])
        def check(value: Any) -> None:
            _rejects(recording_server, search_images, argument, value)

        check()


@pytest.mark.parametrize(
    ("call", "argument", "extra", "bad"),
    [
        (get_image, "image_id", {}, bad_id),
        (delete_image, "image", {}, bad_id),
        (create_dataset, "name", {}, bad_text(NAME_CHARS)),
        (
            create_dataset,
            "description",
            {"name": "ok"},
            st.one_of(not_str, _with(st.sampled_from(["\0", "\x1b", "\ud800"]))),
        ),
    ],
    ids=["get_image", "delete_image", "dataset name", "dataset description"],
)
def test_id_and_dataset_functions_reject_bad_arguments_before_any_request(
    recording_server: Any,
    recorded_app: App,
    call: Callable[..., Any],
    argument: str,
    extra: dict[str, Any],
    bad: st.SearchStrategy[Any],
) -> None:
    with recorded_app:

        @BOUNDED
        @given(value=bad)
        def check(value: Any) -> None:
            _rejects(recording_server, call, argument, value, **extra)

        check()


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"name": ""}, "the dataset's name must not be blank"),
        ({"name": 5}, "the dataset's name must be a string"),
        ({"name": "ok", "description": "a\0b"}, "the dataset's description contains"),
    ],
)
def test_a_bad_dataset_name_is_named_as_such_not_as_an_image(
    recording_server: Any, recorded_app: App, arguments: dict[str, Any], said: str
) -> None:
    with recorded_app, pytest.raises(MikroError) as caught:
        create_dataset(**arguments)
    assert not isinstance(caught.value, InvalidImageError)  # no image is involved
    assert str(caught.value).startswith(f"create_dataset(): {said}")
    assert recording_server.seen == []


def test_the_reported_cases_fail_clearly_before_any_request(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app:
        for argument, value in [
            ("metadata", [1, 2]),
            ("metadata", _nested(5000)),
            ("pixel_size", "abc"),
            ("name", "a\0b"),
            ("private", "yes"),
        ]:
            named = {} if argument == "name" else {"name": "ok"}
            _rejects(recording_server, from_xarray, argument, value, array=_ARRAY, **named)
        _rejects(recording_server, search_images, "limit", "5")
        _rejects(recording_server, search_images, "name", "n" * (1 << 20))


# -- valid values, up to the bounds: accepted by the client and the real server -----------------
good_text = st.text(
    st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=NAME_CHARS
).filter(str.strip)
json_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=20)
good_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), 1 << 63),
    st.floats(allow_nan=False, allow_infinity=False),
    json_text,
)
good_metadata = st.recursive(
    good_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(json_text, inner, max_size=3)
    ),
    max_leaves=10,
).map(lambda value: {"v": value})


def test_valid_arguments_up_to_the_bounds_are_accepted_by_the_server(
    connect: Callable[..., App],
) -> None:
    with connect():
        dataset = create_dataset("d" * NAME_CHARS, "line one\nline two\t")

        @settings(max_examples=15, deadline=None)
        @given(
            name=good_text,
            tags=st.lists(
                good_text.map(lambda tag: tag[:MAX_TAG_CHARS]).filter(str.strip), max_size=3
            ),
            metadata=good_metadata,
            pixel_size=st.dictionaries(
                st.sampled_from(["x", "y", "z", "t"]),
                st.floats(min_value=1e-9, max_value=1e9),
                max_size=4,
            ),
            private=st.booleans(),
        )
        def check(
            name: str, tags: list[str], metadata: dict[str, Any], pixel_size: Any, private: bool
        ) -> None:
            image = from_xarray(
                _ARRAY,
                name=name,
                tags=tags,
                dataset=dataset,
                metadata=metadata,
                pixel_size=pixel_size,
                private=private,
            )
            assert (image.name, image.private, image.dataset) == (name, private, dataset.id)
            assert image.metadata == metadata
            assert search_images(name, dataset=dataset, limit=MAX_PAGE).total >= 1
            delete_image(image)  # the session server is shared: leave no generated names

        check()
        deepest = _nested(MAX_METADATA_DEPTH - 1)  # the object itself is the first level
        image = from_xarray(_ARRAY, name="deep", metadata=deepest, channel_names=["only"])
        assert get_image(image).metadata == deepest
        delete_image(image.id)
        assert search_images("n" * NAME_CHARS, tag="t" * MAX_TAG_CHARS).total == 0


@pytest.mark.parametrize("value", [" " * (10 << 20), " \t" * 50, "x" * (1 << 20)])
def test_a_refused_text_is_not_echoed_in_full(value: str) -> None:
    with pytest.raises(InvalidImageError) as caught:
        check_text(value, "name", max_chars=NAME_CHARS)
    message = str(caught.value)
    assert "name" in message
    assert len(message) < 300, message[:300]


def test_rath_is_the_classic_name_of_the_explicit_client(
    connect: Callable[..., App], unique: str
) -> None:
    app = connect()
    data = xr.DataArray(np.arange(12, dtype="uint8").reshape(3, 4), dims=["y", "x"])
    with app:
        stored = from_xarray(data, name=unique, rath=app.mikro.rath)
    # from another thread, with no app active there: rath= finds the app, as mikro= does
    with app:
        found = app.run_in_thread(lambda: get_image(stored.id, rath=app.mikro.rath)).result(30)
        listed = search_images(unique, rath=app.mikro.rath)
    assert found.id == stored.id
    assert [image.id for image in listed.items] == [stored.id]
    assert app.mikro.rath is app.mikro


def test_rath_that_is_no_image_service_is_refused(connect: Callable[..., App]) -> None:
    with connect(), pytest.raises(TypeError, match=r"rath= takes the image service"):
        search_images("x", rath="not-a-client")  # type: ignore[arg-type]
