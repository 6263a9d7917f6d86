"""Sample-ratio mismatch: are units reaching the variants in the configured proportions?

A mismatch means assignment or logging is broken (bots filtered in one arm, a crashing
variant that drops exposures...), and then every other statistic of the experiment is
suspect. The check is Pearson's chi-square goodness of fit (same statistic and p-value as
``scipy.stats.chisquare``) at a strict alpha (0.001 by default), because it runs on every
look and a false alarm stops an experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from scipy import special

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics._validation import check_count, invalid
from synapsenet.services.abtesting.statistics.results import ResultCode, SRMResult

DEFAULT_SRM_ALPHA = 0.001
MIN_EXPECTED_COUNT = 5.0
"""Below this expected count per variant the chi-square approximation is unreliable."""

_OWNER = "sample_ratio_mismatch"


def _check_weight(weight: object) -> None:
    if isinstance(weight, Decimal):
        ok = weight.is_finite() and weight >= 0
    elif isinstance(weight, int | float) and not isinstance(weight, bool):
        ok = math.isfinite(weight) and weight >= 0
    else:
        ok = False
    if not ok:
        raise invalid("weights", _OWNER, "a sequence of finite Decimal or float >= 0", weight)


def _shares(weights: Sequence[Decimal | float]) -> list[float]:
    """Normalised weights; Decimal weights are divided exactly before converting."""
    for weight in weights:
        _check_weight(weight)
    decimals = [weight for weight in weights if isinstance(weight, Decimal)]
    if len(decimals) == len(weights):
        decimal_total = sum(decimals, Decimal(0))
        if decimal_total <= 0:
            raise invalid("weights", _OWNER, "a sequence with a positive sum", list(weights))
        return [float(weight / decimal_total) for weight in decimals]
    total = float(sum(float(weight) for weight in weights))
    if not total > 0.0:
        raise invalid("weights", _OWNER, "a sequence with a positive sum", list(weights))
    return [float(weight) / total for weight in weights]


def sample_ratio_mismatch(
    observed: Sequence[int],
    weights: Sequence[Decimal | float],
    *,
    alpha: float = DEFAULT_SRM_ALPHA,
) -> SRMResult:
    """Check observed units per variant against the configured traffic weights.

    Args:
        observed: Units assigned to each variant.
        weights: Configured traffic share of each variant, in the same order (Decimal or
            float; normalised to sum to 1).
        alpha: Significance level of the check.

    Returns:
        The chi-square statistic and p-value, and whether there is a mismatch; code
        ``NO_DATA`` without units and ``INSUFFICIENT_SAMPLE`` while an expected count is
        below 5 (reported, but never flagged).

    Raises:
        InvalidError: If the lengths differ, there are fewer than 2 variants, a count is
            negative or a weight is negative or non-finite.
    """
    if len(observed) != len(weights):
        raise InvalidError(
            f"The 'weights' parameter of {_OWNER} must have one weight per observed count "
            f"({len(observed)}). Got {len(weights)} weights instead.",
            field="weights",
        )
    if len(observed) < 2:
        raise invalid("observed", _OWNER, "a sequence of at least 2 counts", list(observed))
    counts = tuple(check_count(count, "observed", _OWNER) for count in observed)
    shares = _shares(weights)
    total = sum(counts)
    expected = tuple(total * share for share in shares)
    if total == 0:
        return SRMResult(ResultCode.NO_DATA, "No units observed yet.", alpha, counts, expected)
    stranded = [i for i, (o, s) in enumerate(zip(counts, shares, strict=True)) if s == 0 and o]
    if stranded:
        return SRMResult(
            ResultCode.OK,
            f"Variants at positions {stranded} have weight 0 but received units.",
            alpha,
            counts,
            expected,
            p_value=0.0,
            mismatch=True,
        )
    # Zero-weight variants with no units carry no information; drop them from the test.
    cells = [(o, e) for o, e, s in zip(counts, expected, shares, strict=True) if s > 0]
    statistic = sum((o - e) ** 2 / e for o, e in cells)
    df = len(cells) - 1
    p_value = float(special.chdtrc(df, statistic)) if df > 0 else 1.0
    if min(e for _, e in cells) < MIN_EXPECTED_COUNT:
        return SRMResult(
            ResultCode.INSUFFICIENT_SAMPLE,
            f"An expected count is below {MIN_EXPECTED_COUNT:g}; too early to check the ratio.",
            alpha,
            counts,
            expected,
            statistic=statistic,
            df=df,
            p_value=p_value,
        )
    mismatch = p_value < alpha
    reason = (
        f"Observed counts deviate from the configured weights (p = {p_value:.3g} < {alpha:g})."
        if mismatch
        else "Observed counts are consistent with the configured weights."
    )
    return SRMResult(
        ResultCode.OK,
        reason,
        alpha,
        counts,
        expected,
        statistic=statistic,
        df=df,
        p_value=p_value,
        mismatch=mismatch,
    )
