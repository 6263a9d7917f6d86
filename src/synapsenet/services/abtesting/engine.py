"""ABTestingEngine: experiment lifecycle, routing of units to variants, and ingestion.

Every state change is one database transaction that also writes its event to the outbox.
Transitions lock the experiment row (``SELECT ... FOR UPDATE`` on PostgreSQL, an immediate
write transaction on SQLite), so parallel requests serialize and an illegal transition is a
409, never a lost update.
"""

from __future__ import annotations

import builtins
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.abtesting.assignment import (
    build_layout,
)
from synapsenet.services.abtesting.ingestion import IngestResult, fold_observations
from synapsenet.services.abtesting.models import (
    TRANSITIONS,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    Observation,
    TrafficAllocationStrategy,
)
from synapsenet.services.abtesting.reporting import ExperimentResults, compute_results
from synapsenet.services.abtesting.routing import Assignment, Router
from synapsenet.services.abtesting.specs import initial_allocation, validate_spec
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.results import CorrectionMethod
from synapsenet.services.abtesting.store import (
    DecisionRecord,
    ExperimentRecord,
    MetricAggregate,
    allocation_to_json,
    experiment_from_record,
    load_exposures,
    load_metric_aggregates,
    spec_to_json,
)

EVENT_SOURCE = "/abtesting"


class ModelRegistryPort(Protocol):
    """What the A/B engine asks of the model registry (implemented by the registry service)."""

    def promote(self, model_name: str, model_version: str, *, reason: str) -> None:
        """Make ``model_version`` the production version of ``model_name``."""

    def demote(self, model_name: str, model_version: str, *, reason: str) -> None:
        """Take ``model_version`` out of service after a rollback."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One entry of an experiment's decision log.

    Attributes:
        id: Position in the log.
        experiment_id: The experiment.
        at: When it was taken.
        kind: ``rollback``, ``ramp``, ``bandit`` or ``lifecycle``.
        outcome: What was decided (``rolled_back``, ``healthy``, ``inconclusive``, ...).
        reason: Why, in words.
        evidence: The numbers behind it.
    """

    id: int
    experiment_id: str
    at: datetime
    kind: str
    outcome: str
    reason: str
    evidence: dict[str, Any]


class ABTestingEngine:
    """Runs experiments: lifecycle, routing, observation ingestion and the decision log.

    Args:
        db: The platform database (migrated).
        registry: Told about promotions and rollbacks; None when no registry is wired (the
            outbox events still announce them).
        analyzer: The statistics used for results (alpha 0.05 by default).
        clock: Source of the current time (aware UTC).
        route_ttl: Seconds a compiled routing table is reused before the experiment is
            re-read; a transition made by this engine takes effect at once regardless.
    """

    def __init__(
        self,
        db: Database,
        *,
        registry: ModelRegistryPort | None = None,
        analyzer: StatisticalAnalyzer | None = None,
        clock: Callable[[], datetime] = utcnow,
        route_ttl: float = 1.0,
    ) -> None:
        self.db = db
        self.registry = registry
        self.analyzer = analyzer or StatisticalAnalyzer()
        self.clock = clock
        self.route_ttl = route_ttl
        self.router = Router(self.get, route_ttl)

    # ------------------------------------------------------------------ definition

    def create(self, spec: ExperimentSpec) -> Experiment:
        """Create an experiment in ``DRAFT``.

        Raises:
            InvalidError: The spec is inconsistent (names the field).
            ConflictError: An experiment with that name exists.
        """
        validate_spec(spec)
        experiment_id = secrets.token_hex(8)
        allocation, share = initial_allocation(spec)
        now = self.clock()
        record = ExperimentRecord(
            id=experiment_id,
            name=spec.name,
            model_name=spec.model_name,
            status=ExperimentStatus.DRAFT.value,
            strategy=spec.strategy.value,
            salt=spec.salt or experiment_id,
            spec=spec_to_json(spec),
            allocation=allocation_to_json(allocation),
            treatment_share=str(share),
            ramp_step=0,
            ramp_held=False,
            created_at=now,
            version=1,
        )
        try:
            with self.db.transaction() as session:
                session.add(record)
                session.flush()
                self.emit_in(session, record, "created", {"from_status": None})
        except IntegrityError:
            raise ConflictError(f"an experiment named {spec.name!r} exists already") from None
        return experiment_from_record(record)

    def get(self, experiment_id: str) -> Experiment:
        """The experiment with this id (or name).

        Raises:
            NotFoundError: None has that id or name.
        """
        with self.db.transaction() as session:
            return experiment_from_record(self._load(session, experiment_id))

    def list(
        self, *, status: ExperimentStatus | None = None, model_name: str | None = None
    ) -> list[Experiment]:
        """Experiments, newest first, optionally filtered."""
        query = select(ExperimentRecord).order_by(
            ExperimentRecord.created_at.desc(), ExperimentRecord.id
        )
        if status is not None:
            query = query.where(ExperimentRecord.status == status.value)
        if model_name is not None:
            query = query.where(ExperimentRecord.model_name == model_name)
        with self.db.transaction() as session:
            return [experiment_from_record(r) for r in session.scalars(query)]

    def ids(self, *, status: ExperimentStatus | None = None) -> builtins.list[str]:
        """Ids of experiments (optionally in one status), oldest first, without loading them.

        Periodic work iterates over these, so one unreadable experiment cannot stop the rest.
        """
        query = select(ExperimentRecord.id).order_by(
            ExperimentRecord.created_at, ExperimentRecord.id
        )
        if status is not None:
            query = query.where(ExperimentRecord.status == status.value)
        with self.db.transaction() as session:
            return list(session.scalars(query))

    def running_for_model(self, model_name: str) -> Experiment | None:
        """The running experiment on ``model_name``, if any (inference routing)."""
        running = self.list(status=ExperimentStatus.RUNNING, model_name=model_name)
        return running[0] if running else None

    # ------------------------------------------------------------------ lifecycle

    def start(self, experiment_id: str) -> Experiment:
        """``DRAFT -> RUNNING``: traffic starts flowing by the initial allocation."""

        def begin(record: ExperimentRecord, now: datetime) -> None:
            record.started_at = now
            record.step_started_at = now

        return self._transition(experiment_id, ExperimentStatus.RUNNING, "started", begin)

    def pause(self, experiment_id: str) -> Experiment:
        """``RUNNING -> PAUSED``: every unit gets the control until resumed."""
        return self._transition(experiment_id, ExperimentStatus.PAUSED, "paused")

    def resume(self, experiment_id: str) -> Experiment:
        """``PAUSED -> RUNNING``."""
        return self._transition(
            experiment_id, ExperimentStatus.RUNNING, "resumed", expect=ExperimentStatus.PAUSED
        )

    def stop(self, experiment_id: str, *, reason: str = "") -> Experiment:
        """End without a winner; all traffic returns to the control."""

        def end(record: ExperimentRecord, now: datetime) -> None:
            self._all_to_control(record)
            record.ended_at = now

        return self._transition(
            experiment_id, ExperimentStatus.STOPPED, "stopped", end, data={"reason": reason}
        )

    def complete(self, experiment_id: str, *, winner: str | None = None) -> Experiment:
        """End the experiment; with a winner, ask the registry to promote its version.

        Raises:
            InvalidError: ``winner`` names no variant.
        """
        experiment = self.get(experiment_id)
        version = experiment.variant(winner).model_version if winner is not None else None

        def end(record: ExperimentRecord, now: datetime) -> None:
            record.winner = winner
            record.ended_at = now

        completed = self._transition(
            experiment_id,
            ExperimentStatus.COMPLETED,
            "completed",
            end,
            data={"winner": winner, "winner_model_version": version},
        )
        if self.registry is not None and winner is not None and version is not None:
            self.registry.promote(
                completed.spec.model_name, version, reason=f"won experiment {completed.name}"
            )
        return completed

    def rollback(self, experiment_id: str, *, reason: str, evidence: dict[str, Any]) -> Experiment:
        """Send all traffic to the control, mark ``ROLLED_BACK`` and record why.

        The decision and the ``abtesting.experiment.rolled_back`` event are written in the
        same transaction as the status; then the registry demotes every treatment version.
        The event names those versions (``treatment_model_versions``), so a registry that
        listens on the bus can demote them too.
        """
        treatments = [v.model_version for v in self.get(experiment_id).variants if not v.is_control]

        def roll_back(record: ExperimentRecord, now: datetime) -> None:
            self._all_to_control(record)
            record.ended_at = now

        def log(session: Session, record: ExperimentRecord, now: datetime) -> None:
            self.log_decision_in(
                session, record.id, now, "rollback", "rolled_back", reason, evidence
            )

        rolled_back = self._transition(
            experiment_id,
            ExperimentStatus.ROLLED_BACK,
            "rolled_back",
            roll_back,
            data={
                "reason": reason,
                "evidence": evidence,
                "treatment_model_versions": treatments,
            },
            also=log,
        )
        if self.registry is not None:
            for variant in rolled_back.variants:
                if not variant.is_control:
                    self.registry.demote(
                        rolled_back.spec.model_name,
                        variant.model_version,
                        reason=f"rolled back in experiment {rolled_back.name}: {reason}",
                    )
        return rolled_back

    def set_allocation(
        self,
        experiment_id: str,
        allocation: Sequence[Decimal],
        *,
        kind: str,
        reason: str,
        evidence: dict[str, Any],
        ramp_step: int | None = None,
        treatment_share: Decimal | None = None,
    ) -> Experiment:
        """Change a running experiment's allocation (ramp advance, bandit reweighting).

        Raises:
            ConflictError: The experiment is not running.
            InvalidError: The weights do not sum exactly to 1.
        """
        now = self.clock()
        with self._locked(experiment_id) as (session, record):
            if record.status != ExperimentStatus.RUNNING.value:
                raise ConflictError(
                    f"cannot change the allocation of experiment {record.name!r}: "
                    f"it is {record.status}"
                )
            spec_weights = [Decimal(w) for w in json.loads(record.allocation)]
            if len(allocation) != len(spec_weights):
                raise InvalidError(
                    f"expected {len(spec_weights)} weights, got {len(allocation)}",
                    field="allocation",
                )
            build_layout(list(allocation), experiment_from_record(record).control_index)
            record.allocation = allocation_to_json(allocation)
            if ramp_step is not None:
                record.ramp_step = ramp_step
            if treatment_share is not None:
                record.treatment_share = str(treatment_share)
            record.step_started_at = now
            record.version += 1
            self.log_decision_in(session, record.id, now, kind, "reallocated", reason, evidence)
            self.emit_in(
                session,
                record,
                "ramped" if kind == "ramp" else "reallocated",
                {"allocation": [str(w) for w in allocation], "reason": reason},
            )
            updated = experiment_from_record(record)
        self.router.forget()
        return updated

    def set_ramp_hold(self, experiment_id: str, *, held: bool, reason: str = "") -> Experiment:
        """Hold a ramp at its current step (or release it), recorded in the decision log.

        Raises:
            ConflictError: The experiment is not a ramp, or has ended.
        """
        now = self.clock()
        with self._locked(experiment_id) as (session, record):
            if record.strategy != TrafficAllocationStrategy.RAMPING.value:
                raise ConflictError(f"experiment {record.name!r} is not a ramp")
            if ExperimentStatus(record.status).is_terminal:
                raise ConflictError(f"experiment {record.name!r} is {record.status}")
            record.ramp_held = held
            record.version += 1
            outcome = "held" if held else "released"
            self.log_decision_in(session, record.id, now, "ramp", outcome, reason, {})
            self.emit_in(session, record, f"ramp_{outcome}", {"reason": reason})
            updated = experiment_from_record(record)
        self.router.forget()
        return updated

    # ------------------------------------------------------------------ routing

    @property
    def routing_generation(self) -> int:
        """Changes whenever this engine changes an experiment (see ``Router.generation``)."""
        return self.router.generation

    def assign(self, experiment_id: str, unit_id: str) -> Assignment:
        """Route one unit: sticky, deterministic, and the control outside the experiment."""
        return self.router.assign(experiment_id, unit_id)

    def assign_batch(
        self, experiment_id: str, unit_ids: npt.NDArray[np.generic] | Sequence[str]
    ) -> builtins.list[str]:
        """Route many units at once; the same answers as :meth:`assign` one by one."""
        return self.router.assign_batch(experiment_id, unit_ids)

    # ------------------------------------------------------------------ ingestion

    def ingest(
        self,
        experiment_id: str,
        observations: Sequence[Observation],
        *,
        batch_id: str | None = None,
    ) -> IngestResult:
        """Fold exposures and outcomes into the experiment's sufficient statistics.

        Idempotent: with a ``batch_id`` the whole batch is counted once; without one, each
        observation is counted once per ``event_id``. The batch is validated as a whole
        first, so a bad observation stores nothing.

        Raises:
            InvalidError: An observation names an unknown variant or metric, has no value for
                a metric, a non-0/1 value for a binary metric, or a naive time.
            ConflictError: The experiment is still a draft.
        """
        experiment = self.router.experiment(experiment_id)
        if experiment.status is ExperimentStatus.DRAFT:
            raise ConflictError(f"experiment {experiment.name!r} has not started")
        with self.db.transaction() as session:
            return fold_observations(
                session, experiment, observations, batch_id=batch_id, now=self.clock()
            )

    # ------------------------------------------------------------------ results

    def statistics(
        self, experiment_id: str
    ) -> tuple[Experiment, builtins.list[MetricAggregate], dict[str, tuple[int, datetime]]]:
        """The experiment with its stored aggregates and exposures, read consistently."""
        with self.db.transaction() as session:
            experiment = experiment_from_record(self._load(session, experiment_id))
            aggregates = load_metric_aggregates(session, experiment.id)
            exposures = load_exposures(session, experiment.id)
        return experiment, aggregates, exposures

    def results(
        self,
        experiment_id: str,
        *,
        sequential: bool = True,
        correction: CorrectionMethod = CorrectionMethod.HOLM,
    ) -> ExperimentResults:
        """The results page: every metric of every treatment against the control.

        Args:
            experiment_id: The experiment's id or name.
            sequential: Always-valid inference, safe to read at every look (default).
            correction: Multiple-testing correction across metrics and treatments.
        """
        experiment, aggregates, exposures = self.statistics(experiment_id)
        return compute_results(
            experiment,
            aggregates,
            {name: count for name, (count, _) in exposures.items()},
            self.analyzer,
            now=self.clock(),
            sequential=sequential,
            correction=correction,
        )

    # ------------------------------------------------------------------ decision log

    def decisions(self, experiment_id: str, *, limit: int = 100) -> builtins.list[Decision]:
        """The experiment's decision log, newest first."""
        with self.db.transaction() as session:
            record = self._load(session, experiment_id)
            rows = session.scalars(
                select(DecisionRecord)
                .where(DecisionRecord.experiment_id == record.id)
                .order_by(DecisionRecord.id.desc())
                .limit(limit)
            )
            return [
                Decision(
                    id=row.id,
                    experiment_id=row.experiment_id,
                    at=row.at,
                    kind=row.kind,
                    outcome=row.outcome,
                    reason=row.reason,
                    evidence=json.loads(row.evidence),
                )
                for row in rows
            ]

    def log_decision(
        self, experiment_id: str, kind: str, outcome: str, reason: str, evidence: dict[str, Any]
    ) -> None:
        """Append a decision (e.g. an inconclusive guardrail check) to the log."""
        with self.db.transaction(write=True) as session:
            record = self._load(session, experiment_id)
            self.log_decision_in(session, record.id, self.clock(), kind, outcome, reason, evidence)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def log_decision_in(
        session: Session,
        experiment_id: str,
        at: datetime,
        kind: str,
        outcome: str,
        reason: str,
        evidence: dict[str, Any],
    ) -> None:
        """Append a decision inside the caller's transaction (e.g. an event consumer's)."""
        session.add(
            DecisionRecord(
                experiment_id=experiment_id,
                at=at,
                kind=kind,
                outcome=outcome,
                reason=reason,
                evidence=json.dumps(evidence, sort_keys=True, default=str),
            )
        )

    @staticmethod
    def _load(session: Session, experiment_id: str, *, lock: bool = False) -> ExperimentRecord:
        query = select(ExperimentRecord).where(
            (ExperimentRecord.id == experiment_id) | (ExperimentRecord.name == experiment_id)
        )
        if lock:
            query = query.with_for_update()
        record = session.scalars(query).first()
        if record is None:
            raise NotFoundError(f"no experiment with id or name {experiment_id!r}")
        return record

    @contextmanager
    def _locked(self, experiment_id: str) -> Iterator[tuple[Session, ExperimentRecord]]:
        with self.db.transaction(write=True) as session:
            yield session, self._load(session, experiment_id, lock=True)

    @staticmethod
    def _all_to_control(record: ExperimentRecord) -> None:
        experiment = experiment_from_record(record)
        allocation = [Decimal(0)] * len(experiment.variants)
        allocation[experiment.control_index] = Decimal(1)
        record.allocation = allocation_to_json(allocation)
        record.treatment_share = "0"

    def _transition(
        self,
        experiment_id: str,
        target: ExperimentStatus,
        event: str,
        mutate: Callable[[ExperimentRecord, datetime], None] | None = None,
        *,
        expect: ExperimentStatus | None = None,
        data: dict[str, Any] | None = None,
        also: Callable[[Session, ExperimentRecord, datetime], None] | None = None,
    ) -> Experiment:
        now = self.clock()
        with self._locked(experiment_id) as (session, record):
            current = ExperimentStatus(record.status)
            if target not in TRANSITIONS[current] or (expect is not None and current != expect):
                raise ConflictError(
                    f"cannot move experiment {record.name!r} from {current.value} to "
                    f"{target.value}",
                    status=current.value,
                )
            record.status = target.value
            record.version += 1
            if mutate is not None:
                mutate(record, now)
            if also is not None:
                also(session, record, now)
            self.emit_in(session, record, event, {"from_status": current.value, **(data or {})})
            updated = experiment_from_record(record)
        self.router.forget()
        return updated

    @staticmethod
    def emit_in(
        session: Session, record: ExperimentRecord, event: str, data: dict[str, Any]
    ) -> None:
        """Write ``abtesting.experiment.<event>`` to the outbox in the caller's transaction."""
        record_event(
            session,
            Event(
                type=f"abtesting.experiment.{event}",
                source=EVENT_SOURCE,
                subject=record.id,
                data={
                    "experiment_id": record.id,
                    "name": record.name,
                    "model_name": record.model_name,
                    "status": record.status,
                    **data,
                },
            ),
        )
