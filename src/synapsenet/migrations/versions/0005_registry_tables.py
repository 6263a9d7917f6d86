"""Model registry: registered models and their versions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_models",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registry_models")),
    )
    op.create_table(
        "registry_model_versions",
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flavor", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("artifact_hash", sa.String(length=64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("background_hash", sa.String(length=64), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("training_datasets", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_name"],
            ["registry_models.name"],
            name=op.f("fk_registry_model_versions_model_name_registry_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_name", "number", name=op.f("pk_registry_model_versions")),
    )
    with op.batch_alter_table("registry_model_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_model_versions_artifact", ["artifact_hash"], unique=False
        )
        # One production version per model, enforced by the database itself.
        batch_op.create_index(
            "uq_registry_model_versions_production",
            ["model_name"],
            unique=True,
            sqlite_where=sa.text("stage = 'production'"),
            postgresql_where=sa.text("stage = 'production'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_model_versions", schema=None) as batch_op:
        batch_op.drop_index("uq_registry_model_versions_production")
        batch_op.drop_index("ix_registry_model_versions_artifact")
    op.drop_table("registry_model_versions")
    op.drop_table("registry_models")
