"""What a serving agent shows and how it is stopped: its one line, and SIGTERM as Ctrl+C."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from arkitekt.rekuest._registry import Registry

__all__ = ["NAMES_SHOWN", "serving_line", "sigterm_interrupts"]

NAMES_SHOWN = 6
"""At most this many function names are listed in the line; the rest are counted."""


def serving_line(registry: Registry, where: str) -> str:
    """The line a serving agent prints: which functions, where.

    Example:
        >>> from arkitekt.rekuest import Registry
        >>> registry = Registry()
        >>> @registry.register
        ... def negate(value: int) -> int:
        ...     '''Flip the sign.'''
        ...     return -value
        >>> serving_line(registry, "ws://127.0.0.1:8000/rekuest/agent/ws")
        'serving 1 function (negate) at ws://127.0.0.1:8000/rekuest/agent/ws'

    """
    names = sorted(entry.name for entry in registry)
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        shown += f" and {len(names) - NAMES_SHOWN} more"
    what = "function" if len(names) == 1 else "functions"
    return f"serving {len(names)} {what} ({shown or 'none'}) at {where}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread, as Ctrl+C does.

    Only the main thread can receive signals; elsewhere this does nothing. The previous handler
    is restored after the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
