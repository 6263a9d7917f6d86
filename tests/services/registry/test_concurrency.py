"""Concurrent promotions leave exactly one production version (threads, and processes)."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.registry import ModelRegistry, ModelStage
from synapsenet.services.registry.store import ModelVersionRecord
from tests.fixtures.databases import empty_tables
from tests.services.registry.conftest import logistic_regression
from tests.services.registry.promote_proc import promote_many


def promotions(db: Database) -> list[dict[str, object]]:
    with db.transaction() as session:
        envelopes = session.scalars(
            select(OutboxRecord.envelope)
            .where(OutboxRecord.type == "registry.model_version.promoted")
            .order_by(OutboxRecord.id)
        )
        return [json.loads(e)["data"] for e in envelopes]


def assert_one_production_and_a_serial_history(registry: ModelRegistry, db: Database) -> None:
    production = [v for v in registry.list_versions("churn") if v.stage is ModelStage.PRODUCTION]
    assert len(production) == 1
    history = promotions(db)
    # Serialized promotions form a chain: each archives exactly the one promoted before it.
    previous: str | None = None
    for event in history:
        assert event["archived_versions"] == ([] if previous is None else [previous])
        previous = str(event["version"])
    assert previous == production[0].version


def test_concurrent_promotions_in_threads_leave_one_production_version(
    registry: ModelRegistry, db: Database
) -> None:
    model = logistic_regression()
    versions = [registry.log_model("churn", model).version for _ in range(6)]
    workers = 6
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        barrier.wait()
        try:
            for step in range(4):
                version = versions[(offset + step) % len(versions)]
                registry.promote("churn", version, reason=f"worker {offset}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_one_production_and_a_serial_history(registry, db)
    assert len(promotions(db)) >= len(versions)


def test_concurrent_promotions_in_processes_leave_one_production_version(
    postgres_database: Database, tmp_path: Path
) -> None:
    db = postgres_database
    empty_tables(db)
    try:
        store_root = tmp_path / "objects"
        registry = ModelRegistry(db, LocalObjectStore(store_root))
        model = logistic_regression()
        versions = [registry.log_model("churn", model).version for _ in range(4)]
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=promote_many,
                args=(db.url, str(store_root), "churn", versions[i:] + versions[:i], 3),
            )
            for i in range(4)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=180)
        assert [p.exitcode for p in processes] == [0, 0, 0, 0]
        assert_one_production_and_a_serial_history(registry, db)
    finally:
        empty_tables(db)


def test_the_database_itself_refuses_a_second_production_version(
    registry: ModelRegistry, db: Database
) -> None:
    model = logistic_regression()
    registry.log_model("churn", model)
    registry.log_model("churn", model)
    registry.promote("churn", "1", reason="ship")
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.execute(
            update(ModelVersionRecord)
            .where(ModelVersionRecord.model_name == "churn", ModelVersionRecord.number == 2)
            .values(stage=ModelStage.PRODUCTION.value)
        )
    # Other models and other stages are not constrained.
    registry.log_model("other", model)
    registry.promote("other", "1", reason="ship")
    registry.transition("churn", "2", ModelStage.STAGING)
    assert registry.production_version("other").version == "1"


def test_concurrent_first_registrations_number_versions_without_gaps(
    registry: ModelRegistry,
) -> None:
    model = logistic_regression()
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            registry.log_model("fresh", model)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert [v.version for v in registry.list_versions("fresh")] == ["1", "2", "3", "4", "5"]
    assert registry.get_model("fresh").latest_version == 5
