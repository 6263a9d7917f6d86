from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count

import numpy as np
import pytest
from sqlalchemy import select, update

from synapsenet.core.db import Database, utcnow
from synapsenet.core.outbox import OutboxRecord
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    MetricDefinition,
    MetricDirection,
    MetricKind,
    Observation,
    RollbackPolicy,
    Variant,
)
from synapsenet.services.abtesting.rollback import (
    AutoRollbackManager,
    GuardrailCheck,
    GuardrailStatus,
    RollbackAction,
    RollbackDecision,
    evaluate_guardrail,
)
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.sufficient import SampleStats
from synapsenet.services.abtesting.store import ExperimentRecord, MetricAggregate


class Clock:
    """A settable clock, so cooldowns and staleness are tested without sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def guarded_spec(
    *,
    hard_threshold: float | None = None,
    consecutive: int = 2,
    cooldown: float = 0.0,
    stale_after: float = 900.0,
) -> ExperimentSpec:
    return ExperimentSpec(
        name="guarded",
        model_name="fraud",
        variants=(
            Variant("control", "v1", Decimal("0.5"), is_control=True),
            Variant("canary", "v2", Decimal("0.5")),
        ),
        metrics=(
            MetricDefinition(
                "error",
                MetricKind.BINARY,
                MetricDirection.LOWER_IS_BETTER,
                guardrail=True,
                allowed_degradation=0.0,
                hard_threshold=hard_threshold,
                min_samples=500,
            ),
        ),
        rollback_policy=RollbackPolicy(
            alpha=0.05,
            consecutive_breaches=consecutive,
            cooldown=timedelta(seconds=cooldown),
            stale_after=timedelta(seconds=stale_after),
        ),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


Setup = Callable[[ExperimentSpec], tuple[ABTestingEngine, Experiment]]


@pytest.fixture
def setup(db: Database, clock: Clock) -> Setup:
    def make(spec: ExperimentSpec) -> tuple[ABTestingEngine, Experiment]:
        engine = ABTestingEngine(db, clock=clock)
        return engine, engine.start(engine.create(spec).id)

    return make


_ids = count()


def send_batch(
    engine: ABTestingEngine,
    experiment: Experiment,
    rng: np.random.Generator,
    rates: dict[str, float],
    per_arm: int,
    clock: Clock,
) -> None:
    observations = [
        Observation(f"e{next(_ids)}", "u", variant, clock(), "error", float(value))
        for variant, rate in rates.items()
        for value in rng.random(per_arm) < rate
    ]
    engine.ingest(experiment.id, observations)


def test_a_degraded_canary_is_rolled_back(
    setup: Setup,
    clock: Clock,
    db: Database,
) -> None:
    engine, experiment = setup(guarded_spec())
    manager = AutoRollbackManager(engine, clock=clock)
    rng = np.random.default_rng(7)
    actions = []
    for _ in range(30):
        send_batch(engine, experiment, rng, {"control": 0.10, "canary": 0.12}, 2000, clock)
        clock.advance(60)
        decision = manager.check(experiment.id)
        actions.append(decision.action)
        if decision.action is RollbackAction.ROLLED_BACK:
            break
    assert actions[-1] is RollbackAction.ROLLED_BACK, actions
    assert RollbackAction.WATCHING in actions  # one breach alone did not roll back
    rolled = engine.get(experiment.id)
    assert rolled.status is ExperimentStatus.ROLLED_BACK
    assert rolled.allocation == (Decimal(1), Decimal(0))
    log = engine.decisions(experiment.id)
    assert log[0].kind == "rollback"
    check = log[0].evidence["checks"][0]
    assert check["status"] == "breach"
    assert check["p_value"] < 0.05
    assert check["consecutive_breaches"] == 2
    with db.transaction() as session:
        types = list(session.scalars(select(OutboxRecord.type)))
    assert "abtesting.experiment.rolled_back" in types


def test_an_aa_canary_checked_every_batch_is_not_rolled_back(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(consecutive=1))
    manager = AutoRollbackManager(engine, clock=clock)
    rng = np.random.default_rng(11)
    for _ in range(25):
        send_batch(engine, experiment, rng, {"control": 0.10, "canary": 0.10}, 1000, clock)
        clock.advance(60)
        assert manager.check(experiment.id).action is not RollbackAction.ROLLED_BACK
    assert engine.get(experiment.id).status is ExperimentStatus.RUNNING


def test_no_traffic_is_inconclusive_never_a_pass(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec())
    manager = AutoRollbackManager(engine, clock=clock)
    decision = manager.check(experiment.id)
    assert decision.action is RollbackAction.INCONCLUSIVE
    assert "not enough data" in decision.reason
    assert decision.checks[0].status is GuardrailStatus.INCONCLUSIVE
    assert engine.decisions(experiment.id)[0].outcome == "inconclusive"


def test_stale_data_is_inconclusive(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(stale_after=600))
    manager = AutoRollbackManager(engine, clock=clock)
    send_batch(
        engine, experiment, np.random.default_rng(1), {"control": 0.1, "canary": 0.5}, 600, clock
    )
    clock.advance(3600)
    decision = manager.check(experiment.id)
    assert decision.action is RollbackAction.INCONCLUSIVE
    assert "stale data" in decision.reason
    assert engine.get(experiment.id).status is ExperimentStatus.RUNNING


def test_hard_threshold_breaches_without_a_test(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(hard_threshold=0.05, consecutive=1))
    manager = AutoRollbackManager(engine, clock=clock)
    # Both arms equally bad: no relative degradation, but the absolute limit is crossed.
    send_batch(
        engine, experiment, np.random.default_rng(3), {"control": 0.2, "canary": 0.2}, 600, clock
    )
    decision = manager.check(experiment.id)
    assert decision.action is RollbackAction.ROLLED_BACK
    assert decision.checks[0].threshold_breached
    assert "hard limit 0.05" in decision.reason


def test_breaches_within_the_cooldown_count_once(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(hard_threshold=0.05, consecutive=2, cooldown=300))
    manager = AutoRollbackManager(engine, clock=clock)
    send_batch(
        engine, experiment, np.random.default_rng(5), {"control": 0.2, "canary": 0.2}, 600, clock
    )
    first = manager.check(experiment.id)
    clock.advance(10)
    second = manager.check(experiment.id)
    assert (first.action, second.action) == (RollbackAction.WATCHING, RollbackAction.WATCHING)
    assert second.checks[0].consecutive_breaches == 1
    clock.advance(300)
    send_batch(
        engine, experiment, np.random.default_rng(6), {"control": 0.2, "canary": 0.2}, 10, clock
    )
    assert manager.check(experiment.id).action is RollbackAction.ROLLED_BACK


def test_a_healthy_check_resets_the_streak(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(hard_threshold=0.15, consecutive=2))
    manager = AutoRollbackManager(engine, clock=clock)
    rng = np.random.default_rng(9)
    send_batch(engine, experiment, rng, {"control": 0.3, "canary": 0.3}, 600, clock)
    assert manager.check(experiment.id).checks[0].consecutive_breaches == 1
    # Many good observations bring the canary's mean back under the limit.
    send_batch(engine, experiment, rng, {"control": 0.0, "canary": 0.0}, 5000, clock)
    healthy = manager.check(experiment.id)
    assert healthy.action is RollbackAction.HEALTHY
    assert healthy.checks[0].consecutive_breaches == 0


def test_only_running_experiments_are_checked(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec())
    engine.pause(experiment.id)
    manager = AutoRollbackManager(engine, clock=clock)
    assert manager.check(experiment.id).action is RollbackAction.NOT_RUNNING
    assert manager.check_running() == []


def _aggregate(variant: str, values: np.ndarray, at: datetime) -> MetricAggregate:
    return MetricAggregate(variant, "error", SampleStats.from_values(values), None, at)


@pytest.mark.slow
def test_false_rollback_rate_under_frequent_checks_stays_below_alpha() -> None:
    """A/A guardrails checked at 20 looks: the sequential rule keeps false breaches <= alpha,
    while a naive fixed-horizon test at each look breaches far more often."""
    metric = guarded_spec().metrics[0]
    policy = RollbackPolicy(alpha=0.05)
    analyzer = StatisticalAnalyzer(alpha=0.05)
    naive = StatisticalAnalyzer(alpha=0.05)
    rng = np.random.default_rng(2024)
    now = utcnow()
    replications, looks, per_look = 400, 20, 500
    sequential_breaches = naive_breaches = 0
    for _ in range(replications):
        control = rng.random(looks * per_look) < 0.1
        canary = rng.random(looks * per_look) < 0.1
        breached_seq = breached_naive = False
        for look in range(1, looks + 1):
            n = look * per_look
            check = evaluate_guardrail(
                metric,
                "canary",
                _aggregate("control", control[:n], now),
                _aggregate("canary", canary[:n], now),
                analyzer,
                now=now,
                policy=policy,
            )
            breached_seq = breached_seq or check.status is GuardrailStatus.BREACH
            fixed = naive.degradation(
                SampleStats.from_values(control[:n]),
                SampleStats.from_values(canary[:n]),
                margin=0.0,
                direction=MetricDirection.LOWER_IS_BETTER,
                sequential=False,
                kind=MetricKind.BINARY,
            )
            breached_naive = breached_naive or fixed.rejected
        sequential_breaches += breached_seq
        naive_breaches += breached_naive
    alpha = 0.05
    standard_error = (alpha * (1 - alpha) / replications) ** 0.5
    assert sequential_breaches / replications <= alpha + 2 * standard_error
    assert naive_breaches / replications > 2 * alpha


def test_constant_arms_give_no_test_and_stay_inconclusive(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec())
    manager = AutoRollbackManager(engine, clock=clock)
    send_batch(
        engine, experiment, np.random.default_rng(2), {"control": 0.0, "canary": 0.0}, 600, clock
    )
    decision = manager.check(experiment.id)
    assert decision.action is RollbackAction.INCONCLUSIVE
    assert "no test possible" in decision.reason


def test_errors_appearing_over_an_error_free_control_are_tested_absolutely(
    setup: Setup, clock: Clock
) -> None:
    engine, experiment = setup(guarded_spec(consecutive=1))
    manager = AutoRollbackManager(engine, clock=clock)
    send_batch(
        engine, experiment, np.random.default_rng(4), {"control": 0.0, "canary": 0.05}, 2000, clock
    )
    decision = manager.check(experiment.id)
    assert decision.action is RollbackAction.ROLLED_BACK
    assert decision.checks[0].p_value is not None


class _RacingManager(AutoRollbackManager):
    """An operator stops the experiment while the check is deciding."""

    def _decide(
        self, experiment: Experiment, checks: tuple[GuardrailCheck, ...], now: datetime
    ) -> RollbackDecision:
        decision = super()._decide(experiment, checks, now)
        self.engine.stop(experiment.id, reason="operator")
        return decision


def test_a_rollback_racing_an_operator_stop_is_harmless(setup: Setup, clock: Clock) -> None:
    engine, experiment = setup(guarded_spec(hard_threshold=0.05, consecutive=1))
    send_batch(
        engine, experiment, np.random.default_rng(8), {"control": 0.2, "canary": 0.2}, 600, clock
    )
    decision = _RacingManager(engine, clock=clock).check(experiment.id)
    assert decision.action is RollbackAction.ROLLED_BACK
    assert engine.get(experiment.id).status is ExperimentStatus.STOPPED


def test_one_broken_experiment_does_not_stop_the_others(
    setup: Setup, clock: Clock, db: Database
) -> None:
    engine, broken = setup(guarded_spec())
    healthy = engine.start(engine.create(replace(guarded_spec(), name="healthy")).id)
    with db.transaction() as session:
        session.execute(
            update(ExperimentRecord).where(ExperimentRecord.id == broken.id).values(spec="{}")
        )
    decisions = AutoRollbackManager(engine, clock=clock).check_running()
    assert [d.experiment_id for d in decisions] == [healthy.id]
