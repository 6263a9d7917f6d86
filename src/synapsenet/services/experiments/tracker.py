"""RunTracker: records training runs, what they were configured with, measured, read and made.

Every change is one database transaction that locks the run's row (``SELECT ... FOR UPDATE``
on PostgreSQL, an immediate write transaction on SQLite), so a log racing the end of the run
either lands before it or is refused, never after it. Lifecycle changes and the datasets and
models of a run also write their outbox event in that transaction.

Ended runs refuse anything that would change them (see
:mod:`~synapsenet.services.experiments.lifecycle`); repeating what is recorded is a no-op, so
every call but :meth:`RunTracker.log_metrics` can be retried safely.

The tracker implements :class:`~synapsenet.services.dataversion.reconstruction.RunDatasetsPort`
from its own table, so ``DatasetReconstructor(engine, lineage, runs=tracker)`` returns exactly
the versions a run logged.
"""

from __future__ import annotations

import builtins
import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.lineage_model import NodeRef
from synapsenet.services.experiments.lifecycle import (
    Logging,
    check_accepts,
    check_end,
    new_params,
)
from synapsenet.services.experiments.models import (
    DEFAULT_PROJECT,
    Metric,
    ParamValue,
    Run,
    RunStatus,
    validate_key,
    validate_metric,
    validate_model,
    validate_name,
    validate_params,
    validate_run_name,
    validate_tags,
)
from synapsenet.services.experiments.ports import DatasetResolver, LineageLinker, parse_canonical
from synapsenet.services.experiments.store import (
    ParamRecord,
    RunDatasetRecord,
    RunModelRecord,
    RunRecord,
    metric_history,
    record_metrics,
    runs_from_records,
    tags_to_json,
)

EVENT_SOURCE = "/experiments"
MAX_LIST = 1000
"""Most runs one :meth:`RunTracker.list_runs` call returns."""
MAX_REF_LENGTH = 300
"""Longest dataset reference :meth:`RunTracker.log_dataset` takes."""


def new_run_id(now: datetime) -> str:
    """32 hex digits: milliseconds since the epoch, then 80 random bits (sorts by start)."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(10)}"


class RunTracker:
    """Tracks training runs: params, metrics, the dataset versions read, the models produced.

    Args:
        db: The platform database (migrated).
        lineage: Where usage links go (``dataset -> run`` for each read, ``run -> model`` for
            each model produced), so lineage impact analysis reaches runs and models; None to
            keep runs out of the lineage graph.
        datasets: Resolves logged references (``orders@production``, ``orders``) to the exact
            version at log time; without one only exact ``name@vN`` references are accepted,
            and they are not checked to exist.
        clock: Source of the current time (aware UTC).
    """

    def __init__(
        self,
        db: Database,
        *,
        lineage: LineageLinker | None = None,
        datasets: DatasetResolver | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.lineage = lineage
        self.datasets = datasets
        self.clock = clock

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        name: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run (``running``), with its first params and tags if given.

        Args:
            project: The group of runs it belongs to.
            name: A human name; ``run-<last 8 hex digits of its id>`` by default.
            params: Parameters to log at once.
            tags: Tags to set at once.

        Raises:
            InvalidError: A bad project, name, param or tag (nothing is recorded).
        """
        validate_name(project, field_name="project")
        encoded = validate_params(params or {})
        checked_tags = validate_tags(tags or {})
        now = self.clock()
        run_id = new_run_id(now)
        run_name = validate_run_name(name) if name is not None else f"run-{run_id[-8:]}"
        record = RunRecord(
            id=run_id,
            project=project,
            name=run_name,
            status=RunStatus.RUNNING.value,
            started_at=now,
            ended_at=None,
            tags=tags_to_json(checked_tags),
        )
        with self.db.transaction() as session:
            session.add(record)
            session.flush()
            for key, value in encoded.items():
                session.add(ParamRecord(run_id=run_id, key=key, value=value, logged_at=now))
            self._emit(session, record, "started", {"params": sorted(encoded)})
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> Run:
        """The run with this id, with everything logged to it.

        Raises:
            NotFoundError: No run has that id.
        """
        with self.db.transaction() as session:
            return runs_from_records(session, [self._load(session, run_id)])[0]

    def list_runs(
        self,
        *,
        project: str | None = None,
        status: RunStatus | None = None,
        params: Mapping[str, ParamValue] | None = None,
        dataset: str | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Run]:
        """Runs, newest first, matching every filter given.

        Args:
            project: Only runs of this project.
            status: Only runs in this status.
            params: Only runs with each of these params at exactly this value.
            dataset: Only runs that read this version (``name@vN``), or any version of this
                dataset (``name``).
            model: Only runs that produced this model version (``name@version``), or any
                version of this model (``name``).
            limit: Most runs returned (1 to 1000).
            offset: Runs skipped first (paging).

        Raises:
            InvalidError: ``limit`` or ``offset`` out of range, or a bad param filter.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidError(
                f"limit must be an int from 1 to {MAX_LIST}. Got {limit!r} instead.", field="limit"
            )
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidError(
                f"offset must be an int >= 0. Got {offset!r} instead.", field="offset"
            )
        query = select(RunRecord).order_by(RunRecord.started_at.desc(), RunRecord.id.desc())
        if project is not None:
            query = query.where(RunRecord.project == project)
        if status is not None:
            query = query.where(RunRecord.status == RunStatus(status).value)
        for key, value in validate_params(params or {}).items():
            query = query.where(
                exists()
                .where(ParamRecord.run_id == RunRecord.id)
                .where(ParamRecord.key == key)
                .where(ParamRecord.value == value)
            )
        if dataset is not None:
            matches = (
                RunDatasetRecord.ref == dataset
                if "@" in dataset
                else RunDatasetRecord.ref.startswith(f"{dataset}@v", autoescape=True)
            )
            query = query.where(exists().where(RunDatasetRecord.run_id == RunRecord.id, matches))
        if model is not None:
            name, _, version = model.partition("@")
            model_filter = exists().where(
                RunModelRecord.run_id == RunRecord.id, RunModelRecord.model_name == name
            )
            if version:
                model_filter = model_filter.where(RunModelRecord.version == version)
            query = query.where(model_filter)
        with self.db.transaction() as session:
            records = list(session.scalars(query.limit(limit).offset(offset)))
            return runs_from_records(session, records)

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End a running run as ``finished``, ``failed`` or ``killed``.

        Ending it again with the status it ended with is a no-op.

        Raises:
            NotFoundError: No such run.
            ConflictError: It already ended with another status, or ``status`` is ``running``.
        """
        target = RunStatus(status)
        with self._locked(run_id) as (session, record):
            # Read under the lock: every measurement accepted before it is older.
            now = self.clock()
            if check_end(record.id, RunStatus(record.status), target):
                record.status = target.value
                record.ended_at = now
                self._emit(session, record, target.value, {"ended_at": now.isoformat()})
        return self.get_run(run_id)

    # ------------------------------------------------------------------ params, metrics, tags

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        """Log parameters; each key takes one value for the life of the run.

        Raises:
            InvalidError: A bad key or value (nothing is logged).
            ConflictError: A key already has another value, or the run has ended and a key
                is new (nothing is logged).
        """
        encoded = validate_params(params)
        now = self.clock()
        with self._locked(run_id) as (session, record):
            logged = {
                p.key: p.value
                for p in session.scalars(
                    select(ParamRecord)
                    .where(ParamRecord.run_id == record.id)
                    .where(ParamRecord.key.in_(encoded))
                )
            }
            fresh = new_params(record.id, logged, encoded)
            if fresh:
                check_accepts(record.id, RunStatus(record.status), Logging.PARAMS)
            for key, value in fresh.items():
                session.add(ParamRecord(run_id=record.id, key=key, value=value, logged_at=now))

    def log_param(self, run_id: str, key: str, value: ParamValue) -> None:
        """Log one parameter (see :meth:`log_params`)."""
        self.log_params(run_id, {validate_key(key, kind="param"): value})

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        *,
        step: int = 0,
        timestamp: datetime | None = None,
    ) -> None:
        """Log one measurement of a metric (see :meth:`log_metrics`)."""
        self.log_metrics(run_id, [Metric(key, value, step, timestamp or self.clock())])

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Log measurements; a metric's latest value is the one at the highest step.

        Raises:
            InvalidError: A bad key, a value that is NaN or infinite, a negative step or a
                naive timestamp (nothing is logged).
            ConflictError: The run has ended.
        """
        checked = [validate_metric(m.key, m.value, m.step, m.timestamp) for m in metrics]
        with self._locked(run_id) as (session, record):
            check_accepts(record.id, RunStatus(record.status), Logging.METRICS)
            if checked:
                record_metrics(session, record.id, checked)

    def metric_history(self, run_id: str, key: str) -> builtins.list[Metric]:
        """Every value of one metric of a run, by step (empty if never logged).

        Raises:
            NotFoundError: No such run.
        """
        with self.db.transaction() as session:
            record = self._load(session, run_id)
            return metric_history(session, record.id, key)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags (replacing the values of keys already set); allowed in any status.

        Raises:
            InvalidError: A bad key or value (nothing is set).
        """
        checked = validate_tags(tags)
        with self._locked(run_id) as (_session, record):
            record.tags = tags_to_json({**json.loads(record.tags), **checked})

    # ------------------------------------------------------------------ inputs and outputs

    def log_dataset(self, run_id: str, ref: str) -> str:
        """Record that the run read a dataset version, and link it in the lineage.

        The reference is resolved now: ``orders@production`` or ``orders`` become the exact
        version the tag or head names at this moment, and that version is what the run
        keeps, however the tag moves later. Logging a version already recorded is a no-op
        (it re-records the lineage link, so a retry repairs one that failed).

        Args:
            run_id: The run.
            ref: ``name@vN``, ``name@<tag>``, ``name`` (the newest version) or
                ``name@<merkle root>``.

        Returns:
            The exact version, ``name@vN``.

        Raises:
            NotFoundError: No such run, dataset or version.
            InvalidError: A malformed reference, or one that is not exact without a resolver.
            ConflictError: The run has ended (and did not already record this version).
        """
        if not isinstance(ref, str) or not 1 <= len(ref) <= MAX_REF_LENGTH:
            raise InvalidError(
                f"dataset reference {ref!r} must be a string of 1 to {MAX_REF_LENGTH} characters",
                field="ref",
            )
        with self.db.transaction() as session:
            self._load(session, run_id)  # an unknown run is the first thing to report
        canonical = self.datasets.resolve(ref) if self.datasets is not None else ref
        name, number = parse_canonical(canonical)
        with self.db.transaction() as session:
            record = self._load(session, run_id)
            known = self._has_dataset(session, record.id, canonical)
            if not known:
                check_accepts(record.id, RunStatus(record.status), Logging.DATASETS)
        # Linked before the row is written: a link that fails leaves nothing recorded, and a
        # row never exists without its link.
        if self.lineage is not None:
            self.lineage.link(NodeRef.dataset_version(name, number), NodeRef.run(record.id))
        if known:
            return canonical
        now = self.clock()
        with self._locked(run_id) as (session, record):
            if self._has_dataset(session, record.id, canonical):
                return canonical
            check_accepts(record.id, RunStatus(record.status), Logging.DATASETS)
            session.add(
                RunDatasetRecord(run_id=record.id, ref=canonical, requested=ref, logged_at=now)
            )
            self._emit(session, record, "dataset_logged", {"dataset": canonical, "requested": ref})
        return canonical

    def log_model(self, run_id: str, model_name: str, version: str) -> None:
        """Record that the run produced a model version, and link it in the lineage.

        A model version has one producing run. A finished run may still be credited with a
        model (registering one after training ended is the usual way); a failed or killed
        run may not. Logging the same model again is a no-op.

        Raises:
            NotFoundError: No such run.
            InvalidError: A bad model name or version.
            ConflictError: Another run produced that version, or the run failed or was killed.
        """
        name, version = validate_model(model_name, version)
        with self.db.transaction() as session:
            record = self._load(session, run_id)
            producer = self._producer(session, name, version)
            self._check_model(record, producer, name, version)
        if self.lineage is not None:
            self.lineage.link(NodeRef.run(record.id), NodeRef.model_version(name, version))
        if producer == record.id:
            return
        now = self.clock()
        try:
            with self._locked(run_id) as (session, record):
                producer = self._producer(session, name, version)
                self._check_model(record, producer, name, version)
                if producer == record.id:
                    return
                session.add(
                    RunModelRecord(
                        run_id=record.id, model_name=name, version=version, logged_at=now
                    )
                )
                session.flush()
                self._emit(
                    session, record, "model_logged", {"model_name": name, "version": version}
                )
        except IntegrityError:
            # Another run recorded the same version between the check and the insert.
            raise ConflictError(
                f"model {name}@{version} is already recorded as produced by another run",
                model=f"{name}@{version}",
            ) from None

    # ------------------------------------------------------------------ reconstruction port

    def datasets_of_run(self, run_id: str) -> builtins.list[str]:
        """The exact versions (``name@vN``) the run read, in the order logged.

        Raises:
            NotFoundError: No such run.
        """
        with self.db.transaction() as session:
            record = self._load(session, run_id)
            return list(
                session.scalars(
                    select(RunDatasetRecord.ref)
                    .where(RunDatasetRecord.run_id == record.id)
                    .order_by(RunDatasetRecord.id)
                )
            )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _load(session: Session, run_id: str, *, lock: bool = False) -> RunRecord:
        query = select(RunRecord).where(RunRecord.id == run_id)
        if lock:
            query = query.with_for_update()
        record = session.scalars(query).first()
        if record is None:
            raise NotFoundError(f"no run with id {run_id!r}")
        return record

    @contextmanager
    def _locked(self, run_id: str) -> Iterator[tuple[Session, RunRecord]]:
        with self.db.transaction(write=True) as session:
            yield session, self._load(session, run_id, lock=True)

    @staticmethod
    def _has_dataset(session: Session, run_id: str, ref: str) -> bool:
        found = session.scalars(
            select(RunDatasetRecord.id)
            .where(RunDatasetRecord.run_id == run_id)
            .where(RunDatasetRecord.ref == ref)
        ).first()
        return found is not None

    @staticmethod
    def _producer(session: Session, name: str, version: str) -> str | None:
        return session.scalars(
            select(RunModelRecord.run_id)
            .where(RunModelRecord.model_name == name)
            .where(RunModelRecord.version == version)
        ).first()

    @staticmethod
    def _check_model(record: RunRecord, producer: str | None, name: str, version: str) -> None:
        if producer is not None and producer != record.id:
            raise ConflictError(
                f"model {name}@{version} was produced by run {producer}, not run {record.id}",
                model=f"{name}@{version}",
                run_id=producer,
            )
        if producer is None:
            check_accepts(record.id, RunStatus(record.status), Logging.MODELS)

    @staticmethod
    def _emit(session: Session, record: RunRecord, event: str, data: dict[str, Any]) -> None:
        record_event(
            session,
            Event(
                type=f"experiments.run.{event}",
                source=EVENT_SOURCE,
                subject=record.id,
                data={
                    "run_id": record.id,
                    "project": record.project,
                    "name": record.name,
                    "status": record.status,
                    **data,
                },
            ),
        )


__all__ = ["EVENT_SOURCE", "MAX_LIST", "MAX_REF_LENGTH", "RunTracker", "new_run_id"]
