"""One pooled database connection kept between uses, for the hot path between replicas.

Every checkout from the server's pool is checked first (``pool_pre_ping``: on asyncpg a
``BEGIN``, a ping and a ``ROLLBACK``, three round trips), which would triple the cost of the
one-statement claims and event reads of a call's path. The store's batches and the relay's
reads instead keep their connection: it is checked out (and so checked) once, and given back
only when a use fails (then the next use checks out a fresh one, as a ping would have made it)
or at :meth:`HeldConnection.close`. Uses never overlap (their owners serialize them).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["HeldConnection"]


class HeldConnection:
    """A connection of ``engine``'s pool, kept between uses (see the module).

    Args:
        engine: the server's engine.
        autocommit: each statement is its own transaction (no ``BEGIN``, no ``COMMIT``);
            otherwise each use is one transaction, committed when it ends without error.

    """

    def __init__(self, engine: AsyncEngine, *, autocommit: bool = False) -> None:
        self.engine = engine
        self.autocommit = autocommit
        self._connection: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[AsyncConnection]:
        """The connection, for one use (a transaction, unless :attr:`autocommit`)."""
        connection = self._connection
        if connection is None:
            connection = await self.engine.connect()
            if self.autocommit:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection = connection
        try:
            if self.autocommit:
                yield connection
            else:
                async with connection.begin():
                    yield connection
        except BaseException:
            await self.close()  # back to the pool (invalidated there if it was lost)
            raise

    async def close(self) -> None:
        """Give the connection back to the pool (the next use takes a fresh one)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with anyio.CancelScope(shield=True):
                await connection.close()
