"""Background jobs: status, progress and results of long work.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 05:20:59.050446
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "core_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_jobs")),
    )
    with op.batch_alter_table("core_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_core_jobs_kind_status", ["kind", "status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("core_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_core_jobs_kind_status")

    op.drop_table("core_jobs")
