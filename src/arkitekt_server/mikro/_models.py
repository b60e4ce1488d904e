"""Tables of mikro: images (with tags), datasets and open upload grants."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arkitekt.protocol.mikro import UploadRequest
from arkitekt_server._db import Base, utcnow

__all__ = ["DatasetRow", "GrantRow", "ImageRow", "TagRow"]


class DatasetRow(Base):
    """A named group of images; visible to every app of the deployment."""

    __tablename__ = "mikro_datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), index=True)
    description: Mapped[str] = mapped_column(String(10_000), default="")
    owner_pk: Mapped[int] = mapped_column(Integer, index=True)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ImageRow(Base):
    """A finished, verified image. Its pixels are the OME-Zarr image ``stores/<id>`` (or its
    prefix in the bucket)."""

    __tablename__ = "mikro_images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), index=True)
    owner_pk: Mapped[int] = mapped_column(Integer, index=True)
    owner: Mapped[str] = mapped_column(String(200))
    private: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("mikro_datasets.id", ondelete="SET NULL"), default=None, index=True
    )
    shape: Mapped[list[int]] = mapped_column(JSON)
    chunks: Mapped[list[int]] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(16))
    origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    pixel_size: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    meta_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    """The SHA-256 of the ``zarr.json`` verification accepted (``None``: an image from before
    it was kept; its ``zarr.json`` is then checked field by field against this row)."""
    credentials_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    """Until when write credentials handed out for its upload stay valid (s3 only)."""
    levels: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    """Each pyramid level's chunks and the SHA-256 of its ``zarr.json``, level 0 first
    (``None``: an image from before pyramids, one array at its store's root)."""
    tags: Mapped[list[TagRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TagRow.position"
    )


def image_row(
    image_id: str,
    body: UploadRequest,
    *,
    owner_pk: int,
    owner: str,
    dataset_id: str | None,
    meta_sha256: str | None,
    created_at: dt.datetime | None = None,
    credentials_until: dt.datetime | None = None,
    levels: list[dict[str, Any]] | None = None,
) -> ImageRow:
    """The row of an image whose verified store holds what ``body`` declared."""
    return ImageRow(
        id=image_id,
        name=body.name,
        owner_pk=owner_pk,
        owner=owner,
        private=body.private,
        dataset_id=dataset_id,
        shape=list(body.shape),
        chunks=list(body.chunks),
        dtype=body.dtype,
        origins=body.origins,
        channel_names=body.channel_names,
        pixel_size=body.pixel_size.model_dump(exclude_none=True),
        extra=body.metadata,
        created_at=created_at or utcnow(),
        meta_sha256=meta_sha256,
        credentials_until=credentials_until,
        levels=levels,
        tags=[TagRow(tag=tag, position=i) for i, tag in enumerate(body.tags)],
    )


class TagRow(Base):
    """One tag of an image (a table, so searching by tag uses an index)."""

    __tablename__ = "mikro_image_tags"

    image_id: Mapped[str] = mapped_column(
        ForeignKey("mikro_images.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class GrantRow(Base):
    """An upload in progress: the directory ``uploads/<id>`` the pixels are written to.

    ``state`` is ``open`` while chunks arrive, ``finishing`` while the store is verified, and
    ``abandoned`` once aborted or expired: only then may the sweeper remove its directory. An
    ``abandoned`` s3 grant stays (a tombstone; a deleted image whose uploader's credentials may
    still write gets one too) until its credentials lapsed, so the sweep removes late writes.
    """

    __tablename__ = "mikro_upload_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_pk: Mapped[int] = mapped_column(Integer, index=True)
    owner: Mapped[str] = mapped_column(String(200))
    datalayer: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    credentials_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    """Until when the write credentials handed out for its prefix stay valid (s3 only;
    recorded before they are handed out)."""
