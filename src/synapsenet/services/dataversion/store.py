"""Persistence of the data versioning service: datasets, versions, tags and lineage.

File bytes never touch the database: versions point at a manifest (by Merkle root) in the
object store, and the manifest at content-addressed chunks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from synapsenet.core.db import Base, UTCDateTime


class DatasetRecord(Base):
    """A dataset; ``head`` is the newest version number, the row the commit lock is on."""

    __tablename__ = "dataversion_datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    format: Mapped[str] = mapped_column(String(32))
    compatibility: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    head: Mapped[int] = mapped_column(Integer)


class VersionRecord(Base):
    """One committed version; ``(dataset_id, number)`` is unique, so a lost race fails."""

    __tablename__ = "dataversion_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        Index("ix_dataversion_versions_time", "dataset_id", "committed_at"),
        Index("ix_dataversion_versions_root", "root"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("dataversion_datasets.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(64))
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    files: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    schema_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    stats_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    deprecated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deprecation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class TagRecord(Base):
    """A movable alias (``production``, ``golden``) of one version of a dataset."""

    __tablename__ = "dataversion_tags"

    dataset_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("dataversion_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TransformationRecord(Base):
    """A recorded transformation: the canonical JSON of the lineage model's object."""

    __tablename__ = "dataversion_transformations"
    __table_args__ = (Index("ix_dataversion_transformations_time", "recorded_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LineageEdgeRecord(Base):
    """One edge of the lineage graph, indexed both ways for ancestor and impact queries.

    ``transformation_id`` is set for edges a transformation produced; links between a
    dataset version and the run that read it, or a run and the model it produced, have none.
    """

    __tablename__ = "dataversion_lineage_edges"
    __table_args__ = (
        UniqueConstraint("source", "target", "transformation_id"),
        Index("ix_dataversion_lineage_edges_source", "source"),
        Index("ix_dataversion_lineage_edges_target", "target"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    source: Mapped[str] = mapped_column(String(300))
    target: Mapped[str] = mapped_column(String(300))
    transformation_id: Mapped[str | None] = mapped_column(
        String(64),
        ForeignKey("dataversion_transformations.id", ondelete="CASCADE"),
        nullable=True,
    )
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
