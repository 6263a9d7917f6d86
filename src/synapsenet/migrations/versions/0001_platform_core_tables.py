"""Platform core tables: API keys, the event outbox and the consumer inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 04:17:07.938457
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "core_api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_api_keys")),
    )
    op.create_table(
        "core_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_core_outbox_event_id")),
    )
    with op.batch_alter_table("core_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_core_outbox_pending", ["published_at", "id"], unique=False)

    op.create_table(
        "core_processed_events",
        sa.Column("group", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group", "event_id", name=op.f("pk_core_processed_events")),
    )


def downgrade() -> None:

    op.drop_table("core_processed_events")
    with op.batch_alter_table("core_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_core_outbox_pending")

    op.drop_table("core_outbox")
    op.drop_table("core_api_keys")
