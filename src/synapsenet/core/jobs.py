"""Background jobs: long work (batch explanations, replays) with status and progress.

A job's state lives in the database, so the API can report it from any process; the work runs
in an in-process thread pool by default. A job that was running when its process died is
found ``RUNNING`` with a stale heartbeat and marked ``FAILED`` by :meth:`JobRunner.recover`,
never left hanging.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from synapsenet.core.db import Base, Database, UTCDateTime, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.errors import InvalidError, NotFoundError

logger = logging.getLogger(__name__)


class JobStatus(StrEnum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """Whether the job has ended."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobRecord(Base):
    """One job: what it is, where it is, and what it produced."""

    __tablename__ = "core_jobs"
    __table_args__ = (Index("ix_core_jobs_kind_status", "kind", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the API shows it.

    Attributes:
        id: Job id.
        kind: What kind of work (e.g. ``explainability.batch``).
        status: Queued, running, succeeded or failed.
        progress: Fraction done, in [0, 1].
        message: What it is doing now, or why it failed.
        parameters: The job's JSON parameters.
        result: The JSON result, once succeeded.
        error: The error, once failed.
        created_at: When it was submitted.
        updated_at: Its last heartbeat or state change.
    """

    id: str
    kind: str
    status: JobStatus
    progress: float
    message: str
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: JobRecord) -> Job:
        """Build from the stored row."""
        return cls(
            id=record.id,
            kind=record.kind,
            status=JobStatus(record.status),
            progress=record.progress,
            message=record.message,
            parameters=json.loads(record.parameters),
            result=json.loads(record.result) if record.result else None,
            error=record.error,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


ProgressReporter = Callable[[float, str], None]
"""Called by a job's work with (fraction done, what it is doing)."""

JobWork = Callable[[ProgressReporter], dict[str, Any]]
"""A job's work: reports progress and returns a JSON-ready result."""


class JobRunner:
    """Runs jobs in a thread pool and keeps their state in the database.

    Args:
        db: The platform database.
        workers: Threads running jobs at once.
        source: CloudEvents source of the job events.
    """

    def __init__(self, db: Database, *, workers: int = 2, source: str = "/jobs") -> None:
        if workers < 1:
            raise InvalidError(
                f"The 'workers' parameter of JobRunner must be an int >= 1. Got {workers} instead.",
                field="workers",
            )
        self.db = db
        self.source = source
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, parameters: dict[str, Any], work: JobWork) -> Job:
        """Queue a job and return it at once (``QUEUED``)."""
        now = utcnow()
        record = JobRecord(
            id=secrets.token_hex(12),
            kind=kind,
            status=JobStatus.QUEUED.value,
            progress=0.0,
            message="queued",
            parameters=json.dumps(parameters, sort_keys=True, default=str),
            created_at=now,
            updated_at=now,
        )
        with self.db.transaction() as session:
            session.add(record)
        job = Job.from_record(record)
        future = self._pool.submit(self._run, job.id, work)
        with self._lock:
            self._futures[job.id] = future
        return job

    def get(self, job_id: str) -> Job:
        """The job's current state.

        Raises:
            NotFoundError: No job has that id.
        """
        with self.db.transaction() as session:
            record = session.get(JobRecord, job_id)
            if record is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            return Job.from_record(record)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until a job this runner started has ended (tests, CLI), then return it."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)
        return self.get(job_id)

    def recover(self, *, stale_after: timedelta = timedelta(minutes=10)) -> int:
        """Fail jobs whose process died: running or queued without a heartbeat for a while.

        Returns:
            How many jobs were marked failed.
        """
        cutoff = utcnow() - stale_after
        with self.db.transaction(write=True) as session:
            stale = session.scalars(
                select(JobRecord.id)
                .where(JobRecord.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                .where(JobRecord.updated_at < cutoff)
            ).all()
            session.execute(
                update(JobRecord)
                .where(JobRecord.id.in_(stale))
                .values(
                    status=JobStatus.FAILED.value,
                    error="the process running this job stopped; submit it again",
                    message="abandoned",
                    updated_at=utcnow(),
                )
            )
            return len(stale)

    def list(self, *, kind: str | None = None, limit: int = 50) -> list[Job]:
        """Recent jobs, newest first."""
        query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)
        if kind is not None:
            query = query.where(JobRecord.kind == kind)
        with self.db.transaction() as session:
            return [Job.from_record(r) for r in session.scalars(query)]

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting jobs; with ``wait``, let running ones finish."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _update(self, job_id: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id)
                .values(updated_at=utcnow(), **values)
            )

    def _run(self, job_id: str, work: JobWork) -> None:
        self._update(job_id, status=JobStatus.RUNNING.value, message="started")

        def report(progress: float, message: str) -> None:
            self._update(job_id, progress=min(max(progress, 0.0), 1.0), message=message)

        try:
            result = work(report)
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            return
        self._finish(job_id, JobStatus.SUCCEEDED, result=result)

    def _finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.db.transaction() as session:
            record = session.get(JobRecord, job_id)
            assert record is not None
            record.status = status.value
            record.updated_at = utcnow()
            if status is JobStatus.SUCCEEDED:
                record.progress = 1.0
                record.message = "done"
                record.result = json.dumps(result or {}, sort_keys=True, default=str)
            else:
                record.message = "failed"
                record.error = error
            outcome = "completed" if status is JobStatus.SUCCEEDED else "failed"
            record_event(
                session,
                Event(
                    type=f"{record.kind}.{outcome}",
                    source=self.source,
                    subject=job_id,
                    data={"job_id": job_id, "kind": record.kind, "status": status.value},
                ),
            )
