"""The agents' rows (rekuest on the server): registrations, their definitions, going offline,
and everything read back at startup; written directly, each in its own transaction, unlike
the assignments' write-behind batches of :class:`~arkitekt_server.rekuest._store.Store`
(which builds on :class:`AgentRecords`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from arkitekt_server._db import Database, utcnow
from arkitekt_server.rekuest._events import post
from arkitekt_server.rekuest._models import ACTIVE, AgentRow, AssignmentRow, DefinitionRow

__all__ = ["AgentRecords"]


class AgentRecords:
    """Reads and writes of the agents' rows (see the module).

    Args:
        database: the server's database.

    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.channel: str | None = None
        """PostgreSQL: the channel replicas are notified on (events and notices need it)."""

    async def save_agent(
        self,
        key: str,
        client_pk: int,
        name: str,
        instance: str,
        definitions: list[dict[str, Any]],
        replica: str | None = None,
    ) -> None:
        """Record an agent (connected to ``replica``) and replace its definitions."""
        async with self.database.sessions() as session:
            row = await session.scalar(select(AgentRow).where(AgentRow.key == key))
            if row is None:
                row = AgentRow(key=key, client_pk=client_pk, name=name, instance=instance)
                session.add(row)
                await session.flush()
            row.connected = True
            row.replica = replica
            row.last_seen = utcnow()
            existing = {
                d.name: d
                for d in await session.scalars(
                    select(DefinitionRow).where(DefinitionRow.agent_id == row.id)
                )
            }
            for definition in definitions:
                old = existing.pop(definition["name"], None)
                if old is None:
                    session.add(
                        DefinitionRow(
                            agent_id=row.id, name=definition["name"], definition=definition
                        )
                    )
                else:
                    old.definition = definition
            for stale in existing.values():
                await session.delete(stale)
            if self.channel is not None:
                await post(await session.connection(), self.channel, [], {"agents"})
            await session.commit()

    async def mark_disconnected(self, key: str, replica: str | None = None) -> None:
        """Record that an agent went offline (from ``replica``: not if it moved on to another)."""
        async with self.database.sessions() as session:
            await session.execute(
                update(AgentRow)
                .where(AgentRow.key == key, AgentRow.replica.is_not_distinct_from(replica))
                .values(connected=False, last_seen=utcnow())
            )
            if self.channel is not None:
                await post(await session.connection(), self.channel, [], {"agents"})
            await session.commit()

    async def load(self) -> tuple[list[AgentRow], list[DefinitionRow], list[AssignmentRow]]:
        """Every agent, every definition, and the assignments that are not finished."""
        async with self.database.sessions() as session:
            await session.execute(update(AgentRow).values(connected=False))
            await session.commit()
            agents = list(await session.scalars(select(AgentRow)))
            definitions = list(await session.scalars(select(DefinitionRow)))
            active = list(
                await session.scalars(
                    select(AssignmentRow)
                    .where(AssignmentRow.status.in_(ACTIVE))
                    .order_by(AssignmentRow.created_at)
                )
            )
        return agents, definitions, active
