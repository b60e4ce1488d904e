"""An app that offers functions to the lab: register them, then serve until Ctrl+C.

Run it against a server (``FAKTS_URL`` or the default URL): ``python examples/rekuest_agent.py``.
Another app calls the functions by name (see ``examples/rekuest_demo.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from arkitekt import easy
from arkitekt.mikro import Image, from_xarray
from arkitekt.rekuest import log, progress, register


@register
def threshold(image: Image, level: float = 0.5) -> Image:
    """Threshold an image into a mask.

    Args:
        image: the image to threshold.
        level: pixels above it become 1.

    Returns:
        The mask, stored as a new image derived from ``image``.
    """
    progress(10, "reading pixels")
    mask = (image.data > level).astype("uint8")  # lazy; computed chunk by chunk on upload
    progress(60, "storing the mask")
    log(f"thresholding {image.name!r} at {level}")
    return from_xarray(mask, name=f"{image.name} > {level}", origins=[image])


@register
def countdown(start: int, delay: float = 0.05) -> Iterator[int]:
    """Count down to zero, one number at a time (a stream: call it with ``iterate``)."""
    for value in range(start, -1, -1):
        time.sleep(delay)
        yield value


app = easy("rekuest-demo-agent")
with app:
    app.rekuest.run()  # prints what it serves; blocks until Ctrl+C, then shuts down cleanly
print("agent stopped", flush=True)
