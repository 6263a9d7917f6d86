from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from synapsenet.core.db import Database, utcnow
from synapsenet.core.jobs import JobRecord, JobRunner, JobStatus, ProgressReporter
from synapsenet.core.outbox import OutboxRecord
from synapsenet.errors import InvalidError, NotFoundError


@pytest.fixture
def runner(db: Database) -> Iterator[JobRunner]:
    jobs = JobRunner(db, workers=2)
    yield jobs
    jobs.shutdown()


def test_a_job_reports_progress_and_its_result(runner: JobRunner, db: Database) -> None:
    halfway = threading.Event()
    proceed = threading.Event()

    def work(report: ProgressReporter) -> dict[str, object]:
        report(0.5, "halfway")
        halfway.set()
        proceed.wait(10)
        return {"rows": 42}

    job = runner.submit("test.batch", {"rows": 42}, work)
    assert job.status is JobStatus.QUEUED
    assert halfway.wait(10)
    running = runner.get(job.id)
    assert (running.status, running.progress, running.message) == (
        JobStatus.RUNNING,
        0.5,
        "halfway",
    )
    proceed.set()
    done = runner.wait(job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"rows": 42}
    assert done.progress == 1.0
    assert done.parameters == {"rows": 42}
    with db.transaction() as session:
        types = list(session.scalars(select(OutboxRecord.type)))
    assert "test.batch.completed" in types


def test_a_failing_job_records_its_error(runner: JobRunner, db: Database) -> None:
    def work(report: ProgressReporter) -> dict[str, object]:
        raise ValueError("bad input row 7")

    job = runner.wait(runner.submit("test.batch", {}, work).id, timeout=10)
    assert job.status is JobStatus.FAILED
    assert job.error == "ValueError: bad input row 7"
    assert job.status.is_final
    with db.transaction() as session:
        assert "test.batch.failed" in list(session.scalars(select(OutboxRecord.type)))


def test_abandoned_jobs_are_recovered_as_failed(runner: JobRunner, db: Database) -> None:
    def work(report: ProgressReporter) -> dict[str, object]:
        return {}

    job = runner.wait(runner.submit("test.batch", {}, work).id, timeout=10)
    with db.transaction() as session:
        session.execute(
            update(JobRecord)
            .where(JobRecord.id == job.id)
            .values(status="running", updated_at=utcnow() - timedelta(hours=1))
        )
    assert runner.recover(stale_after=timedelta(minutes=10)) == 1
    recovered = runner.get(job.id)
    assert recovered.status is JobStatus.FAILED
    assert "stopped" in (recovered.error or "")
    assert runner.recover() == 0


def test_listing_and_lookup(runner: JobRunner) -> None:
    def work(report: ProgressReporter) -> dict[str, object]:
        return {}

    first = runner.wait(runner.submit("a.kind", {}, work).id, timeout=10)
    runner.wait(runner.submit("b.kind", {}, work).id, timeout=10)
    assert [j.id for j in runner.list(kind="a.kind")] == [first.id]
    assert len(runner.list()) == 2
    with pytest.raises(NotFoundError):
        runner.get("missing")
    with pytest.raises(InvalidError, match="workers"):
        JobRunner(runner.db, workers=0)
