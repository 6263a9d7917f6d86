"""Data versioning: datasets, versions, tags, transformations and lineage edges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:47:56.711177
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "dataversion_datasets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("compatibility", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("head", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataversion_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_dataversion_datasets_name")),
    )
    op.create_table(
        "dataversion_transformations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataversion_transformations")),
    )
    with op.batch_alter_table("dataversion_transformations", schema=None) as batch_op:
        batch_op.create_index("ix_dataversion_transformations_time", ["recorded_at"], unique=False)

    op.create_table(
        "dataversion_lineage_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("transformation_id", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transformation_id"],
            ["dataversion_transformations.id"],
            name=op.f("fk_dataversion_lineage_edges_transformation_id_dataversion_transformations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataversion_lineage_edges")),
        sa.UniqueConstraint(
            "source",
            "target",
            "transformation_id",
            name=op.f("uq_dataversion_lineage_edges_source"),
        ),
    )
    with op.batch_alter_table("dataversion_lineage_edges", schema=None) as batch_op:
        batch_op.create_index("ix_dataversion_lineage_edges_source", ["source"], unique=False)
        batch_op.create_index("ix_dataversion_lineage_edges_target", ["target"], unique=False)

    op.create_table(
        "dataversion_tags",
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataversion_datasets.id"],
            name=op.f("fk_dataversion_tags_dataset_id_dataversion_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "tag", name=op.f("pk_dataversion_tags")),
    )
    op.create_table(
        "dataversion_versions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("schema_json", sa.Text(), nullable=True),
        sa.Column("stats_json", sa.Text(), nullable=True),
        sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deprecation_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataversion_datasets.id"],
            name=op.f("fk_dataversion_versions_dataset_id_dataversion_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataversion_versions")),
        sa.UniqueConstraint(
            "dataset_id", "number", name=op.f("uq_dataversion_versions_dataset_id")
        ),
    )
    with op.batch_alter_table("dataversion_versions", schema=None) as batch_op:
        batch_op.create_index("ix_dataversion_versions_root", ["root"], unique=False)
        batch_op.create_index(
            "ix_dataversion_versions_time", ["dataset_id", "committed_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("dataversion_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_dataversion_versions_time")
        batch_op.drop_index("ix_dataversion_versions_root")

    op.drop_table("dataversion_versions")
    op.drop_table("dataversion_tags")
    with op.batch_alter_table("dataversion_lineage_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_dataversion_lineage_edges_target")
        batch_op.drop_index("ix_dataversion_lineage_edges_source")

    op.drop_table("dataversion_lineage_edges")
    with op.batch_alter_table("dataversion_transformations", schema=None) as batch_op:
        batch_op.drop_index("ix_dataversion_transformations_time")

    op.drop_table("dataversion_transformations")
    op.drop_table("dataversion_datasets")
