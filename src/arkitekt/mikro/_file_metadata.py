"""What a microscope file says about itself: channel names and physical pixel sizes.

Sizes are converted to µm (``t`` to seconds) from the units the file names; a unit not known
here, or a size that is not a positive finite number, is left out (and logged) rather than
stored wrong.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arkitekt.protocol.mikro import PixelSize

__all__ = ["MAX_ZARR_META_BYTES", "converted", "ome_tiff_details", "ome_zarr_details"]

log = logging.getLogger("arkitekt.mikro")

MAX_ZARR_META_BYTES = 1 << 20
"""The largest ``zarr.json`` / ``.zattrs`` of an OME-Zarr that is read."""

# OME-TIFF unit symbols and OME-Zarr (UDUNITS) unit names
LENGTH_TO_UM = {
    "pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6,
    "picometer": 1e-6, "angstrom": 1e-4, "nanometer": 1e-3, "micrometer": 1.0,
    "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,
}  # fmt: skip
TIME_TO_S = {
    "ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0,
    "nanosecond": 1e-9, "microsecond": 1e-6, "millisecond": 1e-3, "second": 1.0,
    "minute": 60.0, "hour": 3600.0,
}  # fmt: skip


def converted(value: Any, unit: Any, table: Mapping[str, float], what: str) -> float | None:
    """``value`` in the table's base unit (µm or s), or ``None``.

    ``None`` when it is missing, in a unit not known here, or not a positive finite number
    (logged, never stored).

    Example:
        >>> converted(65, "nm", LENGTH_TO_UM, "x")
        0.065

    """
    if value is None:
        return None
    symbol = str(getattr(unit, "value", unit) or "").strip()
    factor = table.get(symbol)
    try:
        result = float(value) * factor if factor is not None else None
    except (TypeError, ValueError):
        result = None
    if result is None or not math.isfinite(result) or result <= 0:
        log.warning("the file's %s size %r %s is left out (not a size in a known unit)",
                    what, value, symbol or "(no unit)")  # fmt: skip
        return None
    return result


def ome_tiff_details(image: Any) -> tuple[list[str] | None, PixelSize]:
    """Channel names and pixel size from the OME metadata of an OME-TIFF (a bioio image)."""
    pixels = image.ome_metadata.images[image.current_scene_index].pixels
    names = [channel.name for channel in pixels.channels]
    sizes = {
        axis: converted(
            getattr(pixels, f"physical_size_{axis}"),
            getattr(pixels, f"physical_size_{axis}_unit"),
            LENGTH_TO_UM,
            axis,
        )
        for axis in ("x", "y", "z")
    }
    sizes["t"] = converted(pixels.time_increment, pixels.time_increment_unit, TIME_TO_S, "t")
    named = names if all(isinstance(name, str) and name for name in names) else None
    return named, PixelSize(**sizes)


def _attributes(folder: Path) -> dict[str, Any]:
    """The group attributes of an OME-Zarr folder (zarr v3 or v2), bounded; ``{}`` if none."""
    for name, inner in (("zarr.json", "attributes"), (".zattrs", None)):
        path = folder / name
        if path.is_file() and path.stat().st_size <= MAX_ZARR_META_BYTES:
            try:
                data = json.loads(path.read_bytes())
            except ValueError:
                return {}
            found = data.get(inner, {}) if inner and isinstance(data, dict) else data
            return found if isinstance(found, dict) else {}
    return {}


def ome_zarr_details(folder: Path) -> tuple[list[str] | None, PixelSize]:
    """Channel names and pixel size of an OME-Zarr image (0.4 or 0.5).

    From its own metadata: the axes' units and the first level's ``scale``.
    """
    attributes = _attributes(folder)
    ome = attributes.get("ome", attributes)  # 0.5 nests its metadata under "ome"
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    sizes: dict[str, float | None] = {}
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict):
        axes, datasets = multiscales[0].get("axes"), multiscales[0].get("datasets")
        scale: Any = None
        if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
            transforms = datasets[0].get("coordinateTransformations") or []
            scale = next(
                (t.get("scale") for t in transforms if isinstance(t, dict) and "scale" in t),
                None,
            )
        if isinstance(axes, list) and isinstance(scale, list) and len(axes) == len(scale):
            for axis, value in zip(axes, scale, strict=True):
                name = axis.get("name") if isinstance(axis, dict) else None
                if name in ("x", "y", "z", "t"):
                    table = TIME_TO_S if name == "t" else LENGTH_TO_UM
                    unit = axis.get("unit") or ("second" if name == "t" else "micrometer")
                    sizes[name] = converted(value, unit, table, name)
    omero = ome.get("omero") if isinstance(ome, dict) else None
    channels = omero.get("channels") if isinstance(omero, dict) else None
    names = (
        [str(c.get("label", "")) for c in channels if isinstance(c, dict)]
        if isinstance(channels, list)
        else []
    )
    return (names if names and all(names) else None), PixelSize(**sizes)
