"""The A/B testing domain: experiments, variants, metrics, observations and decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.ramping import RampStep
from synapsenet.services.abtesting.statistics.results import Direction as MetricDirection
from synapsenet.services.abtesting.statistics.results import MetricKind

__all__ = [
    "BanditConfig",
    "Experiment",
    "ExperimentSpec",
    "ExperimentStatus",
    "MetricDefinition",
    "MetricDirection",
    "MetricKind",
    "Observation",
    "RampStep",
    "RollbackPolicy",
    "TrafficAllocationStrategy",
    "Variant",
]


class TrafficAllocationStrategy(StrEnum):
    """How traffic is split between the variants of an experiment."""

    PERCENTAGE_SPLIT = "percentage_split"
    RAMPING = "ramping"
    THOMPSON_SAMPLING = "thompson_sampling"
    EPSILON_GREEDY = "epsilon_greedy"
    UCB1 = "ucb1"

    @property
    def is_bandit(self) -> bool:
        """Whether the strategy reweights arms from observed rewards."""
        return self in (
            TrafficAllocationStrategy.THOMPSON_SAMPLING,
            TrafficAllocationStrategy.EPSILON_GREEDY,
            TrafficAllocationStrategy.UCB1,
        )


class ExperimentStatus(StrEnum):
    """Where an experiment is in its lifecycle."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        """Whether no transition leaves this status."""
        return self in (
            ExperimentStatus.COMPLETED,
            ExperimentStatus.ROLLED_BACK,
            ExperimentStatus.STOPPED,
        )


TRANSITIONS: dict[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.STOPPED}),
    ExperimentStatus.RUNNING: frozenset(
        {
            ExperimentStatus.PAUSED,
            ExperimentStatus.COMPLETED,
            ExperimentStatus.ROLLED_BACK,
            ExperimentStatus.STOPPED,
        }
    ),
    ExperimentStatus.PAUSED: frozenset(
        {
            ExperimentStatus.RUNNING,
            ExperimentStatus.COMPLETED,
            ExperimentStatus.ROLLED_BACK,
            ExperimentStatus.STOPPED,
        }
    ),
    ExperimentStatus.COMPLETED: frozenset(),
    ExperimentStatus.ROLLED_BACK: frozenset(),
    ExperimentStatus.STOPPED: frozenset(),
}
"""Legal lifecycle transitions: DRAFT -> RUNNING <-> PAUSED -> COMPLETED | ROLLED_BACK | STOPPED."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: a model version and its share of traffic.

    Attributes:
        name: Unique within the experiment, e.g. ``control`` or ``canary``.
        model_version: The model version this arm serves.
        weight: Target share of traffic; the weights of an experiment sum exactly to 1.
        is_control: Whether this is the baseline every other arm is compared with.
    """

    name: str
    model_version: str
    weight: Decimal
    is_control: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the weight as a string, to stay exact)."""
        return {
            "name": self.name,
            "model_version": self.model_version,
            "weight": str(self.weight),
            "is_control": self.is_control,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            model_version=data["model_version"],
            weight=Decimal(data["weight"]),
            is_control=bool(data["is_control"]),
        )


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric the experiment measures, and whether it guards the rollout.

    Attributes:
        name: Unique within the experiment, e.g. ``error`` or ``latency_ms``.
        kind: Binary (0/1 per observation) or continuous.
        direction: Which way is better.
        guardrail: Whether a degradation of this metric rolls the experiment back.
        allowed_degradation: Relative degradation tolerated before a guardrail breaches
            (0.1 = 10% worse than control); the non-inferiority margin.
        hard_threshold: Absolute limit on the treatment's mean (e.g. 0.05 error rate); past
            it the guardrail breaches without a statistical test, once ``min_samples`` exist.
        min_samples: Observations an arm needs before any decision on this metric.
    """

    name: str
    kind: MetricKind
    direction: MetricDirection = MetricDirection.HIGHER_IS_BETTER
    guardrail: bool = False
    allowed_degradation: float = 0.0
    hard_threshold: float | None = None
    min_samples: int = 100

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidError("a metric needs a name", field="metrics")
        if not 0 <= self.allowed_degradation < 1:
            raise InvalidError(
                f"metric {self.name!r}: allowed_degradation must be in [0, 1). "
                f"Got {self.allowed_degradation!r} instead.",
                field="metrics",
            )
        if self.min_samples < 1:
            raise InvalidError(
                f"metric {self.name!r}: min_samples must be >= 1. "
                f"Got {self.min_samples!r} instead.",
                field="metrics",
            )

    @property
    def lower_is_better(self) -> bool:
        """Whether smaller values are better (errors, latency)."""
        return self.direction is MetricDirection.LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "direction": self.direction.value,
            "guardrail": self.guardrail,
            "allowed_degradation": self.allowed_degradation,
            "hard_threshold": self.hard_threshold,
            "min_samples": self.min_samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricDefinition:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            kind=MetricKind(data["kind"]),
            direction=MetricDirection(data["direction"]),
            guardrail=bool(data["guardrail"]),
            allowed_degradation=float(data["allowed_degradation"]),
            hard_threshold=data["hard_threshold"],
            min_samples=int(data["min_samples"]),
        )


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """How a bandit strategy reweights its arms.

    Attributes:
        reward_metric: The metric whose mean is the arm's reward.
        epsilon: Exploration share of epsilon-greedy.
        floor: Minimum weight every eligible arm keeps.
        min_units_per_arm: Observations every arm needs before a reweighting.
        seed: Seed of the randomized strategies (Thompson sampling draws).
    """

    reward_metric: str
    epsilon: float = 0.1
    floor: Decimal = Decimal("0.01")
    min_units_per_arm: int = 100
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "reward_metric": self.reward_metric,
            "epsilon": self.epsilon,
            "floor": str(self.floor),
            "min_units_per_arm": self.min_units_per_arm,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BanditConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(
            reward_metric=data["reward_metric"],
            epsilon=float(data["epsilon"]),
            floor=Decimal(data["floor"]),
            min_units_per_arm=int(data["min_units_per_arm"]),
            seed=int(data["seed"]),
        )


@dataclass(frozen=True, slots=True)
class RollbackPolicy:
    """When guardrail checks roll an experiment back.

    Attributes:
        alpha: False-rollback rate the sequential test keeps, however often it is checked.
        consecutive_breaches: Breaching checks in a row needed before rolling back.
        cooldown: Minimum time between two checks that count towards the breach streak, so
            a burst of checks on one noisy stretch of data cannot roll back on its own.
        stale_after: Data older than this makes a check inconclusive.
    """

    alpha: float = 0.05
    consecutive_breaches: int = 2
    cooldown: timedelta = timedelta(seconds=30)
    stale_after: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InvalidError(
                f"rollback alpha must be in (0, 1). Got {self.alpha!r} instead.",
                field="rollback_policy",
            )
        if self.consecutive_breaches < 1:
            raise InvalidError(
                "rollback consecutive_breaches must be >= 1. "
                f"Got {self.consecutive_breaches!r} instead.",
                field="rollback_policy",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (durations in seconds)."""
        return {
            "alpha": self.alpha,
            "consecutive_breaches": self.consecutive_breaches,
            "cooldown_seconds": self.cooldown.total_seconds(),
            "stale_after_seconds": self.stale_after.total_seconds(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RollbackPolicy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            alpha=float(data["alpha"]),
            consecutive_breaches=int(data["consecutive_breaches"]),
            cooldown=timedelta(seconds=float(data["cooldown_seconds"])),
            stale_after=timedelta(seconds=float(data["stale_after_seconds"])),
        )


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """What a user asks for when creating an experiment.

    Attributes:
        name: Unique experiment name.
        model_name: The registered model whose versions the variants serve.
        variants: The arms; exactly one is the control; weights sum exactly to 1.
        metrics: What to measure; guardrails protect the rollout.
        strategy: How traffic is allocated.
        coverage: Fraction of units in the experiment; the others get the control.
        ramp: The ramp schedule (``RAMPING`` only).
        bandit: Bandit settings (bandit strategies only).
        rollback_policy: When guardrail breaches roll back.
        description: Free text.
        salt: Hash salt; defaults to the experiment id, so experiments split independently.
    """

    name: str
    model_name: str
    variants: tuple[Variant, ...]
    metrics: tuple[MetricDefinition, ...] = ()
    strategy: TrafficAllocationStrategy = TrafficAllocationStrategy.PERCENTAGE_SPLIT
    coverage: Decimal = Decimal(1)
    ramp: tuple[RampStep, ...] = ()
    bandit: BanditConfig | None = None
    rollback_policy: RollbackPolicy = field(default_factory=RollbackPolicy)
    description: str = ""
    salt: str | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment as stored: its spec plus lifecycle state and current allocation.

    Attributes:
        id: Stable identifier.
        spec: What was asked for.
        status: Lifecycle status.
        salt: Hash salt of the assignment.
        allocation: Current effective weight of each variant (sums exactly to 1); the
            ramp step's share, the bandit's latest weights, or all on the control after a
            rollback.
        treatment_share: Current share of traffic for all treatments together.
        ramp_step: Index of the current ramp step (``RAMPING`` only).
        ramp_held: An operator holds the ramp at its current step.
        created_at: When it was created.
        started_at: When it first started running.
        step_started_at: When the current ramp step (or allocation) took effect.
        ended_at: When it reached a terminal status.
        winner: Name of the winning variant, when completed with one.
        version: Incremented on every change (optimistic concurrency).
    """

    id: str
    spec: ExperimentSpec
    status: ExperimentStatus
    salt: str
    allocation: tuple[Decimal, ...]
    treatment_share: Decimal
    ramp_step: int
    ramp_held: bool
    created_at: datetime
    started_at: datetime | None
    step_started_at: datetime | None
    ended_at: datetime | None
    winner: str | None
    version: int

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.spec.name

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The arms, in order."""
        return self.spec.variants

    @property
    def control_index(self) -> int:
        """Index of the control arm."""
        return next(i for i, v in enumerate(self.spec.variants) if v.is_control)

    @property
    def control(self) -> Variant:
        """The control arm."""
        return self.spec.variants[self.control_index]

    def variant(self, name: str) -> Variant:
        """The arm called ``name``.

        Raises:
            InvalidError: No arm has that name.
        """
        for variant in self.spec.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.spec.variants)
        raise InvalidError(
            f"experiment {self.name!r} has no variant {name!r} (it has {known})", field="variant"
        )

    def metric(self, name: str) -> MetricDefinition:
        """The metric called ``name``.

        Raises:
            InvalidError: No metric has that name.
        """
        for metric in self.spec.metrics:
            if metric.name == name:
                return metric
        known = ", ".join(m.name for m in self.spec.metrics) or "none"
        raise InvalidError(
            f"experiment {self.name!r} has no metric {name!r} (it has {known})", field="metric"
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """One exposure or outcome reported for an experiment.

    Attributes:
        event_id: Unique id; a retried observation with the same id is counted once.
        unit_id: The unit (user, request) it belongs to.
        variant: The arm the unit was served by.
        metric: The metric observed, or None for a bare exposure.
        value: The metric's value (0/1 for binary metrics).
        covariate: Pre-period value of the same metric for this unit (CUPED), if known.
        time: When it happened (aware UTC).
    """

    event_id: str
    unit_id: str
    variant: str
    time: datetime
    metric: str | None = None
    value: float | None = None
    covariate: float | None = None


@dataclass(frozen=True, slots=True)
class Exposure:
    """A unit served by an arm of a running experiment: one routed prediction request.

    Attributes:
        request_id: The request that served it; outcomes may later name it instead of the
            variant.
        unit_id: The unit (user, session) routed.
        variant: The arm that served it.
        time: When it was served (aware UTC).
    """

    request_id: str
    unit_id: str
    variant: str
    time: datetime
