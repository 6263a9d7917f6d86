"""Power and sample size of two-arm comparisons (normal approximation).

The formulas are those of statsmodels' ``NormalIndPower`` on standardised effect sizes:
Cohen's h for two proportions (``2 asin sqrt(p_t) - 2 asin sqrt(p_c)``, the variance-
stabilising transform) and Cohen's d for two means (difference over a common standard
deviation). With ``n_eff = 1 / (1/n_c + 1/n_t)`` and critical value ``c``::

    power = Phi(d sqrt(n_eff) - c) [+ Phi(-d sqrt(n_eff) - c) for two-sided tests]

Sample sizes solve that equation for ``n_c`` (with ``n_t = ratio * n_c``) to 1e-12, in
closed form for one-sided tests and by a bracketed root search for two-sided ones.
"""

from __future__ import annotations

import math

from scipy import optimize, special

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics._distributions import critical_value
from synapsenet.services.abtesting.statistics.results import Alternative


def cohens_h(p_control: float, p_treatment: float) -> float:
    """Cohen's h, the standardised difference of two proportions (treatment - control)."""
    return 2.0 * math.asin(math.sqrt(p_treatment)) - 2.0 * math.asin(math.sqrt(p_control))


def cohens_d(mean_difference: float, std: float) -> float:
    """Cohen's d, a difference of means in units of the common standard deviation."""
    return mean_difference / std


def _power_at(distance: float, alpha: float, alternative: Alternative) -> float:
    """Power when the standardised effect times sqrt(n_eff) equals ``distance``."""
    if alternative is Alternative.TWO_SIDED:
        crit = critical_value(alpha / 2.0)
        return float(special.ndtr(distance - crit) + special.ndtr(-distance - crit))
    crit = critical_value(alpha)
    signed = distance if alternative is Alternative.GREATER else -distance
    return float(special.ndtr(signed - crit))


def normal_power(
    effect_size: float,
    n_control: float,
    *,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> float:
    """Power of a two-sample z-test for a standardised effect.

    Args:
        effect_size: Cohen's h or d of ``treatment - control``.
        n_control: Units in the control arm.
        alpha: Significance level.
        ratio: Treatment units per control unit.
        alternative: The test's alternative (``GREATER`` expects a positive effect).

    Returns:
        The probability of rejecting the null.
    """
    n_eff = 1.0 / (1.0 / n_control + 1.0 / (n_control * ratio))
    return _power_at(effect_size * math.sqrt(n_eff), alpha, alternative)


def normal_sample_size(
    effect_size: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> float:
    """Control-arm units (not rounded) for a two-sample z-test to reach ``power``.

    Args:
        effect_size: Cohen's h or d of ``treatment - control``; not zero.
        power: Target power, above ``alpha``.
        alpha: Significance level.
        ratio: Treatment units per control unit.
        alternative: The test's alternative.

    Returns:
        The exact solution ``n_control``; the treatment arm needs ``ratio`` times as many.

    Raises:
        InvalidError: If the effect is zero or points away from a one-sided alternative, or
            ``power`` is not in (alpha, 1).
    """
    if not alpha < power < 1.0:
        raise InvalidError(
            f"The 'power' parameter of normal_sample_size must be a float in (alpha={alpha!r}, "
            f"1). Got {power!r} instead.",
            field="power",
        )
    signed = effect_size
    if alternative is Alternative.LESS:
        signed = -effect_size
    elif alternative is Alternative.TWO_SIDED:
        signed = abs(effect_size)
    if signed <= 0.0:
        raise InvalidError(
            "The effect size must be non-zero and point in the direction of the "
            f"alternative ({alternative.value!r}). Got {effect_size!r} instead.",
            field="effect_size",
        )
    one_sided = critical_value(alpha / 2.0 if alternative is Alternative.TWO_SIDED else alpha)
    distance = one_sided + critical_value(1.0 - power)
    if alternative is Alternative.TWO_SIDED:
        # The far tail adds a little power, so the exact root lies just below the one-tail
        # distance; at 0 the power is alpha < target, which brackets it.
        distance = float(
            optimize.brentq(
                lambda d: _power_at(d, alpha, alternative) - power,
                0.0,
                distance,
                xtol=1e-14,
                rtol=1e-15,
            )
        )
    n_eff = (distance / signed) ** 2
    return n_eff * (1.0 + 1.0 / ratio)
