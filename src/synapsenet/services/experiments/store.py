"""Persistence of run tracking: runs, their params, metric points, datasets read, models produced.

Each kind of record has its own table. Metric points are inserted in bulk, and each metric's
latest value is kept in its own row as points arrive (as MLflow does), so reading a run costs
the same however long its metric histories are. Runs are read back in batches: loading a page of
runs costs the same five queries whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from synapsenet.core.db import Base, UTCDateTime
from synapsenet.services.experiments.models import (
    LoggedDataset,
    LoggedModel,
    Metric,
    Run,
    RunStatus,
    decode_param,
)

_AUTOINCREMENT = BigInteger().with_variant(Integer, "sqlite")


class RunRecord(Base):
    """A run; the row its lifecycle transitions lock."""

    __tablename__ = "experiments_runs"
    __table_args__ = (
        Index("ix_experiments_runs_project_started", "project", "started_at"),
        Index("ix_experiments_runs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    tags: Mapped[str] = mapped_column(Text)


class ParamRecord(Base):
    """One parameter of a run: its canonical JSON text, immutable once written."""

    __tablename__ = "experiments_run_params"
    __table_args__ = (Index("ix_experiments_run_params_key", "key"),)

    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("experiments_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MetricRecord(Base):
    """One measured value of one metric of a run."""

    __tablename__ = "experiments_run_metrics"
    __table_args__ = (Index("ix_experiments_run_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(_AUTOINCREMENT, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("experiments_runs.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float())
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())


class LatestMetricRecord(Base):
    """The latest value of one metric of a run (highest step, then newest), kept on write."""

    __tablename__ = "experiments_run_latest_metrics"

    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("experiments_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float())
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())


class RunDatasetRecord(Base):
    """A dataset version a run read: the exact ``name@vN`` and the reference as given."""

    __tablename__ = "experiments_run_datasets"
    __table_args__ = (
        UniqueConstraint("run_id", "ref"),
        Index("ix_experiments_run_datasets_ref", "ref"),
    )

    id: Mapped[int] = mapped_column(_AUTOINCREMENT, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("experiments_runs.id", ondelete="CASCADE")
    )
    ref: Mapped[str] = mapped_column(String(300))
    requested: Mapped[str] = mapped_column(String(300))
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunModelRecord(Base):
    """A model version a run produced; a model version has one producing run."""

    __tablename__ = "experiments_run_models"
    __table_args__ = (
        UniqueConstraint("model_name", "version"),
        Index("ix_experiments_run_models_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(_AUTOINCREMENT, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("experiments_runs.id", ondelete="CASCADE")
    )
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime())


def latest_metrics(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The latest value of every metric of each run, by run id and then key."""
    latest: dict[str, dict[str, float]] = {}
    if not run_ids:
        return latest
    query = (
        select(LatestMetricRecord.run_id, LatestMetricRecord.key, LatestMetricRecord.value)
        .where(LatestMetricRecord.run_id.in_(run_ids))
        .order_by(LatestMetricRecord.run_id, LatestMetricRecord.key)
    )
    for run_id, key, value in session.execute(query):
        latest.setdefault(run_id, {})[key] = value
    return latest


def record_metrics(session: Session, run_id: str, metrics: Sequence[Metric]) -> None:
    """Insert measurements, and move each metric's latest value on where they are newer.

    A measurement is newer when its (step, timestamp) is at least the latest's: the highest
    step wins, then the newest time, then the one logged last. The caller holds the run's lock,
    so the read and the write of the latest values cannot interleave with another writer's.
    """
    session.execute(
        insert(MetricRecord),
        [
            {
                "run_id": run_id,
                "key": m.key,
                "value": m.value,
                "step": m.step,
                "timestamp": m.timestamp,
            }
            for m in metrics
        ],
    )
    newest: dict[str, Metric] = {}
    for metric in metrics:
        current = newest.get(metric.key)
        if current is None or _order(metric) >= _order(current):
            newest[metric.key] = metric
    stored = {
        row.key: row
        for row in session.scalars(
            select(LatestMetricRecord)
            .where(LatestMetricRecord.run_id == run_id)
            .where(LatestMetricRecord.key.in_(newest))
        )
    }
    for key, metric in newest.items():
        row = stored.get(key)
        if row is None:
            session.add(
                LatestMetricRecord(
                    run_id=run_id,
                    key=key,
                    value=metric.value,
                    step=metric.step,
                    timestamp=metric.timestamp,
                )
            )
        elif _order(metric) >= (row.step, row.timestamp):
            row.value, row.step, row.timestamp = metric.value, metric.step, metric.timestamp


def _order(metric: Metric) -> tuple[int, datetime]:
    return (metric.step, metric.timestamp)


def metric_history(session: Session, run_id: str, key: str) -> list[Metric]:
    """Every value of one metric of a run, by step, then time, then logging order."""
    query = (
        select(MetricRecord.value, MetricRecord.step, MetricRecord.timestamp)
        .where(MetricRecord.run_id == run_id)
        .where(MetricRecord.key == key)
        .order_by(MetricRecord.step, MetricRecord.timestamp, MetricRecord.id)
    )
    return [Metric(key, value, step, moment) for value, step, moment in session.execute(query)]


def runs_from_records(session: Session, records: Sequence[RunRecord]) -> list[Run]:
    """Runs with everything logged to them, in the order of ``records``."""
    ids = [r.id for r in records]
    params: dict[str, dict[str, str]] = {}
    datasets: dict[str, list[LoggedDataset]] = {}
    models: dict[str, list[LoggedModel]] = {}
    if ids:
        for param in session.scalars(
            select(ParamRecord).where(ParamRecord.run_id.in_(ids)).order_by(ParamRecord.key)
        ):
            params.setdefault(param.run_id, {})[param.key] = param.value
        for dataset in session.scalars(
            select(RunDatasetRecord)
            .where(RunDatasetRecord.run_id.in_(ids))
            .order_by(RunDatasetRecord.id)
        ):
            datasets.setdefault(dataset.run_id, []).append(
                LoggedDataset(dataset.ref, dataset.requested, dataset.logged_at)
            )
        for model in session.scalars(
            select(RunModelRecord).where(RunModelRecord.run_id.in_(ids)).order_by(RunModelRecord.id)
        ):
            models.setdefault(model.run_id, []).append(
                LoggedModel(model.model_name, model.version, model.logged_at)
            )
    metrics = latest_metrics(session, ids)
    return [
        Run(
            id=record.id,
            project=record.project,
            name=record.name,
            status=RunStatus(record.status),
            started_at=record.started_at,
            ended_at=record.ended_at,
            params=MappingProxyType(
                {k: decode_param(v) for k, v in params.get(record.id, {}).items()}
            ),
            metrics=MappingProxyType(metrics.get(record.id, {})),
            tags=MappingProxyType(json.loads(record.tags)),
            datasets=tuple(datasets.get(record.id, ())),
            models=tuple(models.get(record.id, ())),
        )
        for record in records
    ]


def tags_to_json(tags: dict[str, str]) -> str:
    """The stored form of a run's tags (sorted keys, so equal tags store equal text)."""
    return json.dumps(tags, sort_keys=True, ensure_ascii=False)
