"""The ``s3`` datalayer on the client: zarr straight to and from the server's bucket.

The server hands out short-lived credentials that reach one image's prefix only
(:class:`~arkitekt.protocol.mikro.S3Access`: write for an upload, read for an image). The store
is obstore's ``S3Store`` (request signing is obstore's) under zarr's ``ObjectStore``; when the
credentials near their expiry obstore asks :class:`Credentials` again, which renews them through
the server. :class:`BucketStore` bounds what a read allocates (a key larger than any chunk of the
image is not read) and turns the store's refusals into :mod:`arkitekt.errors`.

obstore is imported here only, when an image is first written or read through a bucket.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from arkitekt.errors import MikroError, PermissionDeniedError
from arkitekt.protocol.chunks import META_MAX_BYTES
from arkitekt.protocol.mikro import S3_RETRY, S3Access

__all__ = ["RENEW_BEFORE", "BucketStore", "Credentials", "bucket_store", "store_error"]

RENEW_BEFORE = dt.timedelta(seconds=60)
"""Credentials this close to their expiry are renewed before use."""


class Credentials:
    """obstore's credential provider: the current credentials, renewed near their expiry.

    Args:
        first: the credentials the grant (or the access request) brought.
        renew: fetches fresh ones from the server (blocking; called off the app's loop).

    """

    def __init__(self, first: S3Access, renew: Callable[[], S3Access]) -> None:
        self.access = first
        self._renew = renew

    def __call__(self) -> dict[str, Any]:
        """The credentials as obstore wants them (renewed first if they expire soon)."""
        if self.access.expires_at - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
            self.access = self._renew()
        return {
            "access_key_id": self.access.access_key_id,
            "secret_access_key": self.access.secret_access_key,
            "token": self.access.session_token,
            "expires_at": self.access.expires_at,
        }


def store_error(error: BaseException, access: S3Access, key: str, doing: str) -> MikroError | None:
    """The mikro error for a refusal of the bucket, or ``None`` when ``error`` is none.

    Args:
        error: what obstore raised.
        access: whose keys (named in the message: endpoint, bucket, prefix; never a key).
        key: the zarr key.
        doing: ``"reading"`` or ``"writing"``.

    """
    from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError

    if not isinstance(error, BaseError | OSError):
        return None
    where = f"{access.endpoint_url} bucket {access.bucket!r} key {access.prefix}/{key}"
    text = str(error)
    if isinstance(error, PermissionDeniedError | UnauthenticatedError) or any(
        code in text for code in ("AccessDenied", "ExpiredToken", "InvalidAccessKeyId", "403")
    ):
        expired = access.expires_at <= dt.datetime.now(dt.UTC) or "Expired" in text
        why = (
            "the credentials from the server expired"
            if expired
            else "the credentials from the server do not reach it (or the server's role "
            "lacks the permission)"
        )
        return _permission(f"the object store refused {doing} {where}: {why}", doing)
    return MikroError(
        f"{doing} {where} failed: {type(error).__name__}: {text[:300]} (is the object store "
        "reachable from this machine?)"
    )


def _permission(message: str, doing: str) -> MikroError:
    return PermissionDeniedError(message) if doing == "reading" else MikroError(message)


class BucketStore(WrapperStore[Store]):
    """zarr's ``ObjectStore`` on one image's prefix, with bounded reads and clear errors.

    Args:
        store: zarr's ``ObjectStore`` on an obstore ``S3Store`` rooted at the image's prefix.
        credentials: the store's credential provider (its current credentials name the
            endpoint, bucket and prefix in messages).
        max_chunk_bytes: a key larger than this is not read (``zarr.json``: 1 MiB).

    """

    def __init__(self, store: Store, credentials: Credentials, max_chunk_bytes: int) -> None:
        super().__init__(store)
        self.credentials = credentials
        self.max_chunk_bytes = max_chunk_bytes

    @property
    def access(self) -> S3Access:
        """The credentials in use now."""
        return self.credentials.access

    def _wrap(self, store: Store) -> BucketStore:
        return type(self)(store, self.credentials, self.max_chunk_bytes)

    def with_read_only(self, read_only: bool = False) -> BucketStore:
        """The same store with another write permission."""
        return self._wrap(self._store.with_read_only(read_only))

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        """One key; a whole key is read only when its size (known first) is within bounds."""
        import obstore

        prototype = prototype or default_buffer_prototype()
        try:
            if byte_range is not None:
                return await self._store.get(key, prototype, byte_range)
            result = await obstore.get_async(self._store.store, key)  # type: ignore[attr-defined]
            limit = META_MAX_BYTES if key.endswith("zarr.json") else self.max_chunk_bytes
            size = int(result.meta["size"])
            if size > limit:
                raise MikroError(
                    f"{key!r} of the image at {self.access.endpoint_url} bucket "
                    f"{self.access.bucket!r} is {size} bytes, more than any key of it can be "
                    f"({limit}); it is not read"
                )
            return prototype.buffer.from_bytes(memoryview(await result.bytes_async()))  # no copy
        except FileNotFoundError:
            return None
        except Exception as error:
            raise store_error(error, self.access, key, "reading") or error from None

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        """Several keys, each as :meth:`get` reads it."""
        from arkitekt.mikro._stores import gather_gets

        return await gather_gets(self, prototype, key_ranges)

    async def set(self, key: str, value: Buffer) -> None:
        """Write one key."""
        try:
            await self._store.set(key, value)
        except Exception as error:
            raise store_error(error, self.access, key, "writing") or error from None

    async def exists(self, key: str) -> bool:
        """Whether the key exists."""
        try:
            return await self._store.exists(key)
        except Exception as error:
            raise store_error(error, self.access, key, "reading") or error from None


def bucket_store(
    access: S3Access, renew: Callable[[], S3Access], *, max_chunk_bytes: int
) -> BucketStore:
    """The zarr store of the keys ``access`` reaches (writable if its credentials are)."""
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    credentials = Credentials(access, renew)
    store = S3Store(
        access.bucket,
        prefix=access.prefix,
        endpoint=access.endpoint_url,
        region=access.region,
        virtual_hosted_style_request=False,
        credential_provider=credentials,  # type: ignore[arg-type]
        client_options={"allow_http": access.endpoint_url.startswith("http://")},
        retry_config=S3_RETRY,
    )
    return BucketStore(
        ObjectStore(store, read_only=not access.writable), credentials, max_chunk_bytes
    )
