"""rekuest across replicas: replicas, leases, events, resume deadlines

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 17:52:20.967196
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rekuest_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("replica", sa.String(length=64), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rekuest_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rekuest_event_assignment_id"), ["assignment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rekuest_event_replica"), ["replica"], unique=False)

    op.create_table(
        "rekuest_replica",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("alive_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rekuest_replica", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rekuest_replica_alive_until"), ["alive_until"], unique=False
        )

    with op.batch_alter_table("rekuest_agent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica", sa.String(length=64), nullable=True))

    with op.batch_alter_table("rekuest_assignment", schema=None) as batch_op:
        # existing rows (made on one process) have no events waiting
        batch_op.add_column(
            sa.Column("events", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("replica", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("caller_replica", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("wait_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rekuest_assignment", schema=None) as batch_op:
        batch_op.drop_column("wait_until")
        batch_op.drop_column("caller_replica")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("replica")
        batch_op.drop_column("events")

    with op.batch_alter_table("rekuest_agent", schema=None) as batch_op:
        batch_op.drop_column("replica")

    with op.batch_alter_table("rekuest_replica", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rekuest_replica_alive_until"))

    op.drop_table("rekuest_replica")
    with op.batch_alter_table("rekuest_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rekuest_event_replica"))
        batch_op.drop_index(batch_op.f("ix_rekuest_event_assignment_id"))

    op.drop_table("rekuest_event")
