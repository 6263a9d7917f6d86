"""p-values and quantiles of the normal and Student t distributions.

These call the ``scipy.special`` ufuncs that ``scipy.stats`` itself uses (``ndtr``,
``stdtr``...), so results match scipy and statsmodels to the last bits, without the
per-call overhead of ``scipy.stats`` distribution objects (analysing thousands of
experiments per second depends on it).
"""

from __future__ import annotations

import math

from scipy import special

from synapsenet.services.abtesting.statistics.results import Alternative


def _sf(statistic: float, df: float | None) -> float:
    if df is None:
        return float(special.ndtr(-statistic))
    return float(special.stdtr(df, -statistic))


def _cdf(statistic: float, df: float | None) -> float:
    if df is None:
        return float(special.ndtr(statistic))
    return float(special.stdtr(df, statistic))


def p_value(statistic: float, alternative: Alternative, df: float | None = None) -> float:
    """p-value of a z (``df=None``) or t statistic.

    Args:
        statistic: The test statistic.
        alternative: Which tail(s) count as evidence against the null.
        df: Degrees of freedom of the t distribution; ``None`` for the standard normal.

    Returns:
        The p-value, in [0, 1].
    """
    if alternative is Alternative.GREATER:
        return _sf(statistic, df)
    if alternative is Alternative.LESS:
        return _cdf(statistic, df)
    return min(1.0, 2.0 * _sf(abs(statistic), df))


def critical_value(tail_probability: float, df: float | None = None) -> float:
    """Upper quantile: the value exceeded with probability ``tail_probability``.

    Args:
        tail_probability: Probability in the upper tail, in (0, 1).
        df: Degrees of freedom of the t distribution; ``None`` for the standard normal.

    Returns:
        The quantile (positive when ``tail_probability < 0.5``).
    """
    if df is None:
        return -float(special.ndtri(tail_probability))
    return -float(special.stdtrit(df, tail_probability))


def finite_or_none(value: float) -> float | None:
    """Return ``value``, or ``None`` if it is NaN or infinite (results never carry those)."""
    return value if math.isfinite(value) else None
