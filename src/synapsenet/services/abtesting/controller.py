"""Drives running experiments: guardrail checks, ramp advances and bandit reweighting.

One ``tick`` per experiment checks its guardrails first (possibly rolling it back), then, if
it is still running, advances its ramp when the step's minimums are met and the guardrails
are healthy, or reweights its bandit arms (an arm breaching a guardrail gets no traffic).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from synapsenet.core.db import utcnow
from synapsenet.errors import ConflictError
from synapsenet.services.abtesting.bandits import (
    UCB1,
    ArmStats,
    BanditStrategy,
    EpsilonGreedy,
    ThompsonSampling,
)
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    Experiment,
    ExperimentStatus,
    MetricDirection,
    TrafficAllocationStrategy,
)
from synapsenet.services.abtesting.ramping import (
    RampAction,
    RampDecision,
    RampSchedule,
    advance_ramp,
    evaluate_ramp,
)
from synapsenet.services.abtesting.rollback import (
    AutoRollbackManager,
    GuardrailStatus,
    RollbackAction,
    RollbackDecision,
)
from synapsenet.services.abtesting.specs import ramp_allocation

logger = logging.getLogger(__name__)

_HEALTH = {
    RollbackAction.HEALTHY: True,
    RollbackAction.WATCHING: False,
    RollbackAction.INCONCLUSIVE: None,
}


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did to one experiment.

    Attributes:
        experiment_id: The experiment.
        guardrails: The guardrail decision.
        ramp: The ramp decision, for ramps still running.
        reweighted: Whether a bandit's weights changed.
    """

    experiment_id: str
    guardrails: RollbackDecision
    ramp: RampDecision | None = None
    reweighted: bool = False


def bandit_for(experiment: Experiment) -> BanditStrategy:
    """The bandit strategy an experiment's spec asks for."""
    config = experiment.spec.bandit
    if config is None:
        raise ConflictError(f"experiment {experiment.name!r} has no bandit settings")
    metric = experiment.metric(config.reward_metric)
    common = {
        "reward": metric.kind.value,
        "higher_is_better": metric.direction is MetricDirection.HIGHER_IS_BETTER,
        "min_units_per_arm": config.min_units_per_arm,
        "floor": config.floor,
    }
    strategy = experiment.spec.strategy
    if strategy is TrafficAllocationStrategy.THOMPSON_SAMPLING:
        return ThompsonSampling(**common, seed=config.seed)  # type: ignore[arg-type]
    if strategy is TrafficAllocationStrategy.EPSILON_GREEDY:
        return EpsilonGreedy(**common, epsilon=config.epsilon)  # type: ignore[arg-type]
    if strategy is TrafficAllocationStrategy.UCB1:
        return UCB1(**common)  # type: ignore[arg-type]
    raise ConflictError(f"experiment {experiment.name!r} is not a bandit")


class ExperimentController:
    """Runs the periodic work of every running experiment.

    Args:
        engine: The A/B testing engine.
        rollback: The guardrail manager (one is built on the engine when None).
        clock: Source of the current time (aware UTC).
    """

    def __init__(
        self,
        engine: ABTestingEngine,
        rollback: AutoRollbackManager | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.rollback = rollback or AutoRollbackManager(engine, clock=clock)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, experiment_id: str) -> TickReport:
        """Check guardrails, then advance the ramp or reweight the bandit."""
        guardrails = self.rollback.check(experiment_id)
        experiment = self.engine.get(experiment_id)
        if experiment.status is not ExperimentStatus.RUNNING:
            return TickReport(experiment.id, guardrails)
        strategy = experiment.spec.strategy
        if strategy is TrafficAllocationStrategy.RAMPING:
            decision = self._ramp(experiment, _HEALTH.get(guardrails.action), force=False)
            return TickReport(experiment.id, guardrails, ramp=decision)
        if strategy.is_bandit:
            breached = {c.variant for c in guardrails.checks if c.status is GuardrailStatus.BREACH}
            return TickReport(
                experiment.id, guardrails, reweighted=self._reweight(experiment, breached)
            )
        return TickReport(experiment.id, guardrails)

    def advance(self, experiment_id: str, *, force: bool = False) -> RampDecision:
        """Advance a ramp: when its minimums are met, or regardless with ``force``.

        Raises:
            ConflictError: The experiment is not a running ramp.
        """
        experiment = self.engine.get(experiment_id)
        if experiment.spec.strategy is not TrafficAllocationStrategy.RAMPING:
            raise ConflictError(f"experiment {experiment.name!r} is not a ramp")
        if experiment.status is not ExperimentStatus.RUNNING:
            raise ConflictError(f"experiment {experiment.name!r} is {experiment.status.value}")
        healthy = None
        if not force:
            healthy = _HEALTH.get(self.rollback.check(experiment_id).action)
        return self._ramp(self.engine.get(experiment_id), healthy, force=force)

    def _ramp(self, experiment: Experiment, healthy: bool | None, *, force: bool) -> RampDecision:
        schedule = RampSchedule(experiment.spec.ramp)
        if force:
            decision = advance_ramp(schedule, experiment.ramp_step)
        else:
            _, _, exposures = self.engine.statistics(experiment.id)
            decision = evaluate_ramp(
                schedule,
                experiment.ramp_step,
                experiment.step_started_at or experiment.created_at,
                self.clock(),
                {v.name: exposures.get(v.name, (0, None))[0] for v in experiment.variants},
                healthy,
                manually_held=experiment.ramp_held,
            )
        if decision.action is RampAction.ADVANCE:
            weights = tuple(v.weight for v in experiment.variants)
            self.engine.set_allocation(
                experiment.id,
                ramp_allocation(weights, experiment.control_index, decision.traffic),
                kind="ramp",
                reason=decision.detail,
                evidence={"reason": decision.reason.value, "step": decision.step_index},
                ramp_step=decision.step_index,
                treatment_share=decision.traffic,
            )
        return decision

    def _reweight(self, experiment: Experiment, breached: set[str]) -> bool:
        config = experiment.spec.bandit
        assert config is not None
        _, aggregates, _ = self.engine.statistics(experiment.id)
        rewards = {a.variant: a.outcome for a in aggregates if a.metric == config.reward_metric}
        stats = [
            ArmStats(s.n, s.sum, s.sum_squares) if (s := rewards.get(v.name)) else ArmStats(0, 0, 0)
            for v in experiment.variants
        ]
        excluded = [i for i, v in enumerate(experiment.variants) if v.name in breached]
        allocation = bandit_for(experiment).reweight(
            stats, experiment.allocation, excluded=excluded
        )
        if allocation.weights == experiment.allocation:
            return False
        self.engine.set_allocation(
            experiment.id,
            allocation.weights,
            kind="bandit",
            reason=allocation.detail,
            evidence={
                "reason": allocation.reason.value,
                "excluded": sorted(breached),
                "arms": {v.name: s.n for v, s in zip(experiment.variants, stats, strict=True)},
            },
            treatment_share=1 - allocation.weights[experiment.control_index],
        )
        return True

    def tick_running(self) -> list[TickReport]:
        """Tick every running experiment once; one failure does not stop the others."""
        reports = []
        for experiment_id in self.engine.ids(status=ExperimentStatus.RUNNING):
            try:
                reports.append(self.tick(experiment_id))
            except Exception:
                logger.exception("periodic work on experiment %s failed", experiment_id)
        return reports

    def start(self, interval_seconds: float = 30.0) -> None:
        """Tick every running experiment every ``interval_seconds`` in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                self.tick_running()

        self._thread = threading.Thread(target=loop, name="experiment-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background ticks."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
