"""Request and response schemas of the A/B testing API.

The results page's schemas are in :mod:`~synapsenet.services.abtesting.result_schemas`.

Weights and traffic shares are ``Decimal`` and travel as JSON strings (``"0.1"``), so they
stay exact; numbers are accepted on input too. Durations are seconds. Datetimes are ISO 8601
and must carry a timezone: a naive one is refused with a 422 naming the field.

Request bodies forbid unknown fields, so a typo (``"wieght"``) is a 422 instead of a silent
default. Response schemas ignore unknown fields, so an older client keeps parsing the answers
of a newer server.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    model_validator,
)

from synapsenet.services.abtesting.controller import TickReport
from synapsenet.services.abtesting.engine import Decision
from synapsenet.services.abtesting.exposures import PendingOutcome
from synapsenet.services.abtesting.ingestion import IngestResult
from synapsenet.services.abtesting.models import (
    BanditConfig,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    MetricDefinition,
    MetricDirection,
    MetricKind,
    Observation,
    RampStep,
    RollbackPolicy,
    TrafficAllocationStrategy,
    Variant,
)
from synapsenet.services.abtesting.ramping import RampAction, RampDecision, RampReason
from synapsenet.services.abtesting.rollback import (
    GuardrailCheck,
    GuardrailStatus,
    RollbackAction,
    RollbackDecision,
)
from synapsenet.services.abtesting.routing import Assignment

MAX_BATCH = 100_000
"""Most unit ids one batch assignment, or observations one ingestion, may carry."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A name or id: 1 to 200 characters."""
_FORBID = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- experiment spec


class VariantSchema(BaseModel):
    """One arm: a model version and its target share of traffic."""

    name: Name
    model_version: Name
    weight: Decimal = Field(description='Target share, e.g. "0.1"; all weights sum to 1.')
    is_control: bool = False

    @classmethod
    def of(cls, variant: Variant) -> VariantSchema:
        """Build from the domain object."""
        return cls(
            name=variant.name,
            model_version=variant.model_version,
            weight=variant.weight,
            is_control=variant.is_control,
        )

    def to_domain(self) -> Variant:
        """The domain object."""
        return Variant(self.name, self.model_version, self.weight, self.is_control)


class MetricSchema(BaseModel):
    """A metric to measure, and whether it guards the rollout."""

    name: Name
    kind: MetricKind
    direction: MetricDirection = MetricDirection.HIGHER_IS_BETTER
    guardrail: bool = False
    allowed_degradation: FiniteFloat = Field(default=0.0, ge=0, lt=1)
    hard_threshold: FiniteFloat | None = None
    min_samples: int = Field(default=100, ge=1)

    @classmethod
    def of(cls, metric: MetricDefinition) -> MetricSchema:
        """Build from the domain object."""
        return cls.model_validate(metric.to_dict())

    def to_domain(self) -> MetricDefinition:
        """The domain object."""
        return MetricDefinition(
            name=self.name,
            kind=self.kind,
            direction=self.direction,
            guardrail=self.guardrail,
            allowed_degradation=self.allowed_degradation,
            hard_threshold=self.hard_threshold,
            min_samples=self.min_samples,
        )


class RampStepSchema(BaseModel):
    """One step of a ramp: treatment share and the minimums before the next step."""

    traffic: Decimal = Field(description='Share of all treatments together, e.g. "0.05".')
    min_duration_seconds: FiniteFloat = Field(ge=0)
    min_samples_per_arm: int = Field(ge=0)

    @classmethod
    def of(cls, step: RampStep) -> RampStepSchema:
        """Build from the domain object."""
        return cls(
            traffic=step.traffic,
            min_duration_seconds=step.min_duration.total_seconds(),
            min_samples_per_arm=step.min_samples_per_arm,
        )

    def to_domain(self) -> RampStep:
        """The domain object."""
        return RampStep(
            self.traffic, timedelta(seconds=self.min_duration_seconds), self.min_samples_per_arm
        )


class BanditSchema(BaseModel):
    """How a bandit strategy reweights its arms."""

    reward_metric: Name
    epsilon: FiniteFloat = Field(default=0.1, ge=0, le=1)
    floor: Decimal = Decimal("0.01")
    min_units_per_arm: int = Field(default=100, ge=1)
    seed: int = 0

    @classmethod
    def of(cls, config: BanditConfig) -> BanditSchema:
        """Build from the domain object."""
        return cls.model_validate(config.to_dict())

    def to_domain(self) -> BanditConfig:
        """The domain object."""
        return BanditConfig(
            reward_metric=self.reward_metric,
            epsilon=self.epsilon,
            floor=self.floor,
            min_units_per_arm=self.min_units_per_arm,
            seed=self.seed,
        )


class RollbackPolicySchema(BaseModel):
    """When guardrail breaches roll the experiment back."""

    alpha: FiniteFloat = Field(default=0.05, gt=0, lt=1)
    consecutive_breaches: int = Field(default=2, ge=1)
    cooldown_seconds: FiniteFloat = Field(default=30.0, ge=0)
    stale_after_seconds: FiniteFloat = Field(default=900.0, gt=0)

    @classmethod
    def of(cls, policy: RollbackPolicy) -> RollbackPolicySchema:
        """Build from the domain object."""
        return cls.model_validate(policy.to_dict())

    def to_domain(self) -> RollbackPolicy:
        """The domain object."""
        return RollbackPolicy(
            alpha=self.alpha,
            consecutive_breaches=self.consecutive_breaches,
            cooldown=timedelta(seconds=self.cooldown_seconds),
            stale_after=timedelta(seconds=self.stale_after_seconds),
        )


class VariantIn(VariantSchema):
    """A variant in a request (unknown fields refused)."""

    model_config = _FORBID


class MetricIn(MetricSchema):
    """A metric in a request (unknown fields refused)."""

    model_config = _FORBID


class RampStepIn(RampStepSchema):
    """A ramp step in a request (unknown fields refused)."""

    model_config = _FORBID


class BanditIn(BanditSchema):
    """Bandit settings in a request (unknown fields refused)."""

    model_config = _FORBID


class RollbackPolicyIn(RollbackPolicySchema):
    """A rollback policy in a request (unknown fields refused)."""

    model_config = _FORBID


class ExperimentCreate(BaseModel):
    """A new experiment; the engine checks it as a whole and names the field at fault."""

    model_config = _FORBID

    name: Name
    model_name: Name
    variants: list[VariantIn]
    metrics: list[MetricIn] = Field(default_factory=list)
    strategy: TrafficAllocationStrategy = TrafficAllocationStrategy.PERCENTAGE_SPLIT
    coverage: Decimal = Decimal(1)
    ramp: list[RampStepIn] = Field(default_factory=list)
    bandit: BanditIn | None = None
    rollback_policy: RollbackPolicyIn = Field(default_factory=RollbackPolicyIn)
    description: str = Field(default="", max_length=10_000)
    salt: Name | None = None

    def to_spec(self) -> ExperimentSpec:
        """The domain spec.

        Raises:
            InvalidError: A part is invalid on its own (e.g. a ramp step's traffic).
        """
        return ExperimentSpec(
            name=self.name,
            model_name=self.model_name,
            variants=tuple(v.to_domain() for v in self.variants),
            metrics=tuple(m.to_domain() for m in self.metrics),
            strategy=self.strategy,
            coverage=self.coverage,
            ramp=tuple(s.to_domain() for s in self.ramp),
            bandit=self.bandit.to_domain() if self.bandit is not None else None,
            rollback_policy=self.rollback_policy.to_domain(),
            description=self.description,
            salt=self.salt,
        )


class ExperimentPublic(BaseModel):
    """An experiment: its spec, lifecycle state and current allocation."""

    id: str
    name: str
    model_name: str
    description: str
    status: ExperimentStatus
    strategy: TrafficAllocationStrategy
    variants: list[VariantSchema]
    metrics: list[MetricSchema]
    coverage: Decimal
    ramp: list[RampStepSchema]
    bandit: BanditSchema | None
    rollback_policy: RollbackPolicySchema
    salt: str
    allocation: dict[str, Decimal] = Field(
        description="Current effective share of each variant (ramp step, bandit weights)."
    )
    treatment_share: Decimal
    ramp_step: int
    ramp_held: bool
    created_at: datetime
    started_at: datetime | None
    step_started_at: datetime | None
    ended_at: datetime | None
    winner: str | None
    version: int

    @classmethod
    def of(cls, experiment: Experiment) -> ExperimentPublic:
        """Build from the domain object."""
        spec = experiment.spec
        return cls(
            id=experiment.id,
            name=spec.name,
            model_name=spec.model_name,
            description=spec.description,
            status=experiment.status,
            strategy=spec.strategy,
            variants=[VariantSchema.of(v) for v in spec.variants],
            metrics=[MetricSchema.of(m) for m in spec.metrics],
            coverage=spec.coverage,
            ramp=[RampStepSchema.of(s) for s in spec.ramp],
            bandit=BanditSchema.of(spec.bandit) if spec.bandit is not None else None,
            rollback_policy=RollbackPolicySchema.of(spec.rollback_policy),
            salt=experiment.salt,
            allocation={
                v.name: w for v, w in zip(spec.variants, experiment.allocation, strict=True)
            },
            treatment_share=experiment.treatment_share,
            ramp_step=experiment.ramp_step,
            ramp_held=experiment.ramp_held,
            created_at=experiment.created_at,
            started_at=experiment.started_at,
            step_started_at=experiment.step_started_at,
            ended_at=experiment.ended_at,
            winner=experiment.winner,
            version=experiment.version,
        )


# ---------------------------------------------------------------------- lifecycle bodies


class StopRequest(BaseModel):
    """Why an experiment is stopped without a winner."""

    model_config = _FORBID

    reason: str = Field(default="", max_length=2_000)


class CompleteRequest(BaseModel):
    """The winning variant, if any; its model version is promoted."""

    model_config = _FORBID

    winner: Name | None = None


class RollbackRequest(BaseModel):
    """A manual rollback needs a reason for the audit log."""

    model_config = _FORBID

    reason: str = Field(min_length=1, max_length=2_000)


class RampRequest(BaseModel):
    """Advance a ramp when its minimums are met, or regardless with ``force``."""

    model_config = _FORBID

    force: bool = False


class HoldRequest(BaseModel):
    """Why a ramp is held or released."""

    model_config = _FORBID

    reason: str = Field(default="", max_length=2_000)


class RampDecisionPublic(BaseModel):
    """What a ramp evaluation decided."""

    action: RampAction
    reason: RampReason
    detail: str
    step_index: int
    traffic: Decimal

    @classmethod
    def of(cls, decision: RampDecision) -> RampDecisionPublic:
        """Build from the domain object."""
        return cls(
            action=decision.action,
            reason=decision.reason,
            detail=decision.detail,
            step_index=decision.step_index,
            traffic=decision.traffic,
        )


# ---------------------------------------------------------------------- assignment


class AssignmentPublic(BaseModel):
    """Where one unit's requests go."""

    experiment_id: str
    unit_id: str
    variant: str
    model_version: str
    in_experiment: bool = Field(
        description="False when the unit got the control outside the running experiment."
    )

    @classmethod
    def of(cls, assignment: Assignment, unit_id: str) -> AssignmentPublic:
        """Build from the domain object."""
        return cls(
            experiment_id=assignment.experiment_id,
            unit_id=unit_id,
            variant=assignment.variant,
            model_version=assignment.model_version,
            in_experiment=assignment.in_experiment,
        )


class AssignmentBatchRequest(BaseModel):
    """Unit ids to route at once."""

    model_config = _FORBID

    unit_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class AssignmentBatchPublic(BaseModel):
    """The variant of each unit, in the order the ids were given."""

    experiment_id: str
    variants: list[str]
    model_versions: dict[str, str] = Field(description="Model version served by each variant.")


# ---------------------------------------------------------------------- ingestion


class ObservationIn(BaseModel):
    """An exposure (no metric) or an outcome of one unit.

    An outcome may leave out ``variant`` when the platform served the unit (``/predict``):
    the arm is then the one that served ``request_id``, or without one the arm that served
    the unit's latest request. An exposure always names its variant.
    """

    model_config = _FORBID

    event_id: Name
    unit_id: Name
    variant: Name | None = None
    request_id: Name | None = None
    time: AwareDatetime
    metric: Name | None = None
    value: FiniteFloat | None = None
    covariate: FiniteFloat | None = None

    @model_validator(mode="after")
    def _exposures_name_their_variant(self) -> ObservationIn:
        if self.variant is None and self.metric is None:
            raise ValueError(
                "an exposure (no metric) must name its variant; only outcomes may be "
                "attributed by request_id or unit_id"
            )
        return self

    def to_pending(self) -> PendingOutcome:
        """The domain observation, marked for attribution when it names no variant."""
        observation = Observation(
            event_id=self.event_id,
            unit_id=self.unit_id,
            variant=self.variant or "",
            time=self.time,
            metric=self.metric,
            value=self.value,
            covariate=self.covariate,
        )
        return PendingOutcome(observation, self.request_id, resolve=self.variant is None)


class IngestRequest(BaseModel):
    """A batch of observations; a retried batch (same ``batch_id``) is counted once."""

    model_config = _FORBID

    batch_id: Name | None = None
    observations: list[ObservationIn] = Field(min_length=1, max_length=MAX_BATCH)


class GuardrailCheckPublic(BaseModel):
    """One guardrail metric of one treatment, checked against the control."""

    metric: str
    variant: str
    status: GuardrailStatus
    reason: str
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    p_value: float | None
    threshold_breached: bool
    consecutive_breaches: int

    @classmethod
    def of(cls, check: GuardrailCheck) -> GuardrailCheckPublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(check))


class RollbackDecisionPublic(BaseModel):
    """The outcome of checking an experiment's guardrails."""

    experiment_id: str
    action: RollbackAction
    reason: str
    checks: list[GuardrailCheckPublic]
    at: datetime

    @classmethod
    def of(cls, decision: RollbackDecision) -> RollbackDecisionPublic:
        """Build from the domain object."""
        return cls(
            experiment_id=decision.experiment_id,
            action=decision.action,
            reason=decision.reason,
            checks=[GuardrailCheckPublic.of(c) for c in decision.checks],
            at=decision.at,
        )


class IngestResultPublic(BaseModel):
    """What an ingestion counted, and the guardrail check that followed it."""

    accepted: int
    duplicates: int
    guardrails: RollbackDecisionPublic | None = Field(
        default=None,
        description="The guardrail check run after the batch; null when the experiment has "
        "no guardrail or the batch added nothing new.",
    )

    @classmethod
    def of(cls, result: IngestResult, check: RollbackDecision | None) -> IngestResultPublic:
        """Build from the domain objects."""
        return cls(
            accepted=result.accepted,
            duplicates=result.duplicates,
            guardrails=RollbackDecisionPublic.of(check) if check is not None else None,
        )


class TickReportPublic(BaseModel):
    """What one check of an experiment did: guardrails, then ramp or bandit."""

    experiment_id: str
    guardrails: RollbackDecisionPublic
    ramp: RampDecisionPublic | None
    reweighted: bool

    @classmethod
    def of(cls, report: TickReport) -> TickReportPublic:
        """Build from the domain object."""
        return cls(
            experiment_id=report.experiment_id,
            guardrails=RollbackDecisionPublic.of(report.guardrails),
            ramp=RampDecisionPublic.of(report.ramp) if report.ramp is not None else None,
            reweighted=report.reweighted,
        )


# ---------------------------------------------------------------------- decision log


class DecisionPublic(BaseModel):
    """One entry of an experiment's decision log (the audit trail)."""

    id: int
    experiment_id: str
    at: datetime
    kind: str = Field(description="rollback, guardrail, ramp, bandit or lifecycle.")
    outcome: str
    reason: str
    evidence: dict[str, Any]

    @classmethod
    def of(cls, decision: Decision) -> DecisionPublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(decision))
