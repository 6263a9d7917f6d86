"""Experiment outcomes reach the registry through the bus: in-process and Redis Streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.events import Event, EventBus, InMemoryEventBus
from synapsenet.core.outbox import Inbox, OutboxRecord, OutboxRelay
from synapsenet.core.redis_bus import RedisStreamsEventBus
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.registry import ModelRegistry, ModelStage
from synapsenet.services.registry.consumer import CONSUMER_GROUP, ExperimentOutcomeConsumer
from tests.fixtures.redis import wait_until
from tests.services.abtesting.conftest import canary_spec
from tests.services.registry.conftest import logistic_regression


@dataclass
class Wiring:
    registry: ModelRegistry
    engine: ABTestingEngine
    relay: OutboxRelay
    consumer: ExperimentOutcomeConsumer
    inbox: Inbox


def wire(db: Database, store: LocalObjectStore, bus: EventBus) -> Wiring:
    """A registry listening on ``bus``, and an A/B engine that knows nothing of it."""
    registry = ModelRegistry(db, store)
    inbox = Inbox(db)
    consumer = ExperimentOutcomeConsumer(registry, bus, inbox)
    consumer.start()
    consumer.start()  # idempotent: still one subscription
    model = logistic_regression()
    registry.log_model("fraud", model)
    registry.log_model("fraud", model)
    registry.promote("fraud", "1", reason="initial")
    return Wiring(
        registry, ABTestingEngine(db, route_ttl=0.0), OutboxRelay(db, bus), consumer, inbox
    )


def stages(registry: ModelRegistry) -> dict[str, ModelStage]:
    return {v.version: v.stage for v in registry.list_versions("fraud")}


def outbox(db: Database, event_type: str) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(OutboxRecord.envelope)
                .where(OutboxRecord.type == event_type)
                .order_by(OutboxRecord.id)
            )
        )


@pytest.fixture
def memory_bus() -> Iterator[InMemoryEventBus]:
    bus = InMemoryEventBus(max_attempts=1)
    yield bus
    bus.close()


def test_a_winning_treatment_is_promoted_and_a_rolled_back_one_demoted(
    db: Database, store: LocalObjectStore, memory_bus: InMemoryEventBus
) -> None:
    wiring = wire(db, store, memory_bus)
    won = wiring.engine.start(wiring.engine.create(canary_spec("won")).id)
    wiring.engine.complete(won.id, winner="canary")
    assert stages(wiring.registry)["2"] is ModelStage.NONE  # nothing until the bus delivers
    wiring.relay.relay_once()
    assert stages(wiring.registry) == {"1": ModelStage.ARCHIVED, "2": ModelStage.PRODUCTION}
    promoted = json.loads(outbox(db, "registry.model_version.promoted")[-1])["data"]
    assert (promoted["version"], promoted["archived_versions"]) == ("2", ["1"])
    assert promoted["reason"] == "won experiment won"

    rolled = wiring.engine.start(wiring.engine.create(canary_spec("rolled")).id)
    wiring.engine.rollback(rolled.id, reason="error rate up", evidence={})
    wiring.relay.relay_once()
    assert stages(wiring.registry) == {"1": ModelStage.ARCHIVED, "2": ModelStage.ARCHIVED}
    demoted = json.loads(outbox(db, "registry.model_version.demoted")[-1])["data"]
    assert demoted["reason"] == "rolled back in experiment rolled: error rate up"
    assert memory_bus.dead_letters == []


def test_a_redelivered_event_changes_nothing(
    db: Database, store: LocalObjectStore, memory_bus: InMemoryEventBus
) -> None:
    wiring = wire(db, store, memory_bus)
    rolled = wiring.engine.start(wiring.engine.create(canary_spec("rolled")).id)
    wiring.engine.rollback(rolled.id, reason="guardrail", evidence={})
    wiring.relay.relay_once()
    event = Event.from_json(outbox(db, "abtesting.experiment.rolled_back")[-1])
    assert wiring.inbox.seen(CONSUMER_GROUP, event.id)
    # An operator promotes the version again by hand; a late duplicate must not undo it.
    wiring.registry.promote("fraud", "2", reason="fixed")
    memory_bus.publish(event)
    assert stages(wiring.registry)["2"] is ModelStage.PRODUCTION
    assert len(outbox(db, "registry.model_version.demoted")) == 1


def test_outcomes_naming_unknown_models_or_no_winner_are_skipped(
    db: Database, store: LocalObjectStore, memory_bus: InMemoryEventBus
) -> None:
    wiring = wire(db, store, memory_bus)
    before = stages(wiring.registry)
    engine = wiring.engine
    no_winner = engine.start(engine.create(canary_spec("no-winner")).id)
    engine.complete(no_winner.id)
    stopped = engine.start(engine.create(canary_spec("stopped")).id)
    engine.stop(stopped.id, reason="enough")
    for data in (
        {"model_name": "ghost", "winner_model_version": "2"},
        {"model_name": "fraud", "winner_model_version": "v9"},
        {"model_name": "fraud", "winner_model_version": "latest"},
        {"winner_model_version": "2"},
    ):
        memory_bus.publish(Event(type="abtesting.experiment.completed", source="/t", data=data))
    wiring.relay.relay_once()
    assert stages(wiring.registry) == before
    assert memory_bus.dead_letters == []
    wiring.consumer.stop()
    wiring.consumer.stop()
    memory_bus.publish(
        Event(
            type="abtesting.experiment.completed",
            source="/t",
            data={"model_name": "fraud", "winner_model_version": "2"},
        )
    )
    assert stages(wiring.registry) == before


def test_outcomes_arrive_through_redis_streams(
    db: Database, store: LocalObjectStore, redis_url: str, redis_stream: str
) -> None:
    bus = RedisStreamsEventBus(redis_url, stream=redis_stream, block_ms=50)
    try:
        wiring = wire(db, store, bus)
        won = wiring.engine.start(wiring.engine.create(canary_spec("won")).id)
        wiring.engine.complete(won.id, winner="canary")
        assert wiring.relay.relay_once() > 0
        wait_until(
            lambda: stages(wiring.registry)["2"] is ModelStage.PRODUCTION,
            timeout=20,
            message="the registry to promote the winner",
        )
        rolled = wiring.engine.start(wiring.engine.create(canary_spec("rolled")).id)
        wiring.engine.rollback(rolled.id, reason="latency", evidence={})
        wiring.relay.relay_once()
        wait_until(
            lambda: stages(wiring.registry)["2"] is ModelStage.ARCHIVED,
            timeout=20,
            message="the registry to demote the treatment",
        )
        assert stages(wiring.registry)["1"] is ModelStage.ARCHIVED
        wiring.consumer.stop()
    finally:
        bus.close()
