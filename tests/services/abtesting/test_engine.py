from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import OutboxRecord
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    ExperimentSpec,
    ExperimentStatus,
    Observation,
    TrafficAllocationStrategy,
    Variant,
)
from synapsenet.services.abtesting.store import load_exposures, load_metric_aggregates
from tests.services.abtesting.conftest import canary_spec, ramp_steps


def event_types(db: Database) -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(OutboxRecord.type).order_by(OutboxRecord.id)))


def obs(
    event_id: str,
    variant: str,
    metric: str | None = None,
    value: float | None = None,
    covariate: float | None = None,
    time: datetime | None = None,
) -> Observation:
    return Observation(
        event_id=event_id,
        unit_id=f"u-{event_id}",
        variant=variant,
        time=time or utcnow(),
        metric=metric,
        value=value,
        covariate=covariate,
    )


def test_create_stores_a_draft_with_its_spec(engine: ABTestingEngine) -> None:
    created = engine.create(canary_spec())
    assert created.status is ExperimentStatus.DRAFT
    fetched = engine.get(created.id)
    assert fetched == created
    assert engine.get("fraud-canary").id == created.id
    assert fetched.spec == canary_spec()
    assert fetched.allocation == (Decimal("0.9"), Decimal("0.1"))
    assert fetched.salt == created.id


def test_names_are_unique(engine: ABTestingEngine) -> None:
    engine.create(canary_spec())
    with pytest.raises(ConflictError, match="exists already"):
        engine.create(canary_spec())


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ((Variant("a", "v1", Decimal("0.5"), True), Variant("b", "v2", Decimal("0.4"))), "sum"),
        ((Variant("a", "v1", Decimal("0.5")), Variant("b", "v2", Decimal("0.5"))), "control"),
        ((Variant("a", "v1", Decimal(1), True),), "at least 2"),
        ((Variant("a", "v1", Decimal("0.5"), True), Variant("a", "v2", Decimal("0.5"))), "unique"),
    ],
)
def test_bad_variants_are_refused_and_nothing_is_stored(
    engine: ABTestingEngine, variants: tuple[Variant, ...], message: str
) -> None:
    spec = ExperimentSpec(name="bad", model_name="m", variants=variants)
    with pytest.raises(InvalidError, match=message) as info:
        engine.create(spec)
    assert info.value.field == "variants"
    assert engine.list() == []


def test_ramping_needs_steps_and_others_refuse_them(engine: ABTestingEngine) -> None:
    with pytest.raises(InvalidError, match="needs ramp steps"):
        engine.create(canary_spec(strategy=TrafficAllocationStrategy.RAMPING))
    with pytest.raises(InvalidError, match="only for the ramping strategy"):
        engine.create(canary_spec(ramp=ramp_steps()))
    with pytest.raises(InvalidError, match="needs bandit settings"):
        engine.create(canary_spec(strategy=TrafficAllocationStrategy.UCB1))


def test_lifecycle_transitions_emit_events(engine: ABTestingEngine, db: Database) -> None:
    experiment = engine.create(canary_spec())
    engine.start(experiment.id)
    engine.pause(experiment.id)
    engine.resume(experiment.id)
    completed = engine.complete(experiment.id, winner="canary")
    assert completed.status is ExperimentStatus.COMPLETED
    assert completed.winner == "canary"
    assert completed.ended_at is not None
    assert event_types(db) == [
        "abtesting.experiment.created",
        "abtesting.experiment.started",
        "abtesting.experiment.paused",
        "abtesting.experiment.resumed",
        "abtesting.experiment.completed",
    ]


@pytest.mark.parametrize(
    ("steps", "illegal"),
    [
        ((), "pause"),
        ((), "resume"),
        (("start",), "resume"),
        (("start", "stop"), "start"),
        (("start", "complete"), "pause"),
    ],
)
def test_illegal_transitions_are_conflicts(
    engine: ABTestingEngine, steps: tuple[str, ...], illegal: str
) -> None:
    experiment = engine.create(canary_spec())
    for step in steps:
        getattr(engine, step)(experiment.id)
    before = engine.get(experiment.id)
    with pytest.raises(ConflictError, match="cannot move experiment"):
        getattr(engine, illegal)(experiment.id)
    assert engine.get(experiment.id) == before


def test_parallel_transitions_let_exactly_one_win(engine: ABTestingEngine, db: Database) -> None:
    experiment = engine.create(canary_spec())
    engine.start(experiment.id)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def stop() -> None:
        barrier.wait()
        try:
            engine.stop(experiment.id)
        except ConflictError:
            result = "conflict"
        else:
            result = "stopped"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=stop) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["stopped"]
    assert event_types(db).count("abtesting.experiment.stopped") == 1


def test_unknown_experiment_is_not_found(engine: ABTestingEngine) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        engine.get("nope")
    with pytest.raises(NotFoundError):
        engine.start("nope")


def test_assignment_is_sticky_and_matches_weights(engine: ABTestingEngine) -> None:
    experiment = engine.create(canary_spec(canary_weight="0.2"))
    engine.start(experiment.id)
    ids = [f"user-{i}" for i in range(20_000)]
    first = [engine.assign(experiment.id, u).variant for u in ids[:500]]
    again = [engine.assign(experiment.id, u).variant for u in ids[:500]]
    assert first == again
    batch = engine.assign_batch(experiment.id, ids)
    assert batch[:500] == first
    share = batch.count("canary") / len(batch)
    assert share == pytest.approx(0.2, abs=0.015)
    one = engine.assign(experiment.id, "user-1")
    assert one.model_version == {"control": "v1", "canary": "v2"}[one.variant]
    assert one.in_experiment


def test_units_get_the_control_unless_running(engine: ABTestingEngine) -> None:
    experiment = engine.create(canary_spec(canary_weight="0.5"))
    ids = [f"u{i}" for i in range(300)]
    assert set(engine.assign_batch(experiment.id, ids)) == {"control"}
    assert not engine.assign(experiment.id, "u1").in_experiment
    engine.start(experiment.id)
    assert set(engine.assign_batch(experiment.id, ids)) == {"control", "canary"}
    engine.pause(experiment.id)
    assert set(engine.assign_batch(experiment.id, ids)) == {"control"}


def test_ramp_allocation_grows_and_keeps_canary_units(engine: ABTestingEngine) -> None:
    spec = canary_spec(
        canary_weight="0.5", strategy=TrafficAllocationStrategy.RAMPING, ramp=ramp_steps()
    )
    experiment = engine.start(engine.create(spec).id)
    assert experiment.treatment_share == Decimal("0.05")
    assert experiment.allocation == (Decimal("0.95"), Decimal("0.05"))
    ids = np.arange(50_000)
    before = engine.assign_batch(experiment.id, ids)
    weights = (Decimal("0.8"), Decimal("0.2"))
    engine.set_allocation(
        experiment.id,
        weights,
        kind="ramp",
        reason="manual",
        evidence={},
        ramp_step=1,
        treatment_share=Decimal("0.2"),
    )
    after = engine.assign_batch(experiment.id, ids)
    kept = [b == "canary" and a == "canary" for b, a in zip(before, after, strict=True)]
    assert sum(kept) == before.count("canary")
    assert after.count("canary") / len(after) == pytest.approx(0.2, abs=0.01)
    assert engine.get(experiment.id).ramp_step == 1


def test_rollback_sends_everyone_to_control_and_logs_evidence(
    engine: ABTestingEngine, db: Database
) -> None:
    experiment = engine.start(engine.create(canary_spec(canary_weight="0.5")).id)
    rolled = engine.rollback(experiment.id, reason="error rate up", evidence={"p": 0.001})
    assert rolled.status is ExperimentStatus.ROLLED_BACK
    assert rolled.allocation == (Decimal(1), Decimal(0))
    assert set(engine.assign_batch(experiment.id, [f"u{i}" for i in range(200)])) == {"control"}
    decision = engine.decisions(experiment.id)[0]
    assert (decision.kind, decision.outcome) == ("rollback", "rolled_back")
    assert decision.evidence == {"p": 0.001}
    assert event_types(db)[-1] == "abtesting.experiment.rolled_back"


def test_outcome_events_name_the_model_versions_a_registry_acts_on(
    engine: ABTestingEngine, db: Database
) -> None:
    rolled = engine.start(engine.create(canary_spec("rolled")).id)
    engine.rollback(rolled.id, reason="guardrail", evidence={})
    won = engine.start(engine.create(canary_spec("won")).id)
    engine.complete(won.id, winner="canary")
    with db.transaction() as session:
        envelopes = {
            kind: Event.from_json(envelope).data
            for kind, envelope in session.execute(
                select(OutboxRecord.type, OutboxRecord.envelope).where(
                    OutboxRecord.type.in_(
                        ["abtesting.experiment.rolled_back", "abtesting.experiment.completed"]
                    )
                )
            )
        }
    rolled_back = envelopes["abtesting.experiment.rolled_back"]
    assert rolled_back["model_name"] == "fraud"
    assert rolled_back["treatment_model_versions"] == ["v2"]
    completed = envelopes["abtesting.experiment.completed"]
    assert (completed["model_name"], completed["winner_model_version"]) == ("fraud", "v2")


def test_registry_is_told_of_promotion_and_rollback(db: Database) -> None:
    calls: list[tuple[str, str, str]] = []

    class Registry:
        def promote(self, model_name: str, model_version: str, *, reason: str) -> None:
            calls.append(("promote", model_name, model_version))

        def demote(self, model_name: str, model_version: str, *, reason: str) -> None:
            calls.append(("demote", model_name, model_version))

    engine = ABTestingEngine(db, registry=Registry())
    first = engine.start(engine.create(canary_spec("one")).id)
    engine.complete(first.id, winner="canary")
    second = engine.start(engine.create(canary_spec("two")).id)
    engine.rollback(second.id, reason="guardrail", evidence={})
    assert calls == [("promote", "fraud", "v2"), ("demote", "fraud", "v2")]
    with pytest.raises(InvalidError, match="no variant 'nobody'"):
        engine.complete(engine.start(engine.create(canary_spec("three")).id).id, winner="nobody")


def test_ingestion_aggregates_and_is_idempotent_by_event_id(
    engine: ABTestingEngine, db: Database
) -> None:
    experiment = engine.start(engine.create(canary_spec()).id)
    batch = [
        obs("e1", "control"),
        obs("e2", "control", "conversion", 1),
        obs("e3", "control", "conversion", 0),
        obs("e4", "canary", "latency_ms", 120.0, covariate=100.0),
        obs("e5", "canary", "latency_ms", 80.0),
    ]
    first = engine.ingest(experiment.id, batch)
    assert (first.accepted, first.duplicates) == (5, 0)
    retried = engine.ingest(experiment.id, [*batch, obs("e6", "canary")])
    assert (retried.accepted, retried.duplicates) == (1, 5)
    with db.transaction() as session:
        aggregates = {
            (a.variant, a.metric): a for a in load_metric_aggregates(session, experiment.id)
        }
        exposures = load_exposures(session, experiment.id)
    assert {k: v[0] for k, v in exposures.items()} == {"control": 1, "canary": 1}
    conversion = aggregates[("control", "conversion")].outcome
    assert (conversion.n, conversion.sum, conversion.sum_squares) == (2, 1.0, 1.0)
    latency = aggregates[("canary", "latency_ms")]
    assert (latency.outcome.n, latency.outcome.sum) == (2, 200.0)
    assert latency.covariate is not None
    assert (latency.covariate.n, latency.covariate.sum_xy) == (1, 12000.0)


def test_a_retried_batch_id_is_counted_once(engine: ABTestingEngine) -> None:
    experiment = engine.start(engine.create(canary_spec()).id)
    batch = [obs(f"b{i}", "canary", "conversion", i % 2) for i in range(10)]
    assert engine.ingest(experiment.id, batch, batch_id="batch-7").accepted == 10
    again = engine.ingest(experiment.id, batch, batch_id="batch-7")
    assert (again.accepted, again.duplicates) == (0, 10)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (obs("x", "nobody"), "variant"),
        (obs("x", "canary", "revenue", 1.0), "metric"),
        (obs("x", "canary", "conversion", 0.5), "value"),
        (obs("x", "canary", "conversion", None), "value"),
        (obs("x", "canary", "latency_ms", float("nan")), "value"),
        (obs("x", "canary", time=datetime(2026, 1, 1)), "time"),
    ],
)
def test_a_bad_observation_rejects_the_whole_batch(
    engine: ABTestingEngine, db: Database, bad: Observation, field: str
) -> None:
    experiment = engine.start(engine.create(canary_spec()).id)
    with pytest.raises(InvalidError) as info:
        engine.ingest(experiment.id, [obs("ok", "canary", "conversion", 1), bad])
    assert info.value.field == field
    assert "observation 1" in info.value.detail
    with db.transaction() as session:
        assert load_metric_aggregates(session, experiment.id) == []
    assert engine.ingest(experiment.id, [obs("ok", "canary", "conversion", 1)]).accepted == 1


def test_drafts_take_no_observations(engine: ABTestingEngine) -> None:
    experiment = engine.create(canary_spec())
    with pytest.raises(ConflictError, match="has not started"):
        engine.ingest(experiment.id, [obs("e", "control")])


def test_concurrent_ingestion_counts_every_event_once(
    engine: ABTestingEngine, db: Database
) -> None:
    experiment = engine.start(engine.create(canary_spec()).id)
    batches = [[obs(f"e{i}", "canary", "conversion", 1) for i in range(k, k + 50)] for k in (0, 25)]

    def ingest(batch: list[Observation]) -> None:
        for _ in range(3):
            engine.ingest(experiment.id, batch)

    threads = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.transaction() as session:
        (aggregate,) = load_metric_aggregates(session, experiment.id)
    assert aggregate.outcome.n == 75


def test_concurrent_batches_in_any_arm_order_never_deadlock(engine: ABTestingEngine) -> None:
    experiment = engine.start(engine.create(canary_spec()).id)
    errors: list[BaseException] = []

    def ingest(worker: int) -> None:
        arms = ["control", "canary"] if worker % 2 else ["canary", "control"]
        for batch in range(8):
            observations = [
                obs(f"w{worker}-b{batch}-{arm}-{i}", arm, metric, 1)
                for arm in arms
                for metric in (None, "conversion", "error")
                for i in range(5)
            ]
            try:
                engine.ingest(experiment.id, observations, batch_id=f"w{worker}-b{batch}")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _, aggregates, exposures = engine.statistics(experiment.id)
    assert {a.metric for a in aggregates} == {"conversion", "error"}
    assert {name: count for name, (count, _) in exposures.items()} == {
        "control": 160,
        "canary": 160,
    }
