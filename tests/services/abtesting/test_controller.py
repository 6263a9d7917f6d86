from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count

import numpy as np
import pytest

from synapsenet.core.db import Database, utcnow
from synapsenet.errors import ConflictError
from synapsenet.services.abtesting.controller import ExperimentController, bandit_for
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    BanditConfig,
    Experiment,
    ExperimentSpec,
    MetricDefinition,
    MetricKind,
    Observation,
    TrafficAllocationStrategy,
    Variant,
)
from synapsenet.services.abtesting.ramping import RampAction, RampReason
from tests.services.abtesting.conftest import canary_spec, ramp_steps


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


_ids = count()


def traffic(
    engine: ABTestingEngine,
    experiment: Experiment,
    clock: Clock,
    per_arm: int,
    rates: dict[str, float],
    metric: str = "error",
) -> None:
    rng = np.random.default_rng(next(_ids))
    observations: list[Observation] = []
    for variant, rate in rates.items():
        for value in rng.random(per_arm) < rate:
            event = f"t{next(_ids)}"
            observations.append(Observation(event, event, variant, clock()))
            observations.append(Observation(f"{event}m", event, variant, clock(), metric, value))
    engine.ingest(experiment.id, observations)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ramp(db: Database, clock: Clock) -> tuple[ABTestingEngine, ExperimentController, Experiment]:
    engine = ABTestingEngine(db, clock=clock)
    spec = canary_spec(
        canary_weight="0.5", strategy=TrafficAllocationStrategy.RAMPING, ramp=ramp_steps()
    )
    experiment = engine.start(engine.create(spec).id)
    return engine, ExperimentController(engine, clock=clock), experiment


def test_ramp_waits_for_duration_and_samples_then_advances(
    ramp: tuple[ABTestingEngine, ExperimentController, Experiment], clock: Clock
) -> None:
    engine, controller, experiment = ramp
    held = controller.tick(experiment.id).ramp
    assert held is not None
    assert held.action is RampAction.HOLD
    traffic(engine, experiment, clock, 300, {"control": 0.01, "canary": 0.01})
    clock.advance(5)
    early = controller.tick(experiment.id).ramp
    assert early is not None
    assert early.reason is RampReason.DURATION_NOT_MET
    clock.advance(6)
    advanced = controller.tick(experiment.id).ramp
    assert advanced is not None
    assert advanced.action is RampAction.ADVANCE
    updated = engine.get(experiment.id)
    assert updated.ramp_step == 1
    assert updated.treatment_share == Decimal("0.2")
    assert updated.allocation == (Decimal("0.8"), Decimal("0.2"))
    assert engine.decisions(experiment.id)[0].kind == "ramp"


def test_unhealthy_guardrail_holds_the_ramp(
    ramp: tuple[ABTestingEngine, ExperimentController, Experiment], clock: Clock
) -> None:
    engine, controller, experiment = ramp
    traffic(engine, experiment, clock, 400, {"control": 0.01, "canary": 0.2})
    clock.advance(11)
    decision = controller.tick(experiment.id).ramp
    assert decision is not None
    assert decision.action is RampAction.HOLD
    assert decision.reason is RampReason.GUARDRAILS_UNHEALTHY
    assert engine.get(experiment.id).ramp_step == 0


def test_operator_hold_and_forced_advance(
    ramp: tuple[ABTestingEngine, ExperimentController, Experiment], clock: Clock
) -> None:
    engine, controller, experiment = ramp
    engine.set_ramp_hold(experiment.id, held=True, reason="waiting for on-call")
    traffic(engine, experiment, clock, 300, {"control": 0.01, "canary": 0.01})
    clock.advance(30)
    decision = controller.tick(experiment.id).ramp
    assert decision is not None
    assert decision.reason is RampReason.MANUAL_HOLD
    forced = controller.advance(experiment.id, force=True)
    assert forced.action is RampAction.ADVANCE
    assert engine.get(experiment.id).ramp_step == 1
    engine.set_ramp_hold(experiment.id, held=False)
    assert not engine.get(experiment.id).ramp_held


def test_advance_refuses_non_ramps(db: Database) -> None:
    engine = ABTestingEngine(db)
    experiment = engine.start(engine.create(canary_spec()).id)
    with pytest.raises(ConflictError, match="not a ramp"):
        ExperimentController(engine).advance(experiment.id)
    with pytest.raises(ConflictError, match="not a ramp"):
        engine.set_ramp_hold(experiment.id, held=True)


@pytest.mark.parametrize(
    "strategy",
    [
        TrafficAllocationStrategy.THOMPSON_SAMPLING,
        TrafficAllocationStrategy.EPSILON_GREEDY,
        TrafficAllocationStrategy.UCB1,
    ],
)
def test_bandit_moves_traffic_to_the_better_arm(
    db: Database, clock: Clock, strategy: TrafficAllocationStrategy
) -> None:
    engine = ABTestingEngine(db, clock=clock)
    spec = ExperimentSpec(
        name=f"bandit-{strategy.value}",
        model_name="ranker",
        variants=(
            Variant("control", "v1", Decimal("0.34"), is_control=True),
            Variant("b", "v2", Decimal("0.33")),
            Variant("c", "v3", Decimal("0.33")),
        ),
        metrics=(MetricDefinition("click", MetricKind.BINARY),),
        strategy=strategy,
        bandit=BanditConfig(reward_metric="click", min_units_per_arm=200, seed=3),
    )
    experiment = engine.start(engine.create(spec).id)
    controller = ExperimentController(engine, clock=clock)
    assert not controller.tick(experiment.id).reweighted  # not enough data yet
    traffic(engine, experiment, clock, 500, {"control": 0.05, "b": 0.05, "c": 0.2}, "click")
    assert controller.tick(experiment.id).reweighted
    weights = engine.get(experiment.id).allocation
    assert sum(weights) == 1
    assert weights[2] == max(weights)
    assert weights[2] > Decimal("0.5")
    assert min(weights) >= Decimal("0.01")
    assert engine.decisions(experiment.id)[0].kind == "bandit"


def test_tick_running_covers_every_running_experiment(db: Database, clock: Clock) -> None:
    engine = ABTestingEngine(db, clock=clock)
    running = [engine.start(engine.create(canary_spec(f"exp-{i}")).id) for i in range(3)]
    paused = engine.pause(engine.start(engine.create(canary_spec("paused")).id).id)
    reports = ExperimentController(engine, clock=clock).tick_running()
    assert sorted(r.experiment_id for r in reports) == sorted(e.id for e in running)
    assert paused.id not in {r.experiment_id for r in reports}


def test_ticking_an_ended_experiment_does_nothing(db: Database, clock: Clock) -> None:
    engine = ABTestingEngine(db, clock=clock)
    spec = canary_spec(strategy=TrafficAllocationStrategy.RAMPING, ramp=ramp_steps())
    experiment = engine.stop(engine.start(engine.create(spec).id).id)
    controller = ExperimentController(engine, clock=clock)
    report = controller.tick(experiment.id)
    assert report.ramp is None
    with pytest.raises(ConflictError, match="stopped"):
        controller.advance(experiment.id)


def test_background_ticks_run_until_stopped(db: Database) -> None:
    engine = ABTestingEngine(db)
    experiment = engine.start(engine.create(canary_spec()).id)
    controller = ExperimentController(engine)
    controller.start(interval_seconds=0.05)
    controller.start(interval_seconds=0.05)  # a second start is a no-op
    try:
        deadline = time.monotonic() + 10
        while not engine.decisions(experiment.id) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        controller.stop()
    assert engine.decisions(experiment.id)[0].kind == "guardrail"


def test_bandit_settings_are_required_to_build_a_bandit(db: Database) -> None:
    engine = ABTestingEngine(db)
    experiment = engine.create(canary_spec())
    with pytest.raises(ConflictError, match="no bandit settings"):
        bandit_for(experiment)
    spec = replace(canary_spec("not-a-bandit"), bandit=BanditConfig(reward_metric="conversion"))
    with pytest.raises(ConflictError, match="is not a bandit"):
        bandit_for(engine.create(spec))
