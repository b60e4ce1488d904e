"""initial schema: every table of fakts, lok, mikro and rekuest

Revision ID: 0001
Revises:
Create Date: 2026-12-01 16:56:35.010838
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Every table and index only if missing: a database made before migrations (by the
    # server's create_all) is adopted as it is.
    op.create_table(
        "fakts_static_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_static_tokens_identifier"),
        "fakts_static_tokens",
        ["identifier"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_static_tokens_token_hash"),
        "fakts_static_tokens",
        ["token_hash"],
        unique=True,
        if_not_exists=True,
    )

    op.create_table(
        "mikro_datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=10000), nullable=False),
        sa.Column("owner_pk", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_datasets_created_at"),
        "mikro_datasets",
        ["created_at"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_datasets_name"), "mikro_datasets", ["name"], unique=False, if_not_exists=True
    )
    op.create_index(
        op.f("ix_mikro_datasets_owner_pk"),
        "mikro_datasets",
        ["owner_pk"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "mikro_upload_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_pk", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("datalayer", sa.String(length=16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_upload_grants_expires_at"),
        "mikro_upload_grants",
        ["expires_at"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_upload_grants_owner_pk"),
        "mikro_upload_grants",
        ["owner_pk"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "rekuest_agent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_rekuest_agent_client_pk"),
        "rekuest_agent",
        ["client_pk"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "rekuest_assignment",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("caller_pk", sa.Integer(), nullable=False),
        sa.Column("agent_key", sa.String(length=300), nullable=True),
        sa.Column("agent_filter", sa.String(length=300), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error_kind", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_rekuest_assignment_caller_pk"),
        "rekuest_assignment",
        ["caller_pk"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_rekuest_assignment_status",
        "rekuest_assignment",
        ["status"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "rekuest_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_rekuest_log_assignment_id"),
        "rekuest_log",
        ["assignment_id"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "fakts_app_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("logo", sa.String(length=2000), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("granted_via", sa.String(length=32), nullable=False),
        sa.Column("claim_token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_secret_hash", sa.String(length=64), nullable=False),
        sa.Column("static_token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["static_token_id"],
            ["fakts_static_tokens.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_app_clients_claim_token_hash"),
        "fakts_app_clients",
        ["claim_token_hash"],
        unique=True,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_app_clients_client_id"),
        "fakts_app_clients",
        ["client_id"],
        unique=True,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_app_clients_identifier"),
        "fakts_app_clients",
        ["identifier"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "mikro_images",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("owner_pk", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=True),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("chunks", sa.JSON(), nullable=False),
        sa.Column("dtype", sa.String(length=16), nullable=False),
        sa.Column("origins", sa.JSON(), nullable=False),
        sa.Column("channel_names", sa.JSON(), nullable=False),
        sa.Column("pixel_size", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["mikro_datasets.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_images_created_at"),
        "mikro_images",
        ["created_at"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_images_dataset_id"),
        "mikro_images",
        ["dataset_id"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_images_name"), "mikro_images", ["name"], unique=False, if_not_exists=True
    )
    op.create_index(
        op.f("ix_mikro_images_owner_pk"),
        "mikro_images",
        ["owner_pk"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_images_private"),
        "mikro_images",
        ["private"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "rekuest_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["rekuest_agent.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "name"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_rekuest_definition_name"),
        "rekuest_definition",
        ["name"],
        unique=False,
        if_not_exists=True,
    )

    op.create_table(
        "fakts_device_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("logo", sa.String(length=2000), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("requested_from", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nonce_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("consumed_at", sa.DateTime(), nullable=True),
        sa.Column("client_pk", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["fakts_app_clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_fakts_device_codes_code_hash"),
        "fakts_device_codes",
        ["code_hash"],
        unique=True,
        if_not_exists=True,
    )

    op.create_table(
        "lok_access_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["fakts_app_clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_lok_access_tokens_client_pk"),
        "lok_access_tokens",
        ["client_pk"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_lok_access_tokens_token_hash"),
        "lok_access_tokens",
        ["token_hash"],
        unique=True,
        if_not_exists=True,
    )

    op.create_table(
        "mikro_image_tags",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["mikro_images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "tag"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_mikro_image_tags_tag"),
        "mikro_image_tags",
        ["tag"],
        unique=False,
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in (
        "mikro_image_tags",
        "lok_access_tokens",
        "fakts_device_codes",
        "rekuest_definition",
        "mikro_images",
        "fakts_app_clients",
        "rekuest_log",
        "rekuest_assignment",
        "rekuest_agent",
        "mikro_upload_grants",
        "mikro_datasets",
        "fakts_static_tokens",
    ):
        op.drop_table(table)
