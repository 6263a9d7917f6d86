"""Effect estimates shared by every test: the difference and the relative lift of means.

Each function first rules out degenerate arms and returns a :class:`Problem` (a result code
with a reason) instead of raising, so callers turn it into a result as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from synapsenet.services.abtesting.statistics.results import ResultCode
from synapsenet.services.abtesting.statistics.sufficient import SampleStats

MIN_UNITS_PER_ARM = 2
"""Below two units an arm has no variance estimate, so no test or interval exists."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an effect cannot be estimated."""

    code: ResultCode
    reason: str


@dataclass(frozen=True, slots=True)
class Effect:
    """An effect estimate, its sampling variance and (for differences) Welch's df.

    Attributes:
        estimate: The point estimate.
        variance: Sampling variance of the estimate (> 0).
        df: Welch-Satterthwaite degrees of freedom; ``None`` for the relative lift, whose
            delta-method interval is normal.
    """

    estimate: float
    variance: float
    df: float | None

    @property
    def standard_error(self) -> float:
        """Square root of ``variance``."""
        return math.sqrt(self.variance)


def check_arms(control: SampleStats, treatment: SampleStats) -> Problem | None:
    """Return the problem that makes any comparison of these arms undefined, if any."""
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n == 0:
            return Problem(ResultCode.NO_DATA, f"The {name} arm has no units yet.")
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < MIN_UNITS_PER_ARM:
            return Problem(
                ResultCode.INSUFFICIENT_SAMPLE,
                f"The {name} arm has {arm.n} unit; at least {MIN_UNITS_PER_ARM} per arm "
                "are needed to estimate a variance.",
            )
    return None


def arm_variance(arm: SampleStats, *, binary: bool = False) -> float:
    """Per-unit variance of an arm's outcome.

    Binary outcomes use the Bernoulli variance ``p (1 - p)``, as the Wald interval,
    statsmodels' ``"wald"`` methods and gbstats do; continuous ones the unbiased variance.
    """
    if binary:
        p = arm.mean
        return max(p * (1.0 - p), 0.0)
    return arm.variance


_ZERO_BASELINE = Problem(
    ResultCode.ZERO_BASELINE,
    "The control mean is 0 (or too close to it), so a relative lift is undefined.",
)
_ZERO_VARIANCE = Problem(
    ResultCode.ZERO_VARIANCE,
    "Both arms have constant outcomes, so the effect has no sampling variance.",
)


def difference(
    control: SampleStats, treatment: SampleStats, *, binary: bool = False
) -> Effect | Problem:
    """Difference of means ``treatment - control`` with unpooled (Welch) variance.

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        binary: Use the Bernoulli variance of 0/1 outcomes (see :func:`arm_variance`).

    Returns:
        The effect with Welch-Satterthwaite degrees of freedom, or the problem.
    """
    problem = check_arms(control, treatment)
    if problem is not None:
        return problem
    share_t = arm_variance(treatment, binary=binary) / treatment.n
    share_c = arm_variance(control, binary=binary) / control.n
    variance = share_t + share_c
    if variance <= 0.0:
        return _ZERO_VARIANCE
    df = variance**2 / (share_t**2 / (treatment.n - 1) + share_c**2 / (control.n - 1))
    return Effect(treatment.mean - control.mean, variance, df)


def relative_difference(
    control: SampleStats, treatment: SampleStats, *, binary: bool = False
) -> Effect | Problem:
    """Relative lift ``(treatment - control) / |control|`` with its delta-method variance.

    Dividing by ``|control|`` keeps a positive lift meaning "treatment is higher" even for
    metrics with a negative baseline. The delta method linearises the ratio of the two
    independent means: ``var = var_t / (n_t m_c^2) + m_t^2 var_c / (n_c m_c^4)``.

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        binary: Use the Bernoulli variance of 0/1 outcomes (see :func:`arm_variance`).

    Returns:
        The effect (normal, ``df=None``), or the problem.
    """
    problem = check_arms(control, treatment)
    if problem is not None:
        return problem
    baseline = control.mean
    scale = baseline * baseline
    if scale == 0.0:
        return _ZERO_BASELINE
    ratio = treatment.mean / baseline
    variance_t = arm_variance(treatment, binary=binary)
    variance_c = arm_variance(control, binary=binary)
    variance = (variance_t / treatment.n + ratio * ratio * variance_c / control.n) / scale
    estimate = (treatment.mean - baseline) / abs(baseline)
    if not (math.isfinite(variance) and math.isfinite(estimate)):
        return _ZERO_BASELINE
    if variance <= 0.0:
        return Problem(
            ResultCode.ZERO_VARIANCE,
            "The relative lift has no sampling variance: the treatment is constant and "
            "either the control is constant too or the treatment mean is 0.",
        )
    return Effect(estimate, variance, None)
