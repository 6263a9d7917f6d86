"""One metric, treatment against control: the assembly behind the results page.

Chooses the test for the metric (pooled z-test for raw binary outcomes, Welch otherwise),
applies CUPED when covariates are given, adds lifts with intervals and, for sequential
experiments, the always-valid p-value and confidence sequences, and condenses it all into a
verdict in the metric's direction.
"""

from __future__ import annotations

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import frequentist, variance_reduction
from synapsenet.services.abtesting.statistics.results import (
    ComparisonResult,
    CupedAdjustment,
    Direction,
    MetricKind,
    SequentialResult,
    Verdict,
)
from synapsenet.services.abtesting.statistics.sequential import (
    DEFAULT_TUNING_N,
    sequential_test,
)
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats


def verdict(significant: bool, effect: float, direction: Direction) -> Verdict:
    """Better or worse in the metric's direction when significant, else inconclusive."""
    if not significant or effect == 0.0:
        return Verdict.INCONCLUSIVE
    improves = effect > 0.0 if direction is Direction.HIGHER_IS_BETTER else effect < 0.0
    return Verdict.BETTER if improves else Verdict.WORSE


def compare_arms(
    control: SampleStats | CovariateStats,
    treatment: SampleStats | CovariateStats,
    *,
    kind: MetricKind = MetricKind.CONTINUOUS,
    direction: Direction = Direction.HIGHER_IS_BETTER,
    sequential: bool = False,
    alpha: float = 0.05,
    mixture_variance: float | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
) -> ComparisonResult:
    """Compare one metric between two arms.

    Args:
        control: Statistics of the control arm; :class:`CovariateStats` (for both arms)
            turns on CUPED.
        treatment: Statistics of the treatment arm, of the same type as ``control``.
        kind: The metric's kind.
        direction: Which way the metric improves.
        sequential: Decide significance with the always-valid mSPRT.
        alpha: Significance level.
        mixture_variance: Fixed mSPRT tau^2, or ``None`` to tune it to ``tuning_n``.
        tuning_n: Total sample size at which the default confidence sequence is tightest.

    Returns:
        The comparison (see :class:`ComparisonResult`).
    """
    cuped: CupedAdjustment | None = None
    if isinstance(control, CovariateStats) and isinstance(treatment, CovariateStats):
        raw_c, raw_t = control.outcome, treatment.outcome
        cuped = variance_reduction.cuped_adjust(control, treatment)
        arm_c, arm_t = cuped.control, cuped.treatment
    elif isinstance(control, SampleStats) and isinstance(treatment, SampleStats):
        raw_c, raw_t = arm_c, arm_t = control, treatment
    else:
        raise InvalidError(
            "compare_arms needs both arms as SampleStats or both as CovariateStats. "
            f"Got {type(control).__name__} and {type(treatment).__name__} instead.",
            field="treatment",
        )
    # CUPED-adjusted binary outcomes are not 0/1 any more: analyse them as continuous.
    adjusted = cuped is not None and cuped.theta is not None
    analysed_as = MetricKind.CONTINUOUS if adjusted else kind
    if analysed_as is MetricKind.BINARY:
        test = frequentist.two_proportion_z_test(arm_c, arm_t)
    else:
        test = frequentist.welch_t_test(arm_c, arm_t)
    absolute = frequentist.absolute_lift(arm_c, arm_t, alpha=alpha, kind=analysed_as)
    relative = frequentist.relative_lift(arm_c, arm_t, alpha=alpha, kind=analysed_as)
    always_valid: SequentialResult | None = None
    always_valid_relative: SequentialResult | None = None
    code, reason, p = test.code, test.reason, test.p_value
    if sequential:
        always_valid, always_valid_relative = (
            sequential_test(
                arm_c,
                arm_t,
                alpha=alpha,
                relative=scale_free,
                mixture_variance=mixture_variance,
                tuning_n=tuning_n,
                kind=analysed_as,
            )
            for scale_free in (False, True)
        )
        code, reason, p = always_valid.code, always_valid.reason, always_valid.p_value
    significant = p is not None and p < alpha
    return ComparisonResult(
        code=code,
        reason=reason,
        kind=kind,
        direction=direction,
        control_n=raw_c.n,
        treatment_n=raw_t.n,
        control_mean=raw_c.mean if raw_c.n else None,
        treatment_mean=raw_t.mean if raw_t.n else None,
        absolute_lift=absolute,
        relative_lift=relative,
        test=test,
        sequential=always_valid,
        sequential_relative=always_valid_relative,
        cuped=cuped,
        p_value=p,
        significant=significant,
        verdict=verdict(significant, arm_t.mean - arm_c.mean, direction),
    )
