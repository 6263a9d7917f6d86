"""Power and sample size against statsmodels' NormalIndPower."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import Alternative, StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.power import (
    cohens_h,
    normal_power,
    normal_sample_size,
)
from tests.services.abtesting.statistics._checks import assert_close

STATSMODELS_ALTERNATIVE = {
    Alternative.TWO_SIDED: "two-sided",
    Alternative.GREATER: "larger",
    Alternative.LESS: "smaller",
}


@pytest.mark.parametrize("alternative", list(Alternative))
def test_power_matches_statsmodels(alternative: Alternative) -> None:
    rng = np.random.default_rng(50)
    oracle = NormalIndPower()
    for _ in range(200):
        effect = float(rng.uniform(-0.5, 0.5))
        n, ratio, alpha = (
            float(rng.uniform(5, 5000)),
            float(rng.uniform(0.2, 5)),
            float(rng.uniform(0.001, 0.2)),
        )
        expected = oracle.power(
            effect, n, alpha, ratio=ratio, alternative=STATSMODELS_ALTERNATIVE[alternative]
        )
        ours = normal_power(effect, n, alpha=alpha, ratio=ratio, alternative=alternative)
        assert_close(ours, float(expected), abs_=1e-300)


@pytest.mark.parametrize("alternative", list(Alternative))
def test_sample_size_matches_statsmodels_and_reaches_the_target_power(
    alternative: Alternative,
) -> None:
    rng = np.random.default_rng(51)
    oracle = NormalIndPower()
    for _ in range(25):
        magnitude = float(rng.uniform(0.02, 0.8))
        effect = -magnitude if alternative is Alternative.LESS else magnitude
        power, ratio, alpha = (
            float(rng.uniform(0.5, 0.95)),
            float(rng.uniform(0.25, 4)),
            float(rng.uniform(0.005, 0.1)),
        )
        ours = normal_sample_size(
            effect, power=power, alpha=alpha, ratio=ratio, alternative=alternative
        )
        # statsmodels finds the root numerically with a looser tolerance than ours.
        expected = oracle.solve_power(
            effect,
            alpha=alpha,
            power=power,
            ratio=ratio,
            alternative=STATSMODELS_ALTERNATIVE[alternative],
        )
        assert_close(ours, float(expected), rel=1e-6)
        achieved = normal_power(effect, ours, alpha=alpha, ratio=ratio, alternative=alternative)
        assert_close(achieved, power, rel=1e-10)


@pytest.mark.parametrize("power", [0.01, 0.05, 1.0])
def test_sample_size_needs_a_power_above_alpha(power: float) -> None:
    with pytest.raises(InvalidError) as caught:
        normal_sample_size(0.2, power=power, alpha=0.05)
    assert caught.value.field == "power"


def test_proportion_effect_size_is_statsmodels_cohens_h() -> None:
    rng = np.random.default_rng(52)
    for p_c, p_t in rng.uniform(0, 1, (50, 2)):
        assert_close(cohens_h(p_c, p_t), float(proportion_effectsize(p_t, p_c)), abs_=1e-15)


def test_analyzer_plans_a_conversion_experiment() -> None:
    analyzer = StatisticalAnalyzer(alpha=0.05)
    size = analyzer.sample_size_proportions(0.10, 0.12, target_power=0.8)
    exact = NormalIndPower().solve_power(proportion_effectsize(0.12, 0.10), alpha=0.05, power=0.8)
    assert size.control == size.treatment == math.ceil(exact)
    assert analyzer.power_proportions(0.10, 0.12, size.control) >= 0.8
    assert analyzer.power_proportions(0.10, 0.12, size.control - 1) < 0.8
    unequal = analyzer.sample_size_proportions(0.10, 0.12, ratio=3.0)
    assert (
        unequal.treatment == math.ceil(unequal.control * 3.0) or unequal.treatment > unequal.control
    )


def test_analyzer_plans_a_continuous_experiment() -> None:
    analyzer = StatisticalAnalyzer(alpha=0.01)
    size = analyzer.sample_size_means(0.5, 2.0, target_power=0.9, alternative="greater")
    exact = NormalIndPower().solve_power(0.25, alpha=0.01, power=0.9, alternative="larger")
    assert size.control == math.ceil(exact)
    assert size.effect_size == 0.25
    assert_close(
        analyzer.power_means(0.5, 2.0, 100, alternative="greater"),
        float(NormalIndPower().power(0.25, 100, 0.01, alternative="larger")),
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda a: a.sample_size_proportions(0.1, 0.1), "effect_size"),
        (lambda a: a.sample_size_means(-0.5, 1.0, alternative="greater"), "effect_size"),
        (lambda a: a.sample_size_means(0.5, 1.0, target_power=0.01), "target_power"),
        (lambda a: a.sample_size_means(0.5, 1.0, target_power=1.0), "target_power"),
        (lambda a: a.sample_size_means(0.5, 0.0), "std"),
        (lambda a: a.sample_size_means(0.5, 1.0, ratio=0), "ratio"),
        (lambda a: a.power_proportions(1.2, 0.1, 100), "p_control"),
        (lambda a: a.power_means(0.5, 1.0, -3), "n_control"),
        (lambda a: a.power_means(float("inf"), 1.0, 10), "mean_difference"),
    ],
)
def test_impossible_plans_are_rejected(
    call: Callable[[StatisticalAnalyzer], object], field: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        call(StatisticalAnalyzer())
    assert caught.value.field == field
