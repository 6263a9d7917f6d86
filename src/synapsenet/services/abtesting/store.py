"""Persistence of the A/B testing service: experiments, aggregated statistics, decisions.

Observations are never stored one by one: they are folded into per (experiment, variant,
metric) sufficient statistics with an atomic upsert, so results cost the same whatever the
traffic. Idempotency is kept by recording each ingested event id (or batch id) in the same
transaction as the aggregates it changed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from synapsenet.core.db import Base, UTCDateTime
from synapsenet.services.abtesting.models import (
    BanditConfig,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    Exposure,
    MetricDefinition,
    RampStep,
    RollbackPolicy,
    TrafficAllocationStrategy,
    Variant,
)
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats


class ExperimentRecord(Base):
    """An experiment row: spec as JSON, lifecycle columns for queries and locking."""

    __tablename__ = "abtesting_experiments"
    __table_args__ = (Index("ix_abtesting_experiments_model_status", "model_name", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(32))
    salt: Mapped[str] = mapped_column(String(200))
    spec: Mapped[str] = mapped_column(Text)
    allocation: Mapped[str] = mapped_column(Text)
    treatment_share: Mapped[str] = mapped_column(String(32))
    ramp_step: Mapped[int] = mapped_column(Integer)
    ramp_held: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    step_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    winner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class MetricStatsRecord(Base):
    """Sufficient statistics of one metric in one arm (y: value, x: pre-period covariate)."""

    __tablename__ = "abtesting_metric_stats"

    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[str] = mapped_column(String(200), primary_key=True)
    metric: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    sum: Mapped[float] = mapped_column(Float)
    sum_squares: Mapped[float] = mapped_column(Float)
    n_covariate: Mapped[int] = mapped_column(BigInteger)
    sum_cov_y: Mapped[float] = mapped_column(Float)
    sum_cov_y2: Mapped[float] = mapped_column(Float)
    sum_x: Mapped[float] = mapped_column(Float)
    sum_x2: Mapped[float] = mapped_column(Float)
    sum_xy: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExposureRecord(Base):
    """How many exposures one arm has received (sample-ratio checks, ramp minimums)."""

    __tablename__ = "abtesting_exposures"

    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IngestedKeyRecord(Base):
    """An event id (or batch id) already counted for an experiment."""

    __tablename__ = "abtesting_ingested_keys"

    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class DecisionRecord(Base):
    """One guardrail, ramp or bandit decision, with its evidence: the audit log."""

    __tablename__ = "abtesting_decisions"
    __table_args__ = (Index("ix_abtesting_decisions_experiment", "experiment_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)


class GuardrailStateRecord(Base):
    """The breach streak of one guardrail metric in one treatment arm."""

    __tablename__ = "abtesting_guardrail_state"

    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[str] = mapped_column(String(200), primary_key=True)
    metric: Mapped[str] = mapped_column(String(200), primary_key=True)
    consecutive_breaches: Mapped[int] = mapped_column(Integer)
    last_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ServedRequestRecord(Base):
    """A request routed to an arm: lets an outcome name its request or unit, not its arm."""

    __tablename__ = "abtesting_served_requests"
    __table_args__ = (
        Index("ix_abtesting_served_requests_unit", "experiment_id", "unit_id", "served_at"),
    )

    experiment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("abtesting_experiments.id", ondelete="CASCADE"), primary_key=True
    )
    request_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(200))
    variant: Mapped[str] = mapped_column(String(200))
    served_at: Mapped[datetime] = mapped_column(UTCDateTime())


def spec_to_json(spec: ExperimentSpec) -> str:
    """Serialise a spec (exact decimals as strings)."""
    document: dict[str, Any] = {
        "name": spec.name,
        "model_name": spec.model_name,
        "variants": [v.to_dict() for v in spec.variants],
        "metrics": [m.to_dict() for m in spec.metrics],
        "strategy": spec.strategy.value,
        "coverage": str(spec.coverage),
        "ramp": [
            {
                "traffic": str(step.traffic),
                "min_duration_seconds": step.min_duration.total_seconds(),
                "min_samples_per_arm": step.min_samples_per_arm,
            }
            for step in spec.ramp
        ],
        "bandit": spec.bandit.to_dict() if spec.bandit else None,
        "rollback_policy": spec.rollback_policy.to_dict(),
        "description": spec.description,
        "salt": spec.salt,
    }
    return json.dumps(document, sort_keys=True)


def spec_from_json(document: str) -> ExperimentSpec:
    """Inverse of :func:`spec_to_json`."""
    data = json.loads(document)
    return ExperimentSpec(
        name=data["name"],
        model_name=data["model_name"],
        variants=tuple(Variant.from_dict(v) for v in data["variants"]),
        metrics=tuple(MetricDefinition.from_dict(m) for m in data["metrics"]),
        strategy=TrafficAllocationStrategy(data["strategy"]),
        coverage=Decimal(data["coverage"]),
        ramp=tuple(
            RampStep(
                traffic=Decimal(step["traffic"]),
                min_duration=timedelta(seconds=step["min_duration_seconds"]),
                min_samples_per_arm=int(step["min_samples_per_arm"]),
            )
            for step in data["ramp"]
        ),
        bandit=BanditConfig.from_dict(data["bandit"]) if data["bandit"] else None,
        rollback_policy=RollbackPolicy.from_dict(data["rollback_policy"]),
        description=data["description"],
        salt=data["salt"],
    )


def experiment_from_record(record: ExperimentRecord) -> Experiment:
    """Build the domain object from its row."""
    return Experiment(
        id=record.id,
        spec=spec_from_json(record.spec),
        status=ExperimentStatus(record.status),
        salt=record.salt,
        allocation=tuple(Decimal(w) for w in json.loads(record.allocation)),
        treatment_share=Decimal(record.treatment_share),
        ramp_step=record.ramp_step,
        ramp_held=record.ramp_held,
        created_at=record.created_at,
        started_at=record.started_at,
        step_started_at=record.step_started_at,
        ended_at=record.ended_at,
        winner=record.winner,
        version=record.version,
    )


def allocation_to_json(allocation: Sequence[Decimal]) -> str:
    """Serialise weights exactly."""
    return json.dumps([str(w) for w in allocation])


@dataclass(frozen=True, slots=True)
class MetricAggregate:
    """Everything stored about one metric in one arm."""

    variant: str
    metric: str
    outcome: SampleStats
    covariate: CovariateStats | None
    updated_at: datetime


@dataclass
class MetricDelta:
    """Increments to one arm's statistics of one metric, built up by a batch."""

    n: int = 0
    sum: float = 0.0
    sum_squares: float = 0.0
    n_covariate: int = 0
    sum_cov_y: float = 0.0
    sum_cov_y2: float = 0.0
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def claim_keys(session: Session, experiment_id: str, keys: Iterable[str]) -> set[str]:
    """Record ingestion keys; return those not seen before (in this transaction's view).

    A concurrent transaction inserting the same key blocks on it until the other commits,
    then finds it taken: each key is claimed by exactly one transaction.
    """
    # Sorted, so concurrent claims of overlapping keys wait on each other in one order.
    unique = sorted(set(keys))
    if not unique:
        return set()
    table = IngestedKeyRecord.__table__
    # executemany with RETURNING: SQLAlchemy batches it into multi-row statements itself.
    statement = _insert(session, table).on_conflict_do_nothing().returning(table.c.key)
    rows = [{"experiment_id": experiment_id, "key": k} for k in unique]
    claimed: set[str] = set(session.execute(statement, rows).scalars())
    return claimed


def add_metric_deltas(
    session: Session,
    experiment_id: str,
    deltas: dict[tuple[str, str], MetricDelta],
    now: datetime,
) -> None:
    """Fold per (variant, metric) deltas into the stored statistics with atomic upserts."""
    table = MetricStatsRecord.__table__
    # Sorted, so concurrent batches lock the same rows in the same order (no deadlock).
    for (variant, metric), delta in sorted(deltas.items()):
        values = {
            "experiment_id": experiment_id,
            "variant": variant,
            "metric": metric,
            "n": delta.n,
            "sum": delta.sum,
            "sum_squares": delta.sum_squares,
            "n_covariate": delta.n_covariate,
            "sum_cov_y": delta.sum_cov_y,
            "sum_cov_y2": delta.sum_cov_y2,
            "sum_x": delta.sum_x,
            "sum_x2": delta.sum_x2,
            "sum_xy": delta.sum_xy,
            "updated_at": now,
        }
        statement = _insert(session, table).values(values)
        increments = {
            column: table.c[column] + statement.excluded[column]
            for column in values
            if column not in ("experiment_id", "variant", "metric", "updated_at")
        }
        increments["updated_at"] = statement.excluded.updated_at
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["experiment_id", "variant", "metric"], set_=increments
            )
        )


def add_exposures(
    session: Session, experiment_id: str, counts: dict[str, int], now: datetime
) -> None:
    """Add exposure counts per variant with atomic upserts."""
    table = ExposureRecord.__table__
    for variant, count in sorted(counts.items()):
        statement = _insert(session, table).values(
            experiment_id=experiment_id, variant=variant, count=count, updated_at=now
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["experiment_id", "variant"],
                set_={
                    "count": table.c.count + statement.excluded.count,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )


def load_metric_aggregates(session: Session, experiment_id: str) -> list[MetricAggregate]:
    """Every stored metric aggregate of an experiment."""
    rows = session.scalars(
        select(MetricStatsRecord).where(MetricStatsRecord.experiment_id == experiment_id)
    )
    aggregates = []
    for row in rows:
        covariate = None
        if row.n_covariate > 0:
            covariate = CovariateStats(
                n=row.n_covariate,
                sum_y=row.sum_cov_y,
                sum_y2=row.sum_cov_y2,
                sum_x=row.sum_x,
                sum_x2=row.sum_x2,
                sum_xy=row.sum_xy,
            )
        aggregates.append(
            MetricAggregate(
                variant=row.variant,
                metric=row.metric,
                outcome=SampleStats(n=row.n, sum=row.sum, sum_squares=row.sum_squares),
                covariate=covariate,
                updated_at=row.updated_at,
            )
        )
    return aggregates


def load_exposures(session: Session, experiment_id: str) -> dict[str, tuple[int, datetime]]:
    """Exposure count and last update per variant."""
    rows = session.scalars(
        select(ExposureRecord).where(ExposureRecord.experiment_id == experiment_id)
    )
    return {row.variant: (row.count, row.updated_at) for row in rows}


def record_served(session: Session, experiment_id: str, exposures: Sequence[Exposure]) -> None:
    """Log served requests; a request logged before keeps its first row."""
    if not exposures:
        return
    table = ServedRequestRecord.__table__
    rows = [
        {
            "experiment_id": experiment_id,
            "request_id": e.request_id,
            "unit_id": e.unit_id,
            "variant": e.variant,
            "served_at": e.time,
        }
        for e in exposures
    ]
    session.execute(_insert(session, table).on_conflict_do_nothing(), rows)


def variants_of_requests(
    session: Session, experiment_id: str, request_ids: Collection[str]
) -> dict[str, str]:
    """The arm that served each logged request (requests never logged are absent)."""
    if not request_ids:
        return {}
    rows = session.execute(
        select(ServedRequestRecord.request_id, ServedRequestRecord.variant).where(
            ServedRequestRecord.experiment_id == experiment_id,
            ServedRequestRecord.request_id.in_(sorted(request_ids)),
        )
    )
    return dict(rows.all())


def variants_of_units(
    session: Session, experiment_id: str, unit_ids: Collection[str]
) -> dict[str, str]:
    """The arm that served each unit's latest logged request (units never served are absent)."""
    if not unit_ids:
        return {}
    rows = session.execute(
        select(ServedRequestRecord.unit_id, ServedRequestRecord.variant)
        .where(
            ServedRequestRecord.experiment_id == experiment_id,
            ServedRequestRecord.unit_id.in_(sorted(unit_ids)),
        )
        .order_by(ServedRequestRecord.served_at, ServedRequestRecord.request_id)
    )
    # Ordered by time, so the last row of a unit wins.
    return dict(rows.all())
