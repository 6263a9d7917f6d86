"""AutoRollbackManager: guardrail monitoring and rollback decisions.

A guardrail breaches on statistical evidence (a one-sided always-valid test that the
treatment is worse than the control by more than the allowed degradation, so checking after
every batch keeps false rollbacks at or below alpha) or on a hard absolute threshold once the
minimum sample exists. A rollback needs ``consecutive_breaches`` breaching checks in a row,
counted at most once per ``cooldown``. Too little or stale data is ``INCONCLUSIVE``: never a
rollback, never a silent pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from synapsenet.core.db import utcnow
from synapsenet.errors import ConflictError
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    Experiment,
    ExperimentStatus,
    MetricDefinition,
    RollbackPolicy,
)
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.results import MarginTestResult, ResultCode
from synapsenet.services.abtesting.statistics.sufficient import SampleStats
from synapsenet.services.abtesting.store import GuardrailStateRecord, MetricAggregate

logger = logging.getLogger(__name__)


class GuardrailStatus(StrEnum):
    """The verdict of one guardrail check."""

    HEALTHY = "healthy"
    BREACH = "breach"
    INCONCLUSIVE = "inconclusive"


class RollbackAction(StrEnum):
    """What a check of a whole experiment led to."""

    ROLLED_BACK = "rolled_back"
    """A guardrail breached often enough: all traffic went back to the control."""
    WATCHING = "watching"
    """A guardrail breached, but not yet ``consecutive_breaches`` times in a row."""
    HEALTHY = "healthy"
    """Every guardrail of every treatment had enough fresh data and passed."""
    INCONCLUSIVE = "inconclusive"
    """Some guardrail lacks data (or fresh data) for a verdict; nothing breached."""
    NOT_RUNNING = "not_running"
    """The experiment is not running; nothing was checked."""


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    """One guardrail metric of one treatment, checked against the control.

    Attributes:
        metric: The guardrail metric.
        variant: The treatment arm.
        status: Healthy, breach or inconclusive.
        reason: Why, in words.
        control_n: Control observations.
        treatment_n: Treatment observations.
        control_mean: Control mean, when there is data.
        treatment_mean: Treatment mean, when there is data.
        p_value: Always-valid p-value of the degradation test, when computed.
        threshold_breached: Whether the hard absolute threshold was crossed.
        consecutive_breaches: The breach streak after this check.
    """

    metric: str
    variant: str
    status: GuardrailStatus
    reason: str
    control_n: int
    treatment_n: int
    control_mean: float | None = None
    treatment_mean: float | None = None
    p_value: float | None = None
    threshold_breached: bool = False
    consecutive_breaches: int = 0


@dataclass(frozen=True, slots=True)
class RollbackDecision:
    """The outcome of checking an experiment's guardrails.

    Attributes:
        experiment_id: The experiment.
        action: What was decided.
        reason: Why, in words.
        checks: The individual guardrail checks behind it.
        at: When.
    """

    experiment_id: str
    action: RollbackAction
    reason: str
    checks: tuple[GuardrailCheck, ...]
    at: datetime

    @property
    def evidence(self) -> dict[str, Any]:
        """The checks as JSON-ready data (for the decision log)."""
        return {"checks": [asdict(c) for c in self.checks]}


def evaluate_guardrail(
    metric: MetricDefinition,
    variant: str,
    control: MetricAggregate | None,
    treatment: MetricAggregate | None,
    analyzer: StatisticalAnalyzer,
    *,
    now: datetime,
    policy: RollbackPolicy,
) -> GuardrailCheck:
    """Check one guardrail metric of one treatment (no streak bookkeeping).

    Args:
        metric: The guardrail.
        variant: The treatment's name.
        control: The control's stored statistics for the metric, if any.
        treatment: The treatment's stored statistics for the metric, if any.
        analyzer: Runs the one-sided sequential degradation test.
        now: The time of the check.
        policy: Staleness limit.

    Returns:
        The check, with status ``INCONCLUSIVE`` when the data cannot support a verdict.
    """
    empty = SampleStats(0, 0.0, 0.0)
    c = control.outcome if control is not None else empty
    t = treatment.outcome if treatment is not None else empty

    def verdict(status: GuardrailStatus, reason: str, **extra: Any) -> GuardrailCheck:
        return GuardrailCheck(
            metric=metric.name,
            variant=variant,
            status=status,
            reason=reason,
            control_n=c.n,
            treatment_n=t.n,
            control_mean=c.mean if c.n else None,
            treatment_mean=t.mean if t.n else None,
            **extra,
        )

    if c.n < metric.min_samples or t.n < metric.min_samples:
        return verdict(
            GuardrailStatus.INCONCLUSIVE,
            f"not enough data: control {c.n}, {variant} {t.n} observations "
            f"(need {metric.min_samples} each)",
        )
    assert treatment is not None
    age = now - treatment.updated_at
    if age > policy.stale_after:
        return verdict(
            GuardrailStatus.INCONCLUSIVE,
            f"stale data: no {metric.name} observation for {variant} in {age} "
            f"(limit {policy.stale_after})",
        )
    threshold = metric.hard_threshold
    if threshold is not None and (
        t.mean > threshold if metric.lower_is_better else t.mean < threshold
    ):
        side = "above" if metric.lower_is_better else "below"
        return verdict(
            GuardrailStatus.BREACH,
            f"{metric.name} of {variant} is {t.mean:.4g}, {side} the hard limit {threshold:g}",
            threshold_breached=True,
        )
    test = _degradation(analyzer, metric, c, t)
    if test.code is not ResultCode.OK:
        return verdict(GuardrailStatus.INCONCLUSIVE, f"no test possible: {test.reason}")
    if test.rejected:
        return verdict(
            GuardrailStatus.BREACH,
            f"{metric.name} of {variant} is worse than control by more than "
            f"{metric.allowed_degradation:.0%} (always-valid p={test.p_value:.3g})",
            p_value=test.p_value,
        )
    return verdict(
        GuardrailStatus.HEALTHY,
        f"no evidence of a degradation beyond {metric.allowed_degradation:.0%} "
        f"(always-valid p={test.p_value:.3g})",
        p_value=test.p_value,
    )


def _degradation(
    analyzer: StatisticalAnalyzer,
    metric: MetricDefinition,
    control: SampleStats,
    treatment: SampleStats,
) -> MarginTestResult:
    test = analyzer.degradation(
        control,
        treatment,
        margin=metric.allowed_degradation,
        direction=metric.direction,
        relative=True,
        sequential=True,
        kind=metric.kind,
    )
    if test.code is ResultCode.ZERO_BASELINE:
        # A relative margin of a zero control mean is zero: test the raw difference instead.
        test = analyzer.degradation(
            control,
            treatment,
            margin=0.0,
            direction=metric.direction,
            relative=False,
            sequential=True,
            kind=metric.kind,
        )
    return test


class AutoRollbackManager:
    """Checks the guardrails of running experiments and rolls back on a real degradation.

    :class:`~synapsenet.services.abtesting.controller.ExperimentController` runs the checks
    on a schedule; the API runs one after every ingested batch.

    Args:
        engine: The A/B testing engine (its database, decision log and rollback).
        clock: Source of the current time (aware UTC).
    """

    def __init__(self, engine: ABTestingEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def check(self, experiment_id: str) -> RollbackDecision:
        """Check every guardrail of every treatment once, and act on the result.

        Returns:
            The decision; it is also written to the experiment's decision log (repeated
            healthy checks are logged once, when the state changes).
        """
        now = self.clock()
        experiment, aggregates, _ = self.engine.statistics(experiment_id)
        if experiment.status is not ExperimentStatus.RUNNING:
            return RollbackDecision(
                experiment.id,
                RollbackAction.NOT_RUNNING,
                f"experiment is {experiment.status.value}",
                (),
                now,
            )
        policy = experiment.spec.rollback_policy
        analyzer = StatisticalAnalyzer(alpha=policy.alpha)
        by_key = {(a.variant, a.metric): a for a in aggregates}
        raw_checks = [
            evaluate_guardrail(
                metric,
                variant.name,
                by_key.get((experiment.control.name, metric.name)),
                by_key.get((variant.name, metric.name)),
                analyzer,
                now=now,
                policy=policy,
            )
            for metric in experiment.spec.metrics
            if metric.guardrail
            for variant in experiment.variants
            if not variant.is_control
        ]
        checks = self._update_streaks(experiment, raw_checks, now)
        decision = self._decide(experiment, checks, now)
        if decision.action is RollbackAction.ROLLED_BACK:
            try:
                self.engine.rollback(
                    experiment.id, reason=decision.reason, evidence=decision.evidence
                )
            except ConflictError:
                # Another check (or an operator) ended the experiment first.
                logger.info("experiment %s ended before its rollback", experiment.id)
        else:
            self._log(experiment.id, decision)
        return decision

    def _update_streaks(
        self, experiment: Experiment, checks: list[GuardrailCheck], now: datetime
    ) -> tuple[GuardrailCheck, ...]:
        policy = experiment.spec.rollback_policy
        updated = []
        with self.engine.db.transaction(write=True) as session:
            for check in checks:
                state = _guardrail_state(session, experiment.id, check.variant, check.metric)
                if check.status is GuardrailStatus.HEALTHY:
                    state.consecutive_breaches = 0
                elif check.status is GuardrailStatus.BREACH and (
                    state.last_counted_at is None or now - state.last_counted_at >= policy.cooldown
                ):
                    state.consecutive_breaches += 1
                    state.last_counted_at = now
                updated.append(_with_streak(check, state.consecutive_breaches))
        return tuple(updated)

    def _decide(
        self, experiment: Experiment, checks: tuple[GuardrailCheck, ...], now: datetime
    ) -> RollbackDecision:
        needed = experiment.spec.rollback_policy.consecutive_breaches
        breaches = [c for c in checks if c.status is GuardrailStatus.BREACH]
        decisive = [c for c in breaches if c.consecutive_breaches >= needed]
        if decisive:
            worst = decisive[0]
            return RollbackDecision(
                experiment.id,
                RollbackAction.ROLLED_BACK,
                f"{worst.reason}; breached {worst.consecutive_breaches} checks in a row",
                checks,
                now,
            )
        if breaches:
            first = breaches[0]
            return RollbackDecision(
                experiment.id,
                RollbackAction.WATCHING,
                f"{first.reason}; breach {first.consecutive_breaches} of {needed} needed",
                checks,
                now,
            )
        inconclusive = [c for c in checks if c.status is GuardrailStatus.INCONCLUSIVE]
        if inconclusive or not checks:
            reason = inconclusive[0].reason if inconclusive else "the experiment has no guardrail"
            return RollbackDecision(experiment.id, RollbackAction.INCONCLUSIVE, reason, checks, now)
        return RollbackDecision(
            experiment.id, RollbackAction.HEALTHY, "every guardrail is healthy", checks, now
        )

    def _log(self, experiment_id: str, decision: RollbackDecision) -> None:
        last = next(
            (d for d in self.engine.decisions(experiment_id, limit=20) if d.kind == "guardrail"),
            None,
        )
        if last is not None and last.outcome == decision.action.value == "healthy":
            return
        self.engine.log_decision(
            experiment_id, "guardrail", decision.action.value, decision.reason, decision.evidence
        )

    def check_running(self) -> list[RollbackDecision]:
        """Check every running experiment once."""
        decisions = []
        for experiment_id in self.engine.ids(status=ExperimentStatus.RUNNING):
            try:
                decisions.append(self.check(experiment_id))
            except Exception:
                logger.exception("guardrail check of experiment %s failed", experiment_id)
        return decisions


def _guardrail_state(
    session: Session, experiment_id: str, variant: str, metric: str
) -> GuardrailStateRecord:
    state = session.get(
        GuardrailStateRecord, (experiment_id, variant, metric), with_for_update=True
    )
    if state is None:
        state = GuardrailStateRecord(
            experiment_id=experiment_id,
            variant=variant,
            metric=metric,
            consecutive_breaches=0,
            last_counted_at=None,
        )
        session.add(state)
    return state


def _with_streak(check: GuardrailCheck, streak: int) -> GuardrailCheck:
    return GuardrailCheck(**{**asdict(check), "consecutive_breaches": streak})
