"""A/B testing: the log of served requests, for attributing outcomes to arms.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 07:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "abtesting_served_requests",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("unit_id", sa.String(length=200), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_served_requests_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "request_id", name=op.f("pk_abtesting_served_requests")
        ),
    )
    with op.batch_alter_table("abtesting_served_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_abtesting_served_requests_unit",
            ["experiment_id", "unit_id", "served_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("abtesting_served_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_abtesting_served_requests_unit")
    op.drop_table("abtesting_served_requests")
