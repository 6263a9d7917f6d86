"""``StatisticalAnalyzer``: the one object the engine, rollback manager and API call.

It holds the configuration (alpha, the mSPRT mixture, the SRM alpha) and delegates each
computation to the pure functions of the sibling modules, validating arguments once with
one message format. Methods never do I/O and never raise on degenerate data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from synapsenet.services.abtesting.statistics import (
    comparison,
    corrections,
    frequentist,
    srm,
    variance_reduction,
)
from synapsenet.services.abtesting.statistics import sequential as msprt
from synapsenet.services.abtesting.statistics._planning import PlanningMixin
from synapsenet.services.abtesting.statistics._validation import (
    check_count,
    check_finite,
    check_positive,
    check_unit_interval,
    coerce_enum,
    invalid,
)
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    ComparisonResult,
    CorrectionMethod,
    CorrectionResult,
    CupedAdjustment,
    Direction,
    IntervalEstimate,
    MarginHypothesis,
    MarginTestResult,
    MetricKind,
    SequentialResult,
    SignificanceResult,
    SRMResult,
)
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats

_OWNER = "StatisticalAnalyzer"


class StatisticalAnalyzer(PlanningMixin):
    """The statistics of A/B tests, as pure functions over sufficient statistics.

    Fixed-horizon tests and lifts, always-valid sequential inference, guardrail margin
    tests, CUPED, sample-ratio mismatch, multiple-testing corrections, power and sample size.

    The effect is always ``treatment - control``. Configure once, then call methods; every
    method is a pure function of its arguments and this configuration.

    Args:
        alpha: Significance level of tests and one minus the confidence of intervals.
        mixture_variance: Fixed mSPRT mixing variance tau^2 in squared metric units (e.g.
            the square of the smallest effect worth detecting). Only sensible when the
            analyzer serves one metric; ``None`` (default) tunes tau^2 per comparison so the
            confidence sequence is tightest at ``sequential_tuning_n`` total units.
        sequential_tuning_n: Planned total sample size for the default mixture (gbstats'
            ``sequential_tuning_parameter``, default 5000).
        srm_alpha: Significance level of the sample-ratio-mismatch check.

    Raises:
        InvalidError: If a parameter is out of range.

    Example:
        >>> analyzer = StatisticalAnalyzer(alpha=0.05)
        >>> control = SampleStats.from_successes(n=1000, successes=100)
        >>> treatment = SampleStats.from_successes(n=1000, successes=130)
        >>> analyzer.compare(control, treatment, kind="binary").significant
        True
    """

    def __init__(
        self,
        alpha: float = 0.05,
        *,
        mixture_variance: float | None = None,
        sequential_tuning_n: int = msprt.DEFAULT_TUNING_N,
        srm_alpha: float = srm.DEFAULT_SRM_ALPHA,
    ) -> None:
        self.alpha = check_unit_interval(alpha, "alpha", _OWNER)
        self.mixture_variance = (
            None
            if mixture_variance is None
            else check_positive(mixture_variance, "mixture_variance", _OWNER)
        )
        self.sequential_tuning_n = check_count(
            sequential_tuning_n, "sequential_tuning_n", _OWNER, minimum=1
        )
        self.srm_alpha = check_unit_interval(srm_alpha, "srm_alpha", _OWNER)

    def __repr__(self) -> str:
        return (
            f"StatisticalAnalyzer(alpha={self.alpha!r}, mixture_variance="
            f"{self.mixture_variance!r}, sequential_tuning_n={self.sequential_tuning_n!r}, "
            f"srm_alpha={self.srm_alpha!r})"
        )

    # -- fixed-horizon tests and lifts ------------------------------------------------------

    def z_test(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> SignificanceResult:
        """Two-proportion z-test with pooled standard error (binary outcomes).

        See :func:`.frequentist.two_proportion_z_test`.
        """
        _check_arms(control, treatment, "z_test", binary=True)
        return frequentist.two_proportion_z_test(
            control, treatment, alternative=_alternative(alternative)
        )

    def welch_t_test(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> SignificanceResult:
        """Welch's t-test with Welch-Satterthwaite df. See :func:`.frequentist.welch_t_test`."""
        _check_arms(control, treatment, "welch_t_test")
        return frequentist.welch_t_test(control, treatment, alternative=_alternative(alternative))

    def absolute_lift(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> IntervalEstimate:
        """``treatment - control`` with a CI. See :func:`.frequentist.absolute_lift`."""
        metric_kind = _kind(kind)
        _check_arms(control, treatment, "absolute_lift", binary=metric_kind is MetricKind.BINARY)
        return frequentist.absolute_lift(control, treatment, alpha=self.alpha, kind=metric_kind)

    def relative_lift(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> IntervalEstimate:
        """Relative lift with a delta-method CI. See :func:`.frequentist.relative_lift`."""
        metric_kind = _kind(kind)
        _check_arms(control, treatment, "relative_lift", binary=metric_kind is MetricKind.BINARY)
        return frequentist.relative_lift(control, treatment, alpha=self.alpha, kind=metric_kind)

    # -- always-valid sequential inference -----------------------------------------------------

    def sequential_test(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        alternative: Alternative | str = Alternative.TWO_SIDED,
        null_value: float = 0.0,
        relative: bool = False,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> SequentialResult:
        """Always-valid mSPRT p-value and confidence sequence, safe to check at every look.

        See :func:`.sequential.sequential_test`; the mixture comes from the constructor.
        """
        metric_kind = _kind(kind)
        _check_arms(control, treatment, "sequential_test", binary=metric_kind is MetricKind.BINARY)
        return self._mixture_test(
            control,
            treatment,
            _alternative(alternative),
            null_value=check_finite(null_value, "null_value", _OWNER),
            relative=relative,
            kind=metric_kind,
        )

    def _mixture_test(
        self,
        control: SampleStats,
        treatment: SampleStats,
        alternative: Alternative,
        *,
        null_value: float = 0.0,
        relative: bool = False,
        kind: MetricKind = MetricKind.CONTINUOUS,
    ) -> SequentialResult:
        return msprt.sequential_test(
            control,
            treatment,
            alpha=self.alpha,
            alternative=alternative,
            null_value=null_value,
            relative=relative,
            mixture_variance=self.mixture_variance,
            tuning_n=self.sequential_tuning_n,
            kind=kind,
        )

    # -- guardrails ---------------------------------------------------------------------------

    def non_inferiority(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        margin: float,
        direction: Direction | str = Direction.HIGHER_IS_BETTER,
        relative: bool = False,
        sequential: bool = False,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> MarginTestResult:
        """Test that the treatment is not worse than control by more than ``margin``.

        ``rejected`` is True when non-inferiority is shown. Args as in :meth:`degradation`.
        """
        return self._margin_test(
            MarginHypothesis.NON_INFERIORITY,
            control,
            treatment,
            margin=margin,
            direction=direction,
            relative=relative,
            sequential=sequential,
            kind=kind,
        )

    def degradation(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        margin: float,
        direction: Direction | str = Direction.HIGHER_IS_BETTER,
        relative: bool = False,
        sequential: bool = True,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> MarginTestResult:
        """Test for a degradation beyond ``margin``: the rollback test of a guardrail.

        ``rejected`` is True when there is evidence that the treatment is worse than control
        by more than ``margin`` in the metric's ``direction``. Sequential by default, so a
        guardrail may be checked after every batch with false rollbacks kept below alpha.

        Args:
            control: Outcomes of the control arm.
            treatment: Outcomes of the treatment arm.
            margin: Allowed degradation, >= 0: metric units, or a fraction of the control
                mean when ``relative`` (0.1 = 10%).
            direction: Which way the metric improves.
            relative: Whether the margin is relative to the control mean.
            sequential: Use the always-valid one-sided mSPRT instead of a fixed-horizon test.
            kind: The metric's kind (binary outcomes are validated as 0/1).

        Returns:
            The one-sided test result.
        """
        return self._margin_test(
            MarginHypothesis.DEGRADATION,
            control,
            treatment,
            margin=margin,
            direction=direction,
            relative=relative,
            sequential=sequential,
            kind=kind,
        )

    def _margin_test(
        self,
        hypothesis: MarginHypothesis,
        control: SampleStats,
        treatment: SampleStats,
        *,
        margin: float,
        direction: Direction | str,
        relative: bool,
        sequential: bool,
        kind: MetricKind | str,
    ) -> MarginTestResult:
        metric_kind = _kind(kind)
        _check_arms(control, treatment, hypothesis.value, binary=metric_kind is MetricKind.BINARY)
        result = frequentist.margin_test(
            control,
            treatment,
            hypothesis=hypothesis,
            direction=coerce_enum(Direction, direction, "direction", _OWNER),
            margin=check_positive(margin, "margin", _OWNER, allow_zero=True),
            relative=relative,
            alpha=self.alpha,
            kind=metric_kind,
        )
        if not sequential:
            return result
        always_valid = self._mixture_test(
            control,
            treatment,
            result.alternative,
            null_value=result.null_value,
            relative=relative,
            kind=metric_kind,
        )
        p = always_valid.p_value
        return replace(
            result,
            sequential=True,
            statistic=None,
            p_value=p,
            bound=(
                always_valid.ci_lower
                if result.alternative is Alternative.GREATER
                else always_valid.ci_upper
            ),
            rejected=p is not None and p < self.alpha,
        )

    # -- other checks ---------------------------------------------------------------------------

    def sample_ratio_mismatch(
        self, observed: Sequence[int], weights: Sequence[Decimal | float]
    ) -> SRMResult:
        """Chi-square check of units per variant against the configured weights.

        See :func:`.srm.sample_ratio_mismatch`; uses ``srm_alpha``.
        """
        return srm.sample_ratio_mismatch(observed, weights, alpha=self.srm_alpha)

    def cuped(self, control: CovariateStats, treatment: CovariateStats) -> CupedAdjustment:
        """CUPED-adjust both arms. See :func:`.variance_reduction.cuped_adjust`."""
        for name, arm in (("control", control), ("treatment", treatment)):
            if not isinstance(arm, CovariateStats):
                raise invalid(name, f"{_OWNER}.cuped", "a CovariateStats", arm)
        return variance_reduction.cuped_adjust(control, treatment)

    def adjust_p_values(
        self,
        p_values: Sequence[float] | NDArray[np.float64],
        *,
        method: CorrectionMethod | str = CorrectionMethod.HOLM,
    ) -> CorrectionResult:
        """Holm or Benjamini-Hochberg adjustment at ``alpha``.

        See :func:`.corrections.adjust_p_values`.
        """
        correction = coerce_enum(CorrectionMethod, method, "method", _OWNER)
        return corrections.adjust_p_values(p_values, method=correction, alpha=self.alpha)

    # -- the results page ------------------------------------------------------------------

    def compare(
        self,
        control: SampleStats | CovariateStats,
        treatment: SampleStats | CovariateStats,
        *,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
        direction: Direction | str = Direction.HIGHER_IS_BETTER,
        sequential: bool = False,
    ) -> ComparisonResult:
        """Compare one metric between treatment and control: everything the results page shows.

        Passing :class:`CovariateStats` for both arms applies CUPED first; every estimate and
        test then runs on the adjusted statistics (the reported means stay raw). The test is
        the pooled two-proportion z-test for unadjusted binary metrics and Welch's t-test
        otherwise (CUPED-adjusted outcomes are no longer 0/1).

        Args:
            control: Statistics of the control arm.
            treatment: Statistics of the treatment arm (same type as ``control``).
            kind: The metric's kind.
            direction: Which way the metric improves (decides the verdict).
            sequential: Decide significance with the always-valid mSPRT, so the result may
                be read at every look; also reports confidence sequences.

        Returns:
            The comparison; degenerate data gives a code and ``verdict=INCONCLUSIVE``.

        Raises:
            InvalidError: If the arms are of different types, or binary outcomes are not 0/1.
        """
        metric_kind = _kind(kind)
        binary = metric_kind is MetricKind.BINARY
        if isinstance(control, CovariateStats) and isinstance(treatment, CovariateStats):
            _check_arms(control.outcome, treatment.outcome, "compare", binary=binary)
        elif isinstance(control, SampleStats) and isinstance(treatment, SampleStats):
            _check_arms(control, treatment, "compare", binary=binary)
        else:
            raise invalid(
                "treatment",
                f"{_OWNER}.compare",
                "of the same type as 'control' (both SampleStats or both CovariateStats)",
                type(treatment).__name__,
            )
        return comparison.compare_arms(
            control,
            treatment,
            kind=metric_kind,
            direction=coerce_enum(Direction, direction, "direction", _OWNER),
            sequential=sequential,
            alpha=self.alpha,
            mixture_variance=self.mixture_variance,
            tuning_n=self.sequential_tuning_n,
        )


def _alternative(value: Alternative | str) -> Alternative:
    return coerce_enum(Alternative, value, "alternative", _OWNER)


def _kind(value: MetricKind | str) -> MetricKind:
    return coerce_enum(MetricKind, value, "kind", _OWNER)


def _check_arms(
    control: SampleStats, treatment: SampleStats, method: str, *, binary: bool = False
) -> None:
    """Reject arguments that are not sufficient statistics, or not 0/1 data when binary."""
    owner = f"{_OWNER}.{method}"
    for name, arm in (("control", control), ("treatment", treatment)):
        if not isinstance(arm, SampleStats):
            raise invalid(name, owner, "a SampleStats", type(arm).__name__)
        if binary and not arm.is_binary:
            raise invalid(
                name,
                owner,
                "binary outcomes (sum == sum_squares, an integer in [0, n])",
                arm,
            )
