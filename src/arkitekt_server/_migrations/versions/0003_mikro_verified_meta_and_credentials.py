"""mikro: verified zarr.json hash, until when upload credentials live

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 17:59:22.796305
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("mikro_images", schema=None) as batch_op:
        # images from before: no hash (their zarr.json is checked against the row's fields)
        batch_op.add_column(sa.Column("meta_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("credentials_until", sa.DateTime(), nullable=True))

    with op.batch_alter_table("mikro_upload_grants", schema=None) as batch_op:
        # grants from before: their credentials lapse at the latest MIN_SECONDS past expiry
        batch_op.add_column(sa.Column("credentials_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mikro_upload_grants", schema=None) as batch_op:
        batch_op.drop_column("credentials_until")

    with op.batch_alter_table("mikro_images", schema=None) as batch_op:
        batch_op.drop_column("credentials_until")
        batch_op.drop_column("meta_sha256")
