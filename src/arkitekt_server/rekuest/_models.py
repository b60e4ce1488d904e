"""Tables of rekuest: agents, their definitions, assignments (the durable queue) and logs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from arkitekt_server._db import Base, utcnow

__all__ = ["AgentRow", "AssignmentRow", "DefinitionRow", "EventRow", "LogRow", "ReplicaRow"]

ACTIVE = ("queued", "assigned")
"""Statuses of assignments that are not finished: they are loaded again on startup."""
FINISHED = ("done", "error", "cancelled")
"""Statuses of finished assignments: deleted after the server's retention time."""


class AgentRow(Base):
    """An agent: one app (client) serving under an instance name."""

    __tablename__ = "rekuest_agent"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    client_pk: Mapped[int] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200))
    instance: Mapped[str] = mapped_column(String(100))
    connected: Mapped[bool] = mapped_column(default=False)
    replica: Mapped[str | None] = mapped_column(String(64), default=None)
    """The replica holding its websocket (PostgreSQL; online while that replica is alive)."""
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DefinitionRow(Base):
    """A function an agent provides, as it last registered it."""

    __tablename__ = "rekuest_definition"
    __table_args__ = (UniqueConstraint("agent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("rekuest_agent.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)


class AssignmentRow(Base):
    """One call of a function: queued, assigned to an agent, then done/error/cancelled."""

    __tablename__ = "rekuest_assignment"
    __table_args__ = (Index("ix_rekuest_assignment_status", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    function: Mapped[str] = mapped_column(String(200))
    caller_pk: Mapped[int] = mapped_column(index=True)
    agent_key: Mapped[str | None] = mapped_column(String(300), default=None)
    agent_filter: Mapped[str | None] = mapped_column(String(300), default=None)
    args: Mapped[Any] = mapped_column(JSON)
    stream: Mapped[bool] = mapped_column(default=False)
    events: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[Any] = mapped_column(JSON, default=None)
    error_kind: Mapped[str | None] = mapped_column(String(20), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # replicas (PostgreSQL): who runs it, until when, who waits for it, until when it waits
    replica: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    caller_replica: Mapped[str | None] = mapped_column(String(64), default=None)
    wait_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class LogRow(Base):
    """A log line an assignment wrote."""

    __tablename__ = "rekuest_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReplicaRow(Base):
    """A server replica (PostgreSQL): alive while it renews ``alive_until``."""

    __tablename__ = "rekuest_replica"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alive_until: Mapped[dt.datetime] = mapped_column(index=True)


class EventRow(Base):
    """A message on its way to another replica (PostgreSQL): for a caller or an agent there."""

    __tablename__ = "rekuest_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    replica: Mapped[str] = mapped_column(String(64), index=True)
    assignment_id: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
