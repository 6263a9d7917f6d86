"""A/B testing: experiments, aggregated statistics, exposures, ingestion keys, decisions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:28:36.465097
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "abtesting_experiments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("allocation", sa.Text(), nullable=False),
        sa.Column("treatment_share", sa.String(length=32), nullable=False),
        sa.Column("ramp_step", sa.Integer(), nullable=False),
        sa.Column("ramp_held", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("winner", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abtesting_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_abtesting_experiments_name")),
    )
    with op.batch_alter_table("abtesting_experiments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_abtesting_experiments_model_status", ["model_name", "status"], unique=False
        )

    op.create_table(
        "abtesting_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_decisions_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abtesting_decisions")),
    )
    with op.batch_alter_table("abtesting_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_abtesting_decisions_experiment", ["experiment_id", "id"], unique=False
        )

    op.create_table(
        "abtesting_exposures",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_exposures_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "variant", name=op.f("pk_abtesting_exposures")),
    )
    op.create_table(
        "abtesting_guardrail_state",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("consecutive_breaches", sa.Integer(), nullable=False),
        sa.Column("last_counted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_guardrail_state_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "variant", "metric", name=op.f("pk_abtesting_guardrail_state")
        ),
    )
    op.create_table(
        "abtesting_ingested_keys",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_ingested_keys_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_abtesting_ingested_keys")),
    )
    op.create_table(
        "abtesting_metric_stats",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("sum_squares", sa.Float(), nullable=False),
        sa.Column("n_covariate", sa.BigInteger(), nullable=False),
        sa.Column("sum_cov_y", sa.Float(), nullable=False),
        sa.Column("sum_cov_y2", sa.Float(), nullable=False),
        sa.Column("sum_x", sa.Float(), nullable=False),
        sa.Column("sum_x2", sa.Float(), nullable=False),
        sa.Column("sum_xy", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["abtesting_experiments.id"],
            name=op.f("fk_abtesting_metric_stats_experiment_id_abtesting_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "experiment_id", "variant", "metric", name=op.f("pk_abtesting_metric_stats")
        ),
    )


def downgrade() -> None:

    op.drop_table("abtesting_metric_stats")
    op.drop_table("abtesting_ingested_keys")
    op.drop_table("abtesting_guardrail_state")
    op.drop_table("abtesting_exposures")
    with op.batch_alter_table("abtesting_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_abtesting_decisions_experiment")

    op.drop_table("abtesting_decisions")
    with op.batch_alter_table("abtesting_experiments", schema=None) as batch_op:
        batch_op.drop_index("ix_abtesting_experiments_model_status")

    op.drop_table("abtesting_experiments")
