"""Adopting stores the database does not know (``arkitekt adopt-stores``, server stopped).

Each unknown store under ``stores/`` is checked like a finished upload and registered as an
image owned by nobody in particular (:data:`~arkitekt_server.mikro._housekeeping.ADOPTED_OWNER`),
or, with ``quarantine``, moved aside; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import UploadRequest
from arkitekt.protocol.mikro_metadata import MAX_METADATA_BYTES
from arkitekt.protocol.ome import disk_order, level_count
from arkitekt.protocol.text import echo
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._groups import level_rows
from arkitekt_server.mikro._housekeeping import (
    ADOPTED_OWNER,
    known_names,
    restore_trashed,
    set_aside,
    unknown_entries,
)
from arkitekt_server.mikro._models import DatasetRow, image_row

__all__ = ["AdoptReport", "adopt_command", "adopt_stores"]

log = logging.getLogger("arkitekt_server.mikro")


@dataclass
class AdoptReport:
    """What :func:`adopt_stores` did."""

    adopted: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


def _read_record(layout: storage.Layout, image_id: str) -> dict[str, object]:
    path = layout.record(image_id)
    try:  # a record holds an upload request: at most the metadata's bound and a little
        if path.stat().st_size > 2 * MAX_METADATA_BYTES:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # a damaged record: adopt without it
        return {}
    return data if isinstance(data, dict) else {}


async def adopt_stores(
    session: AsyncSession, layout: storage.Layout, *, quarantine: bool = False
) -> AdoptReport:
    """Register the stores the database does not know as images again (or set them aside).

    A store is adopted when it passes the same verification as a finished upload; its name,
    tags and metadata come from the record written at finish (``records/<id>.json``; a store
    without one is adopted as ``adopted <id>``). Adopted images belong to no app
    (:data:`ADOPTED_OWNER`); a dataset that no longer exists is dropped. A store that fails
    verification, every unknown upload directory, every store in ``trash/`` whose image the
    database does not know, and with ``quarantine`` every unknown store are moved to
    ``quarantine/`` instead. Nothing is deleted.

    Args:
        session: a session on the server's database (the server must not be running).
        layout: the mikro directories.
        quarantine: set every unknown store aside instead of adopting it.

    Returns:
        What was adopted and what was quarantined (with the reasons).

    """
    layout.create()
    report = AdoptReport()
    grants, stores = await known_names(session)
    restore_trashed(layout, stores)
    for entry in sorted(layout.trash.iterdir()):
        set_aside(layout, entry)
        report.quarantined.append(entry.name)
        report.reasons[entry.name] = "an image being deleted when the server stopped"
    for entry in unknown_entries(layout.uploads, grants, None):
        set_aside(layout, entry)
        report.quarantined.append(entry.name)
        report.reasons[entry.name] = "an unfinished upload no grant knows"
    for entry in unknown_entries(layout.stores, stores, None):
        reason = "--quarantine" if quarantine else await _adopt(session, layout, entry)
        if reason is None:
            report.adopted.append(entry.name)
            continue
        set_aside(layout, entry)
        report.quarantined.append(entry.name)
        report.reasons[entry.name] = reason
    return report


def _layout_of(location: storage.Location) -> dict[str, object]:
    """The shape, chunks and dtype a store's ``zarr.json`` documents say (level by level for
    an image group, in (c, t, z, y, x) order), for adopting it: verification then checks them."""
    meta = storage.read_meta(location)
    if meta["node_type"] != "group":  # a store from before pyramids: one array at the root
        return {
            "shape": meta["shape"],
            "chunks": meta["chunk_grid"]["configuration"]["chunk_shape"],
            "dtype": meta["data_type"],
            "level_chunks": [],
        }
    level = storage.read_meta(location, "0/zarr.json")
    shape = disk_order(level["shape"])
    chunks = []
    for n in range(_stored_levels(meta, level_count(shape))):
        document = level if n == 0 else storage.read_meta(location, f"{n}/zarr.json")
        chunks.append(disk_order(document["chunk_grid"]["configuration"]["chunk_shape"]))
    return {
        "shape": shape,
        "chunks": chunks[0],
        "dtype": level["data_type"],
        "level_chunks": chunks,
    }


def _stored_levels(group: dict[str, object], most: int) -> int:
    """How many levels an image group says it holds (``from_xarray(levels=n)`` stores the first
    ``n``), at most ``most``; verification then checks the group and every level."""
    try:
        datasets = group["attributes"]["ome"]["multiscales"][0]["datasets"]  # type: ignore[index]
        return max(1, min(len(datasets), most))
    except (KeyError, IndexError, TypeError):
        return most


async def _adopt(session: AsyncSession, layout: storage.Layout, entry: Path) -> str | None:
    """Adopt one store; the reason it cannot be adopted, else ``None``."""
    try:
        image_id = str(uuid.UUID(entry.name))
        if image_id != entry.name:
            raise ValueError(f"{entry.name!r} is not an image id in canonical form")
        location = storage.DiskLocation(entry)
        record = _read_record(layout, image_id)
        fields = dict(record.get("request") or {})  # type: ignore[call-overload]
        fields.update(_layout_of(location))
        fields.setdefault("name", f"adopted {image_id}")
        body = UploadRequest.model_validate(fields)
        checked = storage.verify_store(location, body, legacy=True)
    except (
        ValueError,
        KeyError,
        TypeError,
        OSError,
        RecursionError,
        storage.StoreInvalidError,
    ) as error:
        return f"{type(error).__name__}: {echo(str(error), 200)}"
    dataset = body.dataset
    if dataset is not None and await session.get(DatasetRow, dataset) is None:
        dataset = None
    try:  # a damaged date in the record costs the date, not the image
        created = dt.datetime.fromisoformat(str(record["created_at"]))
    except (KeyError, ValueError):
        created = None
    session.add(
        image_row(
            image_id,
            body,
            owner_pk=ADOPTED_OWNER,
            owner=str(record.get("owner") or "unknown (adopted)")[:200],
            dataset_id=dataset,
            meta_sha256=checked.meta_sha256,
            levels=level_rows(checked),
            created_at=created,
        )
    )
    await session.commit()
    return None


async def adopt_command(session: AsyncSession, data_dir: Path, *, quarantine: bool) -> str:
    """Run :func:`adopt_stores` on a data directory; the report ``arkitekt adopt-stores`` prints."""
    layout = storage.Layout(data_dir)
    report = await adopt_stores(session, layout, quarantine=quarantine)
    lines = [f"adopted {len(report.adopted)} store(s) as images"]
    lines += [f"  {image_id}" for image_id in report.adopted]
    lines.append(f"moved {len(report.quarantined)} to {layout.quarantine}")
    lines += [f"  {name}: {report.reasons[name]}" for name in report.quarantined]
    return "\n".join(lines)
