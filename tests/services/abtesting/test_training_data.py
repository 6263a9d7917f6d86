"""Deprecated training data reaches the experiments serving models trained on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.events import Event, InMemoryEventBus
from synapsenet.core.outbox import Inbox, OutboxRecord, OutboxRelay
from synapsenet.core.redis_bus import RedisStreamsEventBus
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import TrafficAllocationStrategy
from synapsenet.services.abtesting.training_data import (
    CONSUMER_GROUP,
    DEPRECATED_EVENT,
    TrainingDataWatcher,
    affected_model_versions,
)
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeRef
from synapsenet.services.dataversion.schemas import ImpactPublic
from tests.fixtures.redis import wait_until
from tests.services.abtesting.conftest import canary_spec, ramp_steps


def test_impact_reports_name_model_versions_as_model_name_at_version() -> None:
    impact = {
        "model_versions": ["model:fraud@2", "model:a@b@3", "dataset:x@v1", "model:@1", "model:x@"]
    }
    assert affected_model_versions(impact) == {("fraud", "2"), ("a@b", "3")}
    assert affected_model_versions({}) == set()


def deprecate_training_data(db: Database, tmp_path: Path, model_version: str) -> None:
    """Commit a dataset, trace it to a run and a model version, and deprecate it (as the API)."""
    data = DatasetVersioningEngine(db, LocalObjectStore(tmp_path / "objects"))
    data.create_dataset("transactions", format="csv")
    source = tmp_path / "transactions.csv"
    source.write_text("amount,label\n1.5,0\n2.5,1\n")
    version = data.commit("transactions", source, message="first")
    lineage = LineageGraph(db)
    node = NodeRef.dataset_version(version.dataset, version.number)
    lineage.link(node, NodeRef.run("run-1"))
    lineage.link(NodeRef.run("run-1"), NodeRef.model_version("fraud", model_version))
    impact = ImpactPublic.of(lineage.impact(node)).to_event_data()
    data.deprecate(version.ref, reason="labels were shifted", impact=impact)


def ramped(engine: ABTestingEngine, name: str = "fraud-canary") -> str:
    spec = canary_spec(
        name, canary_weight="0.5", strategy=TrafficAllocationStrategy.RAMPING, ramp=ramp_steps()
    )
    return engine.start(engine.create(spec).id).id


def events_of(db: Database, event_type: str) -> list[dict[str, object]]:
    with db.transaction() as session:
        rows = session.scalars(select(OutboxRecord).where(OutboxRecord.type == event_type))
        return [Event.from_json(row.envelope).data for row in rows]


@pytest.fixture
def bus() -> InMemoryEventBus:
    return InMemoryEventBus()


@pytest.fixture
def watcher(db: Database, bus: InMemoryEventBus) -> Iterator[TrainingDataWatcher]:
    watching = TrainingDataWatcher(ABTestingEngine(db, route_ttl=0.0), bus, Inbox(db))
    watching.start()
    watching.start()  # idempotent
    yield watching
    watching.stop()
    watching.stop()


def deprecations_logged(engine: ABTestingEngine, experiment_id: str) -> list[dict[str, object]]:
    return [
        d.evidence
        for d in engine.decisions(experiment_id)
        if (d.kind, d.outcome) == ("lifecycle", "training_data_deprecated")
    ]


def test_a_deprecated_treatment_model_holds_the_ramp_and_is_logged(
    db: Database, tmp_path: Path, bus: InMemoryEventBus, watcher: TrainingDataWatcher
) -> None:
    engine = watcher.engine
    canary = ramped(engine)
    other = engine.create(canary_spec("churn-test")).id  # serves v1/v2 of "fraud" too
    deprecate_training_data(db, tmp_path, "v2")  # the canary arm's version
    relay = OutboxRelay(db, bus)
    relay.drain()
    relay.drain()  # a second relay pass delivers nothing new

    experiment = engine.get(canary)
    assert experiment.ramp_held
    decisions = engine.decisions(canary)
    assert [(d.kind, d.outcome) for d in decisions[:2]] == [
        ("ramp", "held"),
        ("lifecycle", "training_data_deprecated"),
    ]
    logged = decisions[1]
    assert "transactions@v1 was deprecated: labels were shifted" in logged.reason
    assert logged.evidence == {
        "dataset_version": "transactions@v1",
        "variants": ["canary"],
        "ramp_held": True,
    }
    # A draft on the same model is reported too; it is no ramp, so nothing is held.
    assert deprecations_logged(engine, other) == [
        {"dataset_version": "transactions@v1", "variants": ["canary"], "ramp_held": False}
    ]
    announced = events_of(db, "abtesting.experiment.training_data_deprecated")
    assert sorted(str(e["experiment_id"]) for e in announced) == sorted([canary, other])


def test_a_deprecated_control_model_is_reported_without_holding_the_ramp(
    db: Database, tmp_path: Path, bus: InMemoryEventBus, watcher: TrainingDataWatcher
) -> None:
    engine = watcher.engine
    canary = ramped(engine)
    deprecate_training_data(db, tmp_path, "v1")  # the control arm's version
    OutboxRelay(db, bus).drain()
    assert not engine.get(canary).ramp_held
    assert deprecations_logged(engine, canary) == [
        {"dataset_version": "transactions@v1", "variants": ["control"], "ramp_held": False}
    ]


def test_models_no_experiment_serves_change_nothing(
    db: Database, tmp_path: Path, bus: InMemoryEventBus, watcher: TrainingDataWatcher
) -> None:
    engine = watcher.engine
    canary = ramped(engine)
    deprecate_training_data(db, tmp_path, "v9")
    OutboxRelay(db, bus).drain()
    assert deprecations_logged(engine, canary) == []
    assert not engine.get(canary).ramp_held
    assert events_of(db, "abtesting.experiment.training_data_deprecated") == []


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    name = f"synapsenet-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name, f"{name}:dead")
    client.close()


def test_the_watcher_works_the_same_over_redis_streams(
    db: Database, tmp_path: Path, redis_url: str, stream: str
) -> None:
    redis_bus = RedisStreamsEventBus(redis_url, stream=stream, start="earliest")
    watching = TrainingDataWatcher(ABTestingEngine(db, route_ttl=0.0), redis_bus, Inbox(db))
    try:
        watching.start()
        canary = ramped(watching.engine)
        deprecate_training_data(db, tmp_path, "v2")
        OutboxRelay(db, redis_bus).drain()
        wait_until(lambda: watching.engine.get(canary).ramp_held, timeout=20)
        assert len(deprecations_logged(watching.engine, canary)) == 1
    finally:
        watching.stop()
        redis_bus.close()


def test_a_deprecation_that_reaches_no_model_changes_nothing(
    db: Database, watcher: TrainingDataWatcher
) -> None:
    canary = ramped(watcher.engine)
    event = Event(
        type=DEPRECATED_EVENT,
        source="/dataversion",
        data={"dataset": "transactions", "version": 1, "reason": "", "impact": {}},
    )
    Inbox(db).handler(CONSUMER_GROUP, watcher.consume)(event)
    assert deprecations_logged(watcher.engine, canary) == []
