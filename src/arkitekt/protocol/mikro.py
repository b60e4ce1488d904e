"""Wire models of mikro: what the client and the server exchange (both import this module).

Pixels never travel in these models: they are written as an OME-Zarr 0.5 image (a zarr v3
group, :mod:`arkitekt.protocol.ome`) into the datalayer an :class:`UploadGrant` names. Shapes
and chunks here are always in the API's order, :data:`DIMS` = (c, t, z, y, x) (on disk the
level arrays are (t, c, z, y, x)).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arkitekt.protocol.mikro_metadata import check_metadata
from arkitekt.protocol.ome import level_count, level_shape
from arkitekt.protocol.text import STORABLE, StoredText, echo

if TYPE_CHECKING:
    from obstore.store import RetryConfig

__all__ = [
    "DIMS",
    "DTYPES",
    "MAX_AXIS",
    "MAX_CHUNK_BYTES",
    "MAX_ID_CHARS",
    "MAX_LEVELS",
    "MAX_OFFSET",
    "MAX_PAGE",
    "MAX_TAG_CHARS",
    "S3_RETRY",
    "Datalayer",
    "DatasetIn",
    "DatasetRecord",
    "ImageFields",
    "ImagePage",
    "ImageRecord",
    "PixelSize",
    "S3Access",
    "Shape5",
    "Storage",
    "UploadGrant",
    "UploadRequest",
    "check_metadata",
]

DIMS: tuple[str, str, str, str, str] = ("c", "t", "z", "y", "x")
"""The dims of every stored array, in storage order."""

DTYPES: frozenset[str] = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
    | {"float16", "float32", "float64"}
)
"""The numpy dtypes an image may have (no object, string, complex or datetime)."""
_ITEMSIZES = {name: 1 if name == "bool" else int(name.strip("uintfloa")) // 8 for name in DTYPES}

MAX_TAG_CHARS = 100
"""The longest tag (also the longest ``tag`` a search filters by)."""
MAX_ID_CHARS = 100
"""The longest id a route takes (ids are UUIDs, 36 characters in their canonical form)."""
MAX_PAGE = 1000
"""The largest ``limit`` of one page of a listing."""
MAX_OFFSET = 1_000_000_000
"""The largest ``offset`` of a page (far beyond any listing, inside SQL's integers)."""
MAX_AXIS = 1 << 40
"""The largest size of one axis of an image (and of a chunk)."""
MAX_CHUNK_BYTES = 64 << 20
"""The largest decoded size of one chunk (chunk shape x item size); the client writes
chunks of about 16 MiB."""


Datalayer = Literal["local", "http", "s3"]
"""Where pixels are written: ``local`` (a directory on a disk the client shares with the
server), ``http`` (chunks PUT through the server) or ``s3`` (straight into the server's
S3-compatible bucket, with short-lived credentials scoped to the image)."""

Storage = Literal["disk", "s3"]
"""Where a stored image's pixels are: the server's disk, or the server's S3 bucket."""

Axis = Annotated[int, Field(ge=1, le=MAX_AXIS)]
Shape5 = tuple[Axis, Axis, Axis, Axis, Axis]


class PixelSize(BaseModel):
    """Physical size of one pixel along each axis (micrometres; ``t`` in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    y: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    z: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    t: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class ImageFields(BaseModel):
    """The descriptive part of an image, given when it is uploaded."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(min_length=1, max_length=500)
    tags: list[StoredText] = Field(default_factory=list, max_length=200)
    dataset: Annotated[str, Field(max_length=MAX_ID_CHARS), STORABLE] | None = Field(
        default=None, description="The id of the dataset it belongs to."
    )
    origins: list[Annotated[str, Field(max_length=MAX_ID_CHARS), STORABLE]] = Field(
        default_factory=list, max_length=1000, description="Ids of the images it derives from."
    )
    channel_names: list[Annotated[str, Field(max_length=500), STORABLE]] = Field(
        default_factory=list, max_length=100_000
    )
    pixel_size: PixelSize = Field(default_factory=PixelSize)
    metadata: dict[str, Any] = Field(default_factory=dict)
    private: bool = Field(
        default=False, description="Visible only to the app that stored it (else: deployment)."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag.strip() or len(tag) > 100:
                raise ValueError("tags must be non-blank and at most 100 characters")
        return list(dict.fromkeys(value))

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_metadata(value)
        return value


MAX_LEVELS = 64
"""The most pyramid levels an upload may store (a level halves y and x: 64 is beyond any axis)."""


class UploadRequest(ImageFields):
    """Ask for an upload grant: the array's layout and its metadata."""

    shape: Shape5
    chunks: Shape5
    level_chunks: list[Shape5] = Field(
        default_factory=list,
        max_length=MAX_LEVELS,
        description="The chunks of each pyramid level stored (level 0: chunks; the first "
        "levels of the pyramid, or all of them); left out: every level, level 0's "
        "chunks with y and x halved level by level.",
    )
    dtype: str
    datalayer: Datalayer | None = Field(
        default=None, description="None: the server's default for this client."
    )

    @field_validator("shape")
    @classmethod
    def _check_shape(cls, value: Shape5) -> Shape5:
        if any(size < 1 for size in value):
            raise ValueError("every axis needs at least one element")
        return value

    @field_validator("chunks")
    @classmethod
    def _check_chunks(cls, value: Shape5) -> Shape5:
        if any(size < 1 for size in value):
            raise ValueError("chunk sizes must be positive")
        return value

    @field_validator("level_chunks")
    @classmethod
    def _check_level_chunks(cls, value: list[Shape5]) -> list[Shape5]:
        if any(size < 1 for chunks in value for size in chunks):
            raise ValueError("chunk sizes must be positive")
        return value

    @field_validator("dtype")
    @classmethod
    def _check_dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"unsupported dtype {echo(value)}; one of {', '.join(sorted(DTYPES))}")
        return value

    @model_validator(mode="after")
    def _check_chunk_bytes(self) -> UploadRequest:
        itemsize = _ITEMSIZES[self.dtype]
        if math.prod(self.chunks) * itemsize > MAX_CHUNK_BYTES:
            raise ValueError(
                f"chunks {self.chunks} of {self.dtype} are {math.prod(self.chunks) * itemsize} "
                f"bytes; one chunk may hold at most {MAX_CHUNK_BYTES}"
            )
        levels = level_count(self.shape)
        if not self.level_chunks:  # level 0's chunks, y and x halved level by level
            self.level_chunks = [level_shape(self.chunks, n) for n in range(levels)]
        if not 1 <= len(self.level_chunks) <= levels or self.level_chunks[0] != self.chunks:
            raise ValueError(
                f"level_chunks must give the chunks of the first 1 to {levels} level(s) of an "
                f"image of shape {self.shape}, level 0's being chunks"
            )
        for level, chunks in enumerate(self.level_chunks):
            if math.prod(chunks) > math.prod(self.chunks):
                raise ValueError(
                    f"level_chunks[{level}] {chunks} holds more than a chunk of level 0 "
                    f"{self.chunks}; a level's chunks may be no larger"
                )
        return self


S3_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": dt.timedelta(seconds=30),
    "backoff": {
        "init_backoff": dt.timedelta(milliseconds=100),
        "max_backoff": dt.timedelta(seconds=2),
        "base": 2,
    },
}
"""How the client and the server retry a request to the bucket (obstore's ``retry_config``)."""


class S3Access(BaseModel):
    """Short-lived credentials that reach one image's keys in an S3-compatible bucket.

    The store root is ``prefix`` in ``bucket`` (``zarr.json``, ``c/0/0/0/0/0``, ... below it).
    The credentials work only there (the server's session policy), only for reading unless
    ``writable``, and only until ``expires_at``.
    """

    endpoint_url: str
    bucket: str
    prefix: str
    region: str
    access_key_id: str = Field(repr=False)
    secret_access_key: str = Field(repr=False)
    session_token: str | None = Field(default=None, repr=False)
    expires_at: dt.datetime
    writable: bool = False


class UploadGrant(BaseModel):
    """Where to write the zarr v3 array of one upload, until ``expires_at``.

    ``local``: write the array (root node) into the directory ``path``. ``http``: PUT each key
    (``zarr.json``, ``c/0/0/0/0/0``, ...) to ``url + key``. ``s3``: write the keys below
    ``s3.prefix`` in ``s3.bucket`` with the credentials in ``s3`` (until ``s3.expires_at``;
    ``uploads/<id>/credentials/`` renews them). Then POST ``uploads/<id>/finish/``.
    """

    id: str
    datalayer: Datalayer
    path: str | None = None
    url: str | None = None
    s3: S3Access | None = None
    expires_at: dt.datetime


class ImageRecord(ImageFields):
    """A stored (finished and verified) image as the server describes it."""

    id: str
    shape: Shape5
    chunks: Shape5
    level_chunks: list[Shape5] = Field(
        default_factory=list,
        description="The chunks of each pyramid level, level 0 first (empty: an image stored "
        "before pyramids, a bare zarr array in (c, t, z, y, x) order at the store's root).",
    )
    dtype: str
    dims: tuple[str, ...] = DIMS
    created_at: dt.datetime
    owner: str = Field(description="Identifier of the app that stored it.")
    store: str = Field(
        description="URL of the store root (the OME-Zarr image group), read through the server."
    )
    local_path: str | None = Field(
        default=None, description="The store's directory, for clients on the server's machine."
    )
    storage: Storage = Field(
        default="disk",
        description="Where the pixels are: 'disk' (the server's) or 's3' (the server's bucket: "
        "read them with the credentials of images/<id>/access/).",
    )


class ImagePage(BaseModel):
    """One page of a search."""

    items: list[ImageRecord]
    total: int
    offset: int
    limit: int


class DatasetIn(BaseModel):
    """Create a dataset."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(min_length=1, max_length=500)
    description: StoredText = Field(default="", max_length=10_000)


class DatasetRecord(DatasetIn):
    """A dataset: a named group of images."""

    id: str
    created_at: dt.datetime
    owner: str
