"""Errors of mikro; all are :class:`~arkitekt.errors.ArkitektError` subclasses."""

from __future__ import annotations

from arkitekt.errors import ArkitektError

__all__ = [
    "ImageNotFoundError",
    "InvalidImageError",
    "LocalPathError",
    "MikroError",
    "PermissionDeniedError",
    "UploadError",
]


class MikroError(ArkitektError):
    """Base class of the image service's errors."""


class InvalidImageError(MikroError, ValueError):
    """The input cannot be stored as an image (raised before anything is uploaded)."""


class UploadError(MikroError):
    """Writing the pixels failed or the server refused the store; no image was created.

    The upload can simply be retried.
    """


class LocalPathError(MikroError):
    """A ``local`` datalayer path from the server is not safe to write or read here.

    The message names the path and why (not this machine, outside the server's advertised
    local root, not empty); nothing was written to it. Use ``datalayer="http"``.
    """


class ImageNotFoundError(MikroError, LookupError):
    """No such image (or dataset), or it is not visible to this app."""


class PermissionDeniedError(MikroError):
    """The image is visible to this app but it may not change it (only its owner may)."""
