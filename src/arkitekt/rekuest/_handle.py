"""``Assignment``: a call in flight, from ``submit``: its id, its result, its cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from arkitekt.errors import CallTimeoutError
from arkitekt.rekuest._caller import CallerChannel, Pending, error_of, expand

if TYPE_CHECKING:
    from arkitekt._scope import Scope

__all__ = ["Assignment"]


class Assignment:
    """A call that was sent and whose result has not been read yet.

    Its methods work from any thread or loop (they run on the app's loop). Cancelling the task
    that awaits :meth:`aresult` cancels the assignment, as with ``acall``.

    Attributes:
        id: the assignment's id (also in events and errors).
        function: the function's name.

    """

    def __init__(
        self,
        channel: CallerChannel,
        pending: Pending,
        function: str,
        timeout: float | None,
        scope: Scope,
    ) -> None:
        self.id = pending.id
        self.function = function
        self._channel = channel
        self._pending = pending
        self._timeout = timeout
        self._deadline = None if timeout is None else anyio.current_time() + timeout
        self._scope = scope
        self._bridge = scope.bridge

    def __repr__(self) -> str:
        state = "finished" if self._pending.future.done() else "running"
        return f"<Assignment {self.id} of {self.function!r} ({state})>"

    async def aresult(self) -> Any:
        """Wait for the result (structures fetched back) and return it.

        Raises:
            RekuestError: as :func:`~arkitekt.rekuest.acall` does.

        """
        if not self._bridge.is_current():
            return await self._bridge.acall(self.aresult)
        remaining = None if self._deadline is None else self._deadline - anyio.current_time()
        try:
            with anyio.fail_after(remaining):
                message = await self._pending.future
        except TimeoutError:
            self._channel.cancel(self.id)
            raise CallTimeoutError(
                f"{self.function}() did not finish within {self._timeout:g} s; cancelled it",
                self.id,
            ) from None
        except BaseException:
            self._channel.cancel(self.id)
            raise
        if message["t"] == "error":
            raise error_of(message)
        return await expand(message.get("v"), message.get("r"), self._scope)

    def result(self) -> Any:
        """Blocking twin of :meth:`aresult`."""
        return self._bridge.call(self.aresult)

    async def acancel(self) -> None:
        """Ask the server to cancel it; :meth:`aresult` then raises ``AssignmentCancelledError``."""
        if not self._bridge.is_current():
            await self._bridge.acall(self.acancel)
            return
        self._channel.request_cancel(self.id)

    def cancel(self) -> None:
        """Blocking twin of :meth:`acancel`."""
        self._bridge.call(self.acancel)
