"""Reading the mikro API's answers: bounded, parsed, and refusals as mikro errors."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import httpx
from pydantic import RootModel, TypeAdapter, ValidationError
from pydantic.types import FailFast

from arkitekt.errors import (
    ImageNotFoundError,
    InvalidImageError,
    MikroError,
    PermissionDeniedError,
)
from arkitekt.mikro._models import Dataset
from arkitekt.protocol.mikro import ImagePage as ImagePageRecord
from arkitekt.protocol.mikro import ImageRecord
from arkitekt.transport import MAX_BODY

__all__ = [
    "ANSWER_MAX_BYTES",
    "BOUNDED",
    "DatasetList",
    "PageAnswer",
    "detail",
    "parse",
    "raise_for",
]

T = TypeVar("T")

ANSWER_MAX_BYTES = 8 << 20
"""The largest JSON answer of the mikro API the client reads (decoded): an image record holds
at most 1 MiB of metadata; a page of images larger than this fails (ask for fewer)."""

BOUNDED = {MAX_BODY: ANSWER_MAX_BYTES}
"""``extensions=`` of every request to the mikro API.

Lists are validated fail-fast below: a list of a million bad items must not cost an error
object each (gigabytes of them for a few MiB of ``[{}, {}, ...]``)."""


class DatasetList(RootModel[list[Dataset]]):
    """A list of datasets as the client reads it: the first bad item ends validation."""

    # On the field, not in RootModel[...]: pydantic < 2.14 hashes generic arguments, and
    # FailFast() is unhashable there.
    root: Annotated[list[Dataset], FailFast()]


class PageAnswer(ImagePageRecord):
    """A page of images as the client reads it: the first bad item ends validation."""

    items: Annotated[list[ImageRecord], FailFast()]


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def parse(response: httpx.Response, kind: type[T], what: str) -> T:
    """The answer as ``kind``, or a :class:`MikroError` naming the request (never pydantic's)."""
    try:
        adapter = _ADAPTERS.get(kind) or _ADAPTERS.setdefault(kind, TypeAdapter(kind))
        return adapter.validate_json(response.content)  # type: ignore[no-any-return]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise MikroError(
            f"{response.request.method} {response.request.url} did not answer {what} "
            f"({error.error_count()} problem(s), first: {where}: {first['msg']}); is the "
            "server an arkitekt server of a matching version?"
        ) from None


def detail(response: httpx.Response) -> str:
    """What the server said was wrong (FastAPI's ``detail``), bounded, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(_problem(item) for item in detail[:10])
    return str(detail)[:1000] if detail else response.text[:300]


def _problem(item: Any) -> str:
    """One FastAPI validation error as ``field: message`` (any other shape as text)."""
    if not isinstance(item, dict) or not isinstance(item.get("loc"), list):
        return str(item)[:200]
    return f"{'.'.join(str(part) for part in item['loc'][1:])}: {item.get('msg')}"


def raise_for(response: httpx.Response, default: type[MikroError] = MikroError) -> None:
    """Raise the mikro error for a refusal (404, 403, 4xx, 5xx); nothing for a success."""
    if not response.is_error:
        return
    said = detail(response)
    status = response.status_code
    if status == 404:
        raise ImageNotFoundError(said)
    if status == 403:
        raise PermissionDeniedError(said)
    if status in (400, 413, 422) and default is MikroError:
        raise InvalidImageError(said)
    request = response.request
    hint = " (the server failed; its log says why)" if status >= 500 else ""
    raise default(f"{request.method} {request.url} answered HTTP {status}{hint}: {said}")
