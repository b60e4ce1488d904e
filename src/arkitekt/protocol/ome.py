"""The OME-Zarr 0.5 image of a stored mikro image: its levels and its ``ome`` attributes.

An image's store is an OME-Zarr 0.5 image group (zarr v3): the group's ``zarr.json`` carries
``attributes.ome`` (``version``, ``multiscales``, ``omero``), and the arrays ``0``, ``1``, ...
below it are the pyramid's levels, their dims :data:`DISK_DIMS` (t, c, z, y, x: the order
0.5 requires on disk; the API shows (c, t, z, y, x)). Level ``0`` is full resolution; each
further level takes every second pixel of y and x of the one before (``nearest``: level ``n``
holds the level-0 pixels at ``(2**n * i, 2**n * j)``), until a level fits in one
:data:`TILE` (256 px) along y and x. The client builds it and the server checks it with the
same functions, so both agree on every field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DISK_DIMS",
    "DOWNSAMPLING",
    "OME_VERSION",
    "TILE",
    "channel_color",
    "check_omero",
    "disk_order",
    "group_document",
    "level_count",
    "level_shape",
    "level_shapes",
    "multiscales",
    "omero",
]

OME_VERSION = "0.5"
TILE = 256
"""Levels are added until the smallest fits in this many pixels along y and x."""
DISK_DIMS: tuple[str, str, str, str, str] = ("t", "c", "z", "y", "x")
"""The dims of every level array on disk."""
DOWNSAMPLING = "nearest"
"""How a level is made from level 0: every ``2**n``-th pixel of y and x (no averaging)."""
_COLORS = ("00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00")
_HEX = re.compile(r"[0-9A-F]{6}")
_AXES: tuple[dict[str, str], ...] = (
    {"name": "t", "type": "time"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space"},
    {"name": "y", "type": "space"},
    {"name": "x", "type": "space"},
)


def disk_order(values: Sequence[Any]) -> list[Any]:
    """(c, t, z, y, x) values in disk order (t, c, z, y, x); applied twice, back again."""
    return [values[1], values[0], *values[2:]]


def level_count(shape: Sequence[int]) -> int:
    """How many levels an image of ``shape`` ((c, t, z, y, x)) has (at least 1)."""
    largest = max(shape[3], shape[4])
    count = 1
    while -(-largest // (1 << (count - 1))) > TILE:
        count += 1
    return count


def level_shape(shape: Sequence[int], level: int) -> tuple[int, int, int, int, int]:
    """The (c, t, z, y, x) shape of level ``level`` of an image of ``shape``."""
    step = 1 << level
    c, t, z, y, x = shape
    return (c, t, z, -(-y // step), -(-x // step))


def level_shapes(shape: Sequence[int]) -> list[tuple[int, int, int, int, int]]:
    """The (c, t, z, y, x) shape of every level, level 0 first."""
    return [level_shape(shape, n) for n in range(level_count(shape))]


def channel_color(index: int, count: int) -> str:
    """The display colour (``RRGGBB``) of channel ``index`` of ``count``: white when alone."""
    return "FFFFFF" if count == 1 else _COLORS[index % len(_COLORS)]


def multiscales(
    shape: Sequence[int], pixel_size: dict[str, float], levels: int | None = None
) -> list[Any]:
    """The ``multiscales`` of an image: axes t, c, z, y, x, one ``scale`` per level.

    Args:
        shape: the (c, t, z, y, x) shape of level 0.
        pixel_size: ``x``, ``y``, ``z`` (micrometres) and ``t`` (seconds) where known; an axis
            without one gets scale 1 and no unit.
        levels: how many levels the image has (the first ones of its pyramid); ``None``: all
            of them (:func:`level_count`).

    """
    axes = []
    for axis in _AXES:
        entry = dict(axis)
        if axis["name"] in pixel_size:
            entry["unit"] = "second" if axis["name"] == "t" else "micrometer"
        axes.append(entry)
    base = [float(pixel_size.get(axis, 1.0)) for axis in DISK_DIMS]
    base[1] = 1.0
    datasets = []
    for level in range(level_count(shape) if levels is None else levels):
        scale = [*base[:3], base[3] * (1 << level), base[4] * (1 << level)]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    return [
        {
            "axes": axes,
            "datasets": datasets,
            "type": DOWNSAMPLING,
            "metadata": {"method": "stride", "description": "every 2**n-th pixel of y and x"},
        }
    ]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_omero(omero: object, channel_names: Sequence[str], channels: int) -> None:
    """Check the ``omero`` attributes of an image with ``channels`` channels.

    One entry per channel: ``label`` (the channel's name when it has one), ``color``
    (``RRGGBB``), ``active`` (a bool), ``window`` (finite ``min``, ``max``, ``start``,
    ``end``); nothing else.

    Raises:
        ValueError: naming the first field that is not so.

    """
    if not isinstance(omero, dict) or set(omero) - {"channels", "rdefs"}:
        raise ValueError("ome.omero must be an object with 'channels' (and 'rdefs')")
    if "rdefs" in omero and omero["rdefs"] != {"model": "color" if channels > 1 else "greyscale"}:
        raise ValueError("ome.omero.rdefs is not the expected rendering model")
    entries = omero.get("channels")
    if not isinstance(entries, list) or len(entries) != channels:
        raise ValueError(f"ome.omero.channels must list {channels} channel(s)")
    for index, entry in enumerate(entries):
        where = f"ome.omero.channels[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"label", "color", "active", "window"}:
            raise ValueError(f"{where} must have exactly label, color, active and window")
        label = channel_names[index] if channel_names else f"c{index}"
        if entry["label"] != label:
            raise ValueError(f"{where}.label is not the channel's name {label!r}")
        if not isinstance(entry["color"], str) or not _HEX.fullmatch(entry["color"]):
            raise ValueError(f"{where}.color must be six hex digits RRGGBB")
        if not isinstance(entry["active"], bool):
            raise ValueError(f"{where}.active must be true or false")
        window = entry["window"]
        if (
            not isinstance(window, dict)
            or set(window) != {"min", "max", "start", "end"}
            or not all(_number(value) for value in window.values())
        ):
            raise ValueError(f"{where}.window must have finite min, max, start and end")


def group_document(
    shape: Sequence[int],
    pixel_size: dict[str, float],
    channel_names: Sequence[str],
    ranges: Sequence[tuple[float, float, float, float]],
    levels: int | None = None,
) -> bytes:
    """The image group's ``zarr.json`` (zarr v3 group, ``attributes.ome``).

    Args:
        shape: the (c, t, z, y, x) shape of level 0.
        pixel_size: see :func:`multiscales`.
        channel_names: the channels' names (or none).
        ranges: each channel's display window, see :func:`omero`.
        levels: see :func:`multiscales`.

    """
    import json

    ome = {
        "version": OME_VERSION,
        "multiscales": multiscales(shape, pixel_size, levels),
        "omero": omero(channel_names, shape[0], ranges),
    }
    document = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": ome}}
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def omero(
    channel_names: Sequence[str], channels: int, ranges: Sequence[tuple[float, float, float, float]]
) -> dict[str, Any]:
    """The ``omero`` attributes: one entry per channel with its ``(min, max, start, end)``."""
    return {
        "channels": [
            {
                "label": channel_names[index] if channel_names else f"c{index}",
                "color": channel_color(index, channels),
                "active": True,
                "window": dict(zip(("min", "max", "start", "end"), ranges[index], strict=True)),
            }
            for index in range(channels)
        ],
        "rdefs": {"model": "color" if channels > 1 else "greyscale"},
    }
