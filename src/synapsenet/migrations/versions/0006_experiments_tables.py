"""Run tracking: runs, params, metric points and latest values, datasets read, models made.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"],
        ["experiments_runs.id"],
        name=op.f(f"fk_{table}_run_id_experiments_runs"),
        ondelete="CASCADE",
    )


def _autoincrement_id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def upgrade() -> None:

    op.create_table(
        "experiments_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments_runs")),
    )
    with op.batch_alter_table("experiments_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_experiments_runs_project_started", ["project", "started_at"], unique=False
        )
        batch_op.create_index("ix_experiments_runs_status", ["status"], unique=False)

    op.create_table(
        "experiments_run_params",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        _run_fk("experiments_run_params"),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_experiments_run_params")),
    )
    with op.batch_alter_table("experiments_run_params", schema=None) as batch_op:
        batch_op.create_index("ix_experiments_run_params_key", ["key"], unique=False)

    op.create_table(
        "experiments_run_metrics",
        _autoincrement_id(),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        _run_fk("experiments_run_metrics"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments_run_metrics")),
    )
    with op.batch_alter_table("experiments_run_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_experiments_run_metrics_run_key_step", ["run_id", "key", "step"], unique=False
        )

    op.create_table(
        "experiments_run_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        _run_fk("experiments_run_latest_metrics"),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_experiments_run_latest_metrics")),
    )

    op.create_table(
        "experiments_run_datasets",
        _autoincrement_id(),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("requested", sa.String(length=300), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        _run_fk("experiments_run_datasets"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments_run_datasets")),
        sa.UniqueConstraint("run_id", "ref", name=op.f("uq_experiments_run_datasets_run_id")),
    )
    with op.batch_alter_table("experiments_run_datasets", schema=None) as batch_op:
        batch_op.create_index("ix_experiments_run_datasets_ref", ["ref"], unique=False)

    op.create_table(
        "experiments_run_models",
        _autoincrement_id(),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        _run_fk("experiments_run_models"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments_run_models")),
        sa.UniqueConstraint(
            "model_name", "version", name=op.f("uq_experiments_run_models_model_name")
        ),
    )
    with op.batch_alter_table("experiments_run_models", schema=None) as batch_op:
        batch_op.create_index("ix_experiments_run_models_run", ["run_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("experiments_run_models", schema=None) as batch_op:
        batch_op.drop_index("ix_experiments_run_models_run")
    op.drop_table("experiments_run_models")

    with op.batch_alter_table("experiments_run_datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_experiments_run_datasets_ref")
    op.drop_table("experiments_run_datasets")

    op.drop_table("experiments_run_latest_metrics")

    with op.batch_alter_table("experiments_run_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_experiments_run_metrics_run_key_step")
    op.drop_table("experiments_run_metrics")

    with op.batch_alter_table("experiments_run_params", schema=None) as batch_op:
        batch_op.drop_index("ix_experiments_run_params_key")
    op.drop_table("experiments_run_params")

    with op.batch_alter_table("experiments_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_experiments_runs_status")
        batch_op.drop_index("ix_experiments_runs_project_started")
    op.drop_table("experiments_runs")
