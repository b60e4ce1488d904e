"""Property tests of the mikro wire models' bounds (shared by client and server)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arkitekt.protocol.mikro import MAX_CHUNK_BYTES, DatasetIn, ImageFields, UploadRequest
from arkitekt.protocol.mikro_metadata import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, check_metadata

_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _storable_text(text: str) -> bool:
    return "\0" not in text and not any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _storable(value: Any) -> bool:
    """Finite numbers, and texts (keys too) without NUL or lone surrogates."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return all(_storable_text(k) and _storable(v) for k, v in value.items())
    return all(_storable(child) for child in value) if isinstance(value, list) else True


def _chain(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = {"k": leaf} if i % 2 else [leaf]
    return leaf


@given(
    tree=st.recursive(
        _LEAVES,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3), children, max_size=3)
        ),
        max_leaves=20,
    ),
    extra=st.integers(0, 40),
)
@settings(max_examples=200, deadline=None)
def test_metadata_is_accepted_exactly_when_storable_and_shallow_enough(
    tree: Any, extra: int
) -> None:
    metadata = {"m": _chain(extra, tree)}
    fits = _depth(metadata) <= MAX_METADATA_DEPTH and _storable(metadata)
    if fits:
        check_metadata(metadata)
        assert ImageFields(name="n", metadata=metadata).metadata == metadata
    else:
        with pytest.raises(ValueError, match=r"^metadata") as caught:
            check_metadata(metadata)
        reasons = ("nests deeper than 32", "must be finite", "NUL character or a lone surrogate")
        assert any(reason in str(caught.value) for reason in reasons), caught.value
        with pytest.raises(ValidationError, match="metadata"):
            ImageFields(name="n", metadata=metadata)


def test_metadata_deeper_than_the_stack_is_refused_without_recursion() -> None:
    with pytest.raises(ValueError, match="nests deeper than 32"):
        check_metadata({"m": _chain(100_000, 1)})


def test_metadata_size_is_bounded() -> None:
    check_metadata({"m": "x" * (MAX_METADATA_BYTES - 10)})
    with pytest.raises(ValueError, match=f"more than {MAX_METADATA_BYTES}"):
        check_metadata({"m": "x" * MAX_METADATA_BYTES})
    assert len(json.dumps({"m": "x" * (MAX_METADATA_BYTES - 10)})) <= MAX_METADATA_BYTES


@given(
    chunks=st.tuples(*[st.integers(1, 1 << 14)] * 5),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "float64", "bool"]),
)
@settings(max_examples=200, deadline=None)
def test_a_chunk_decodes_to_at_most_the_chunk_bound(chunks: tuple[int, ...], dtype: str) -> None:
    itemsize = {"uint8": 1, "bool": 1, "uint16": 2, "float32": 4, "float64": 8}[dtype]
    body = {"name": "n", "shape": chunks, "chunks": chunks, "dtype": dtype}
    if math.prod(chunks) * itemsize <= MAX_CHUNK_BYTES:
        assert UploadRequest.model_validate(body).chunks == chunks
    else:
        with pytest.raises(ValidationError, match=f"at most {MAX_CHUNK_BYTES}"):
            UploadRequest.model_validate(body)


_ANY_CHAR = st.characters(exclude_categories=()) | st.sampled_from(["\0", "\udc00", "\ud800"])


@given(text=st.text(alphabet=_ANY_CHAR, min_size=1, max_size=20))
@settings(max_examples=300, deadline=None)
def test_a_stored_text_is_accepted_exactly_when_a_database_can_store_it(text: str) -> None:
    text = text if text.strip() else "n" + text  # names must not be blank
    texts = {"name": text, "tags": [text], "channel_names": [text], "dataset": text}
    for field, value in texts.items():
        body = {"name": "n", "shape": [1] * 5, "chunks": [1] * 5, "dtype": "uint8", field: value}
        if _storable_text(text):
            UploadRequest.model_validate(body)
            DatasetIn(name=text, description=text)
        else:
            with pytest.raises(ValidationError, match=field):
                UploadRequest.model_validate(body)
            with pytest.raises(ValidationError, match="name"):
                DatasetIn(name=text)
