"""Persistence of the model registry: models and their versions.

A version's stage is a column, and a partial unique index on ``(model_name)`` where the
stage is ``production`` makes "one production version per model" a database invariant on
both SQLite and PostgreSQL. Transitions also lock the model row first (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's write transactions take the database lock up front), so
concurrent promotions serialize instead of failing on the index.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from synapsenet.core.db import Base, UTCDateTime
from synapsenet.services.registry.models import (
    ModelFlavor,
    ModelSignature,
    ModelStage,
    ModelVersion,
    RegisteredModel,
)

__all__ = ["ModelRecord", "ModelVersionRecord", "model_from_record", "version_from_record"]

PRODUCTION_INDEX = "uq_registry_model_versions_production"


class ModelRecord(Base):
    """A registered model; its row is the lock that serializes its versions' transitions."""

    __tablename__ = "registry_models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelVersionRecord(Base):
    """One version: where its artifact is, what it takes and returns, and its stage."""

    __tablename__ = "registry_model_versions"
    __table_args__ = (
        Index(
            PRODUCTION_INDEX,
            "model_name",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
        Index("ix_registry_model_versions_artifact", "artifact_hash"),
    )

    model_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("registry_models.name", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    flavor: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(Text)
    artifact_hash: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    background_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[str] = mapped_column(Text)
    training_datasets: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str] = mapped_column(Text)
    trusted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


def model_from_record(record: ModelRecord, production: str | None) -> RegisteredModel:
    """The domain object of a model row."""
    return RegisteredModel(
        name=record.name,
        description=record.description,
        created_at=record.created_at,
        latest_version=record.latest_version,
        production_version=production,
    )


def version_from_record(record: ModelVersionRecord) -> ModelVersion:
    """The domain object of a version row."""
    return ModelVersion(
        model_name=record.model_name,
        version=str(record.number),
        flavor=ModelFlavor(record.flavor),
        stage=ModelStage(record.stage),
        signature=ModelSignature.from_dict(json.loads(record.signature)),
        artifact_hash=record.artifact_hash,
        artifact_size=record.artifact_size,
        metrics=json.loads(record.metrics),
        training_datasets=tuple(json.loads(record.training_datasets)),
        run_id=record.run_id,
        created_at=record.created_at,
        description=record.description,
        trusted=record.trusted,
        background_hash=record.background_hash,
        stage_changed_at=record.stage_changed_at,
    )
