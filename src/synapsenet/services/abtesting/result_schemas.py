"""Response schemas of the results page: lifts, intervals, tests and the SRM check.

Undefined numbers (no data, zero variance) are ``null`` with a ``code`` and a ``reason``,
never NaN; a ``null`` bound of a confidence sequence means unbounded on that side.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from synapsenet.services.abtesting.models import ExperimentStatus, MetricDirection, MetricKind
from synapsenet.services.abtesting.reporting import ExperimentResults, MetricResult
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    CorrectionMethod,
    CupedAdjustment,
    IntervalEstimate,
    ResultCode,
    SequentialResult,
    SignificanceResult,
    SRMResult,
    Verdict,
)


class IntervalPublic(BaseModel):
    """A point estimate with its standard error and two-sided confidence interval."""

    code: ResultCode
    reason: str
    confidence_level: float
    estimate: float | None
    standard_error: float | None
    ci_lower: float | None
    ci_upper: float | None

    @classmethod
    def of(cls, interval: IntervalEstimate) -> IntervalPublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(interval))


class SignificancePublic(BaseModel):
    """The fixed-horizon test of ``treatment - control = 0``."""

    code: ResultCode
    reason: str
    test: str
    alternative: Alternative
    statistic: float | None
    p_value: float | None
    df: float | None

    @classmethod
    def of(cls, result: SignificanceResult) -> SignificancePublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(result))


class SequentialPublic(BaseModel):
    """An always-valid test and confidence sequence (null bounds are unbounded)."""

    code: ResultCode
    reason: str
    alternative: Alternative
    null_value: float
    confidence_level: float
    estimate: float | None
    standard_error: float | None
    mixture_variance: float | None
    p_value: float | None
    ci_lower: float | None
    ci_upper: float | None

    @classmethod
    def of(cls, result: SequentialResult) -> SequentialPublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(result))


class CupedPublic(BaseModel):
    """The CUPED variance reduction applied to a comparison."""

    code: ResultCode
    reason: str
    theta: float | None
    correlation: float | None
    variance_reduction: float | None

    @classmethod
    def of(cls, cuped: CupedAdjustment) -> CupedPublic:
        """Build from the domain object."""
        return cls(
            code=cuped.code,
            reason=cuped.reason,
            theta=cuped.theta,
            correlation=cuped.correlation,
            variance_reduction=cuped.variance_reduction,
        )


class MetricResultPublic(BaseModel):
    """One metric of one treatment against the control."""

    metric: str
    variant: str
    guardrail: bool
    code: ResultCode
    reason: str
    kind: MetricKind
    direction: MetricDirection
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    absolute_lift: IntervalPublic
    relative_lift: IntervalPublic
    test: SignificancePublic
    sequential: SequentialPublic | None
    sequential_relative: SequentialPublic | None
    p_value: float | None = Field(description="Always-valid when the results are sequential.")
    adjusted_p_value: float | None = Field(description="After the multiple-testing correction.")
    significant: bool = Field(description="Whether the adjusted p-value is below alpha.")
    verdict: Verdict = Field(description="Better or worse when significant after correction.")
    cuped: bool = Field(description="Whether CUPED variance reduction was applied.")
    cuped_adjustment: CupedPublic | None

    @classmethod
    def of(cls, result: MetricResult) -> MetricResultPublic:
        """Build from the domain object."""
        c = result.comparison
        return cls(
            metric=result.metric,
            variant=result.variant,
            guardrail=result.guardrail,
            code=c.code,
            reason=c.reason,
            kind=c.kind,
            direction=c.direction,
            control_n=c.control_n,
            treatment_n=c.treatment_n,
            control_mean=c.control_mean,
            treatment_mean=c.treatment_mean,
            absolute_lift=IntervalPublic.of(c.absolute_lift),
            relative_lift=IntervalPublic.of(c.relative_lift),
            test=SignificancePublic.of(c.test),
            sequential=SequentialPublic.of(c.sequential) if c.sequential else None,
            sequential_relative=(
                SequentialPublic.of(c.sequential_relative) if c.sequential_relative else None
            ),
            p_value=c.p_value,
            adjusted_p_value=result.adjusted_p_value,
            significant=result.significant,
            verdict=result.verdict,
            cuped=result.cuped,
            cuped_adjustment=CupedPublic.of(c.cuped) if c.cuped is not None else None,
        )


class VariantSummaryPublic(BaseModel):
    """One arm's traffic."""

    name: str
    model_version: str
    is_control: bool
    weight: Decimal
    exposures: int


class SRMPublic(BaseModel):
    """The sample-ratio-mismatch check of the assignment counts."""

    code: ResultCode
    reason: str
    alpha: float
    observed: list[int]
    expected: list[float]
    statistic: float | None
    df: int | None
    p_value: float | None
    mismatch: bool

    @classmethod
    def of(cls, srm: SRMResult) -> SRMPublic:
        """Build from the domain object."""
        return cls.model_validate(asdict(srm))


class ResultsPublic(BaseModel):
    """The results page: every metric of every treatment against the control."""

    experiment_id: str
    name: str
    status: ExperimentStatus
    computed_at: datetime
    alpha: float
    sequential: bool
    correction: CorrectionMethod
    variants: list[VariantSummaryPublic]
    metrics: list[MetricResultPublic]
    srm: SRMPublic | None = Field(
        description="Null when the allocation changed during the experiment (ramps, "
        "bandits, rollbacks) or it has not started."
    )

    @classmethod
    def of(cls, results: ExperimentResults) -> ResultsPublic:
        """Build from the domain object."""
        return cls(
            experiment_id=results.experiment_id,
            name=results.name,
            status=results.status,
            computed_at=results.computed_at,
            alpha=results.alpha,
            sequential=results.sequential,
            correction=results.correction,
            variants=[VariantSummaryPublic.model_validate(asdict(v)) for v in results.variants],
            metrics=[MetricResultPublic.of(m) for m in results.metrics],
            srm=SRMPublic.of(results.srm) if results.srm is not None else None,
        )
