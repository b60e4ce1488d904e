"""Housekeeping of mikro's directories: sweeping abandoned uploads and the start-up check.

Adopting unknown stores is :mod:`arkitekt_server.mikro._adopt`.

The rule: a directory is deleted only when the database records it as the server's own
leftover — the upload directory of a grant in state ``abandoned`` (aborted, or expired and
marked so by the sweep), or a store in ``trash/`` whose image row is gone. A finished store
(in ``stores/``) is never deleted because of a grant: only an image row or a grant in state
``finishing`` knows one. A grant still ``open`` beside a finished store comes from a database
restored from a backup taken during that upload, so the store is unknown like any other. A
directory nothing in the database knows is never deleted: the sweep logs it; at start-up an
unknown *store* means the database is not the one the stores were written with (deleted, or
restored from an older backup), and the server refuses to start until an operator runs
``arkitekt adopt-stores``. A ``finishing`` grant whose finish never committed (a crash after
the store moved) is completed by the sweep: the store passed verification before it moved.

In the bucket (the ``s3`` datalayer) an upload is written where its image will be (an image
keeps its grant's id); the sweep deletes the keys below an ``abandoned`` grant's prefix unless
an image has that id, and drops the grant only once a sweep after its credentials lapsed has
removed them (they may write until then; a deleted image leaves such a grant too). No database
transaction stays open while the bucket is listed or deleted from. Keys in the bucket that no
grant or image knows are left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import anyio.to_thread
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.mikro import UploadRequest
from arkitekt_server._db import Database, utcnow
from arkitekt_server._errors import ArkitektServerError
from arkitekt_server.mikro import _storage as storage
from arkitekt_server.mikro._bucket import Bucket
from arkitekt_server.mikro._bucket_uploads import credentials_lapse
from arkitekt_server.mikro._common import MikroState
from arkitekt_server.mikro._groups import level_rows
from arkitekt_server.mikro._models import DatasetRow, GrantRow, ImageRow, image_row

__all__ = [
    "ADOPTED_OWNER",
    "UnknownStoresError",
    "check_stores",
    "known_names",
    "restore_trashed",
    "set_aside",
    "sweep",
    "unknown_entries",
]

log = logging.getLogger("arkitekt_server.mikro")

ADOPTED_OWNER = 0
"""The owner of adopted images: no app (client primary keys start at 1), so no app may
delete them and private ones are visible to none (the apps of a lost database are gone)."""
FINISH_GRACE = dt.timedelta(hours=1)
"""A finish in progress past its grant's expiry gets this long more (it takes seconds; one that
never ended was interrupted by a crash)."""
UNKNOWN_MIN_AGE = dt.timedelta(minutes=5)
"""A directory nothing knows is not even reported before this age (its grant or image may be
committed after the sweep read the tables)."""


class UnknownStoresError(ArkitektServerError, RuntimeError):
    """Image stores exist that the database does not know: the server must not start."""


async def known_names(session: AsyncSession) -> tuple[set[str], set[str]]:
    """The ids that know an upload directory (every grant) and those that know a store.

    Only an image or a ``finishing`` grant knows a store: an ``open`` or ``abandoned`` grant
    never had one (an ``open`` grant beside a store is from a restored backup).
    """
    # grants first: a finish commits its image and drops its grant at once, so a store read
    # between the two queries is still known (by one or the other)
    rows = (await session.execute(select(GrantRow.id, GrantRow.state))).all()
    images = set(await session.scalars(select(ImageRow.id)))
    finishing = {grant_id for grant_id, state in rows if state == "finishing"}
    return {grant_id for grant_id, _ in rows}, finishing | images


def unknown_entries(parent: Path, known: set[str], min_age: dt.timedelta | None) -> list[Path]:
    cutoff = None if min_age is None else (utcnow() - min_age).timestamp()
    found = []
    for entry in sorted(parent.iterdir()):
        if entry.name in known:
            continue
        try:  # ctime: a rename (a finish moving a store) updates it, mtime does not
            if cutoff is not None and entry.lstat().st_ctime > cutoff:
                continue
        except FileNotFoundError:
            continue
        found.append(entry)
    return found


def _remove_abandoned(layout: storage.Layout, grant_id: str, image_exists: bool) -> None:
    storage.remove(layout.upload(grant_id))
    # the record of a finish that failed before its store moved; a store (never deleted here)
    # keeps its record, which adopting it needs
    if not image_exists and not layout.store(grant_id).exists():
        storage.remove(layout.record(grant_id))


async def _remove_from_bucket(bucket: Bucket | None, grant_id: str, image_exists: bool) -> bool:
    """Delete an abandoned s3 upload's keys (never those of an image); whether that is done."""
    if image_exists:
        return True
    if bucket is None:
        log.warning(
            "mikro: abandoned upload %s is in a bucket, and this server has none configured; "
            "it is kept until the s3 settings are back",
            grant_id,
        )
        return False
    try:
        await anyio.to_thread.run_sync(bucket.location(grant_id).remove)
    except Exception as error:  # unreachable now: the next sweep tries again
        log.warning(
            "mikro: removing abandoned upload %s from %s failed (%s); tried again later",
            grant_id,
            bucket.where,
            type(error).__name__,
        )
        return False
    return True


async def _complete_finishes(
    session: AsyncSession, layout: storage.Layout, moment: dt.datetime, live: set[str]
) -> None:
    """Complete each finish that moved its store but never committed (past its grace).

    The store passed verification before it moved; it is verified again and becomes the image
    its grant asked for, owned by the grant's app. One that fails goes to ``quarantine/``.
    ``live`` are the grants a finish of this process is working on (left to it).
    """
    stalled = await session.scalars(
        select(GrantRow).where(
            GrantRow.state == "finishing", GrantRow.expires_at <= moment - FINISH_GRACE
        )
    )
    for grant in list(stalled):
        store = layout.store(grant.id)
        if grant.id in live or not store.exists():  # the store never moved: swept as usual
            continue
        if await session.get(ImageRow, grant.id) is not None:  # an image: the grant goes
            continue
        body = UploadRequest.model_validate(grant.request)
        try:
            checked = await anyio.to_thread.run_sync(
                storage.verify_store, storage.DiskLocation(store), body
            )
        except (OSError, ValueError, storage.StoreInvalidError) as error:
            await anyio.to_thread.run_sync(set_aside, layout, store)
            log.error(
                "mikro: interrupted finish %s: store moved to quarantine (%s)", grant.id, error
            )
            await session.delete(grant)  # its record stays, beside the quarantined store
            await session.commit()
            continue
        dataset = body.dataset
        if dataset is not None and await session.get(DatasetRow, dataset) is None:
            dataset = None
        session.add(
            image_row(
                grant.id,
                body,
                owner_pk=grant.owner_pk,
                owner=grant.owner,
                dataset_id=dataset,
                meta_sha256=checked.meta_sha256,
                levels=level_rows(checked),
            )
        )
        await session.delete(grant)
        await session.commit()
        log.warning("mikro: completed the interrupted finish of image %s", grant.id)


def restore_trashed(layout: storage.Layout, images: set[str]) -> None:
    for entry in layout.trash.iterdir():
        if entry.name in images:  # a delete that crashed before its commit: the image stays
            os.replace(entry, layout.stores / entry.name)


def _empty_trash(layout: storage.Layout) -> None:
    for entry in layout.trash.iterdir():
        storage.remove(entry)


async def sweep(
    database: Database,
    layout: storage.Layout,
    now: dt.datetime | None = None,
    state: MikroState | None = None,
) -> int:
    """Mark expired grants abandoned, then remove every abandoned grant with its directory.

    Directories no grant or image owns are left alone and logged (see the module docstring).

    Args:
        database: the server's database.
        layout: the mikro directories.
        now: the time to compare expiry with (default: now; tests pass a later time).
        state: the server's mikro caches, to drop the removed grants from.

    Returns:
        How many grants were removed.

    """
    moment = utcnow() if now is None else now
    async with database.sessions() as session:
        live = set() if state is None else {k for k, v in state.uploads.items() if v.finishing}
        await _complete_finishes(session, layout, moment, live)
        await session.execute(
            update(GrantRow)
            .where(
                GrantRow.expires_at <= moment,
                or_(GrantRow.state == "open", GrantRow.expires_at <= moment - FINISH_GRACE),
            )
            .values(state="abandoned")
        )
        await session.commit()
        abandoned = list(
            await session.scalars(select(GrantRow).where(GrantRow.state == "abandoned"))
        )
        ids = [grant.id for grant in abandoned]
        images = set(await session.scalars(select(ImageRow.id).where(ImageRow.id.in_(ids))))
        await session.commit()  # no transaction stays open across the bucket's I/O
        removed = 0
        for grant in abandoned:
            if state is not None:
                state.uploads.pop(grant.id, None)
            exists = grant.id in images
            if grant.datalayer == "s3":
                bucket = None if state is None else state.bucket
                if not await _remove_from_bucket(bucket, grant.id, exists):
                    continue
                if credentials_lapse(grant) > moment:  # they may still write: swept again
                    continue
            else:
                await anyio.to_thread.run_sync(_remove_abandoned, layout, grant.id, exists)
            await session.execute(delete(GrantRow).where(GrantRow.id == grant.id))
            await session.commit()
            removed += 1
        grants, stores = await known_names(session)
    for parent, known in ((layout.uploads, grants), (layout.stores, stores)):
        stray = await anyio.to_thread.run_sync(unknown_entries, parent, known, UNKNOWN_MIN_AGE)
        for entry in stray:
            if state is None or entry not in state.reported:
                log.warning(
                    "mikro: %s is not known to the database; it is left alone "
                    "(see `arkitekt adopt-stores`)",
                    entry,
                )
                if state is not None:
                    state.reported.add(entry)
    if removed:
        log.info("mikro: removed %d abandoned upload(s)", removed)
    return removed


async def check_stores(database: Database, layout: storage.Layout) -> None:
    """At start-up: put back stores whose delete never committed, refuse to start when
    stores exist that the database does not know, else empty the trash.

    Raises:
        UnknownStoresError: naming how many stores, where, and what to do.

    """
    async with database.sessions() as session:
        _, stores = await known_names(session)
        images = set(await session.scalars(select(ImageRow.id)))
    await anyio.to_thread.run_sync(restore_trashed, layout, images)
    stray = await anyio.to_thread.run_sync(unknown_entries, layout.stores, stores, None)
    if stray:
        where = database.endpoint
        message = (
            f"{len(stray)} image store(s) in {layout.stores} are not in the database "
            f"{where} (was it deleted, or restored from an older backup?). Nothing was "
            "deleted. Stop here and run `arkitekt adopt-stores --data-dir <data dir>` to "
            "register them as images again, or `arkitekt adopt-stores --quarantine` to move "
            f"them to {layout.quarantine}; then start the server again."
        )
        raise UnknownStoresError(message)  # the server reports it in one line
    # only now: with a database that is not the stores' own, a missing row proves nothing
    await anyio.to_thread.run_sync(_empty_trash, layout)


def set_aside(layout: storage.Layout, entry: Path) -> None:
    layout.quarantine.mkdir(mode=0o700, exist_ok=True)
    target = layout.quarantine / f"{entry.parent.name}-{entry.name}"
    os.replace(entry, target)
