"""mikro: pyramid levels of an image (OME-Zarr image groups)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("mikro_images", schema=None) as batch_op:
        # images from before: none (one zarr array at the store's root, read as before)
        batch_op.add_column(sa.Column("levels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mikro_images", schema=None) as batch_op:
        batch_op.drop_column("levels")
