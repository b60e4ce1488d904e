"""What one app (as a caller) may hold on the server: unfinished assignments and their bytes.

The limits are the server settings ``rekuest_max_pending_calls`` and
``rekuest_max_pending_argument_bytes``; a call over either is refused (429 over HTTP,
``refused`` on the websocket) with a message naming the setting.
"""

from __future__ import annotations

__all__ = ["Quotas"]


class Quotas:
    """Counts each app's unfinished assignments and their arguments' encoded bytes.

    Args:
        max_calls: unfinished assignments one app may have at once.
        max_bytes: their arguments' encoded bytes, summed, per app.

    """

    def __init__(self, max_calls: int, max_bytes: int) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self._held: dict[int, tuple[int, int]] = {}  # per app: (calls, bytes)

    def refusal(self, app: int, size: int) -> str | None:
        """Why a new call of ``size`` bytes by ``app`` is refused, or ``None``."""
        count, held = self._held.get(app, (0, 0))
        if count >= self.max_calls:
            return (
                f"refused: this app has {count:,} unfinished calls, the limit of the server "
                f"(rekuest_max_pending_calls) is {self.max_calls:,}; wait for some to finish, "
                "or cancel them"
            )
        if held + size > self.max_bytes:
            return (
                f"refused: this app's unfinished calls hold {held:,} bytes of arguments, and "
                f"this one {size:,} more; the limit of the server "
                f"(rekuest_max_pending_argument_bytes) is {self.max_bytes:,}; wait for some "
                "to finish, or pass large data as a structure (such as an image)"
            )
        return None

    def add(self, app: int, size: int) -> None:
        """Count an unfinished call."""
        count, held = self._held.get(app, (0, 0))
        self._held[app] = (count + 1, held + size)

    def remove(self, app: int, size: int) -> None:
        """Count a call no more (it finished, or was refused after all)."""
        count, held = self._held.get(app, (1, size))
        if count <= 1:
            self._held.pop(app, None)
        else:
            self._held[app] = (count - 1, held - size)
