"""An upload grant's life on the client: ask for it, write the store it names, finish it.

On any failure the grant is aborted (shielded from cancellation) and the caller sees one
mikro error that says what became of the upload.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from arkitekt.errors import LocalPathError, UploadError
from arkitekt.mikro._answers import BOUNDED, detail, parse, raise_for
from arkitekt.protocol.mikro import ImageRecord, UploadGrant, UploadRequest

__all__ = ["abort", "run_grant"]

log = logging.getLogger("arkitekt.mikro")


async def run_grant(
    client: httpx.AsyncClient,
    endpoint: str,
    request: UploadRequest,
    *,
    store_for: Callable[[UploadGrant], Any],
    write: Callable[[Any], Awaitable[None]],
) -> tuple[ImageRecord, Any]:
    """Ask for a grant, write its store with ``write``, and finish it.

    Args:
        client: the app's HTTP client.
        endpoint: the mikro API's root URL (ending in ``/``).
        request: the upload request (metadata, shape, chunks, datalayer).
        store_for: the zarr store a grant names.
        write: writes every chunk into the store.

    Returns:
        The record of the finished image and the store it was written to.

    Raises:
        InvalidImageError: the server refused the request (nothing was uploaded).
        ImageNotFoundError: the dataset or an origin does not exist.
        LocalPathError: the grant's local path is not safe to write here (grant aborted).
        UploadError: writing or finishing failed (grant aborted).

    """
    response = await client.post(
        endpoint + "uploads/", json=request.model_dump(mode="json"), extensions=BOUNDED
    )
    raise_for(response)
    grant = parse(response, UploadGrant, "an upload grant")
    try:
        store = store_for(grant)
        await write(store)
        response = await client.post(endpoint + f"uploads/{grant.id}/finish/", extensions=BOUNDED)
        raise_for(response, UploadError)
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            aborted = await abort(client, endpoint, grant.id)
        if isinstance(error, LocalPathError):
            raise LocalPathError(f"{error}; {aborted}") from None
        if isinstance(error, UploadError):
            raise UploadError(f"{error} ({aborted})") from error
        if isinstance(error, Exception):
            raise UploadError(
                f"uploading {request.name!r} failed, {aborted}: {type(error).__name__}: {error}"
            ) from error
        raise
    return parse(response, ImageRecord, "an image record"), store


async def abort(client: httpx.AsyncClient, endpoint: str, grant_id: str) -> str:
    """Abort a grant on the server; what became of the upload, for the error message."""
    try:
        answer = await client.delete(endpoint + f"uploads/{grant_id}/")
    except Exception as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        if answer.status_code in (204, 404):  # 404: nothing of it is left either
            return "nothing was stored"
        problem = f"HTTP {answer.status_code}: {detail(answer)}"
    log.warning("could not abort upload grant %s: %s", grant_id, problem)
    return (
        f"the server did not confirm the abort of upload {grant_id} ({problem}); it removes "
        "the upload when its grant expires"
    )
