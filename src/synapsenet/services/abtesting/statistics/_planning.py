"""Experiment planning: power and sample size, the part of the analyzer used before data.

A mixin of :class:`~.analyzer.StatisticalAnalyzer`, split off because planning shares only
``alpha`` with the analysis methods. The maths lives in :mod:`.power`.
"""

from __future__ import annotations

import math

from synapsenet.services.abtesting.statistics import power
from synapsenet.services.abtesting.statistics._validation import (
    check_finite,
    check_positive,
    check_probability,
    check_unit_interval,
    coerce_enum,
    invalid,
)
from synapsenet.services.abtesting.statistics.results import Alternative, SampleSize

_OWNER = "StatisticalAnalyzer"


class PlanningMixin:
    """Power and sample-size methods; the host class provides ``alpha``."""

    alpha: float

    def power_proportions(
        self,
        p_control: float,
        p_treatment: float,
        n_control: float,
        *,
        ratio: float = 1.0,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> float:
        """Power to detect ``p_control -> p_treatment`` with ``n_control`` control units.

        Normal approximation on Cohen's h, as statsmodels ``NormalIndPower``; the treatment
        arm has ``ratio * n_control`` units.
        """
        effect = power.cohens_h(
            check_probability(p_control, "p_control", _OWNER),
            check_probability(p_treatment, "p_treatment", _OWNER),
        )
        return self._power(effect, n_control, ratio, alternative)

    def power_means(
        self,
        mean_difference: float,
        std: float,
        n_control: float,
        *,
        ratio: float = 1.0,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> float:
        """Power to detect a difference of means with common standard deviation ``std``.

        Normal approximation on Cohen's d, as statsmodels ``NormalIndPower``.
        """
        effect = power.cohens_d(
            check_finite(mean_difference, "mean_difference", _OWNER),
            check_positive(std, "std", _OWNER),
        )
        return self._power(effect, n_control, ratio, alternative)

    def sample_size_proportions(
        self,
        p_control: float,
        p_treatment: float,
        *,
        target_power: float = 0.8,
        ratio: float = 1.0,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> SampleSize:
        """Units per arm to detect ``p_control -> p_treatment`` with ``target_power``."""
        effect = power.cohens_h(
            check_probability(p_control, "p_control", _OWNER),
            check_probability(p_treatment, "p_treatment", _OWNER),
        )
        return self._sample_size(effect, target_power, ratio, alternative)

    def sample_size_means(
        self,
        mean_difference: float,
        std: float,
        *,
        target_power: float = 0.8,
        ratio: float = 1.0,
        alternative: Alternative | str = Alternative.TWO_SIDED,
    ) -> SampleSize:
        """Units per arm to detect a difference of means with ``target_power``."""
        effect = power.cohens_d(
            check_finite(mean_difference, "mean_difference", _OWNER),
            check_positive(std, "std", _OWNER),
        )
        return self._sample_size(effect, target_power, ratio, alternative)

    def _power(
        self, effect: float, n_control: float, ratio: float, alternative: Alternative | str
    ) -> float:
        return power.normal_power(
            effect,
            check_positive(n_control, "n_control", _OWNER),
            alpha=self.alpha,
            ratio=check_positive(ratio, "ratio", _OWNER),
            alternative=coerce_enum(Alternative, alternative, "alternative", _OWNER),
        )

    def _sample_size(
        self, effect: float, target_power: float, ratio: float, alternative: Alternative | str
    ) -> SampleSize:
        checked_power = check_unit_interval(target_power, "target_power", _OWNER)
        if checked_power <= self.alpha:
            raise invalid(
                "target_power", _OWNER, f"a float in (alpha={self.alpha}, 1)", target_power
            )
        checked_ratio = check_positive(ratio, "ratio", _OWNER)
        n_control = power.normal_sample_size(
            effect,
            power=checked_power,
            alpha=self.alpha,
            ratio=checked_ratio,
            alternative=coerce_enum(Alternative, alternative, "alternative", _OWNER),
        )
        return SampleSize(
            control=math.ceil(n_control),
            treatment=math.ceil(n_control * checked_ratio),
            effect_size=effect,
        )
