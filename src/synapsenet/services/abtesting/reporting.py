"""Experiment results: every metric of every treatment against the control, in one report.

Comparisons are sequential (always valid) by default, so the page may be read at any time;
CUPED applies when every observation of a metric carried its pre-period covariate; p-values
are corrected across metrics and treatments; a sample-ratio-mismatch check guards the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from synapsenet.services.abtesting.models import Experiment, ExperimentStatus
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.results import (
    ComparisonResult,
    CorrectionMethod,
    SRMResult,
    Verdict,
)
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats
from synapsenet.services.abtesting.store import MetricAggregate


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One arm's traffic.

    Attributes:
        name: The arm.
        model_version: The model version it serves.
        is_control: Whether it is the baseline.
        weight: Its current effective share of traffic.
        exposures: Exposures recorded so far.
    """

    name: str
    model_version: str
    is_control: bool
    weight: Decimal
    exposures: int


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric of one treatment against the control.

    Attributes:
        metric: The metric.
        variant: The treatment arm.
        guardrail: Whether the metric guards the rollout.
        comparison: The full comparison (means, lifts with intervals, tests).
        adjusted_p_value: The p-value after the multiple-testing correction.
        significant: Whether the corrected p-value is below alpha.
        cuped: Whether CUPED variance reduction was applied.
    """

    metric: str
    variant: str
    guardrail: bool
    comparison: ComparisonResult
    adjusted_p_value: float | None
    significant: bool
    cuped: bool

    @property
    def verdict(self) -> Verdict:
        """Better or worse only when significant after the correction; else inconclusive."""
        return self.comparison.verdict if self.significant else Verdict.INCONCLUSIVE


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    """The results page of an experiment.

    Attributes:
        experiment_id: The experiment.
        name: Its name.
        status: Its lifecycle status.
        computed_at: When the report was computed.
        alpha: Significance level.
        sequential: Whether comparisons are always valid (safe to peek).
        correction: The multiple-testing correction applied across all comparisons.
        variants: Traffic per arm.
        metrics: One entry per (metric, treatment).
        srm: The sample-ratio-mismatch check, or None when the allocation changed during the
            experiment (ramps, bandits), where fixed expected ratios do not exist.
    """

    experiment_id: str
    name: str
    status: ExperimentStatus
    computed_at: datetime
    alpha: float
    sequential: bool
    correction: CorrectionMethod
    variants: tuple[VariantSummary, ...]
    metrics: tuple[MetricResult, ...]
    srm: SRMResult | None


def _arm_statistics(
    aggregate: MetricAggregate | None,
) -> tuple[SampleStats, CovariateStats | None]:
    if aggregate is None:
        return SampleStats(0, 0.0, 0.0), None
    covariate = aggregate.covariate
    # CUPED needs the covariate of every unit; a partial one would bias the adjustment.
    if covariate is not None and covariate.n != aggregate.outcome.n:
        covariate = None
    return aggregate.outcome, covariate


def compute_results(
    experiment: Experiment,
    aggregates: list[MetricAggregate],
    exposures: dict[str, int],
    analyzer: StatisticalAnalyzer,
    *,
    now: datetime,
    sequential: bool = True,
    correction: CorrectionMethod = CorrectionMethod.HOLM,
) -> ExperimentResults:
    """Build the results page from stored aggregates.

    Args:
        experiment: The experiment.
        aggregates: Its stored metric statistics.
        exposures: Exposures per variant.
        analyzer: The statistics engine.
        now: When the report is computed.
        sequential: Use always-valid inference (default; fixed-horizon when False).
        correction: Multiple-testing correction across every (metric, treatment).

    Returns:
        The report; metrics without data appear with a ``NO_DATA`` code.
    """
    by_key = {(a.variant, a.metric): a for a in aggregates}
    control = experiment.control
    comparisons: list[tuple[str, str, bool, ComparisonResult, bool]] = []
    for metric in experiment.spec.metrics:
        control_outcome, control_cov = _arm_statistics(by_key.get((control.name, metric.name)))
        for variant in experiment.variants:
            if variant.is_control:
                continue
            outcome, cov = _arm_statistics(by_key.get((variant.name, metric.name)))
            use_cuped = control_cov is not None and cov is not None
            result = analyzer.compare(
                control_cov if use_cuped and control_cov is not None else control_outcome,
                cov if use_cuped and cov is not None else outcome,
                kind=metric.kind,
                direction=metric.direction,
                sequential=sequential,
            )
            comparisons.append((metric.name, variant.name, metric.guardrail, result, use_cuped))
    p_values = [c[3].p_value for c in comparisons]
    present = [p for p in p_values if p is not None]
    corrected = analyzer.adjust_p_values(present, method=correction) if present else None
    verdicts = iter(
        zip(corrected.adjusted, corrected.rejected, strict=True) if corrected is not None else ()
    )
    metric_results = []
    for (metric_name, variant_name, guardrail, result, use_cuped), p in zip(
        comparisons, p_values, strict=True
    ):
        adjusted, rejected = next(verdicts) if p is not None else (None, False)
        metric_results.append(
            MetricResult(
                metric=metric_name,
                variant=variant_name,
                guardrail=guardrail,
                comparison=result,
                adjusted_p_value=adjusted,
                significant=rejected,
                cuped=use_cuped,
            )
        )
    counts = [exposures.get(v.name, 0) for v in experiment.variants]
    allocation_changed = (
        experiment.spec.strategy.is_bandit
        or experiment.ramp_step > 0
        or experiment.status is ExperimentStatus.ROLLED_BACK
    )
    srm = None
    if not allocation_changed and experiment.status is not ExperimentStatus.DRAFT:
        srm = analyzer.sample_ratio_mismatch(counts, list(experiment.allocation))
    return ExperimentResults(
        experiment_id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        computed_at=now,
        alpha=analyzer.alpha,
        sequential=sequential,
        correction=correction,
        variants=tuple(
            VariantSummary(
                name=v.name,
                model_version=v.model_version,
                is_control=v.is_control,
                weight=w,
                exposures=c,
            )
            for v, w, c in zip(experiment.variants, experiment.allocation, counts, strict=True)
        ),
        metrics=tuple(metric_results),
        srm=srm,
    )
