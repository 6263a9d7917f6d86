"""Sample-ratio mismatch against scipy's chisquare."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from scipy import stats

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import ResultCode, StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.srm import sample_ratio_mismatch
from tests.services.abtesting.statistics._checks import assert_close, assert_no_nan


def test_srm_matches_scipy_chisquare() -> None:
    rng = np.random.default_rng(60)
    for _ in range(200):
        k = int(rng.integers(2, 6))
        weights = rng.uniform(0.2, 1.0, k)
        # Draw from slightly different shares so that some checks flag a mismatch.
        drift = rng.dirichlet(2000 * weights / weights.sum())
        observed = rng.multinomial(int(rng.integers(1000, 100_000)), drift)
        result = sample_ratio_mismatch(observed.tolist(), weights.tolist())
        expected = stats.chisquare(observed, f_exp=observed.sum() * weights / weights.sum())
        assert result.code is ResultCode.OK
        assert_close(result.statistic, float(expected.statistic))
        assert_close(result.p_value, float(expected.pvalue), abs_=1e-300)
        assert result.df == k - 1
        assert result.mismatch == (float(expected.pvalue) < 0.001)


def test_decimal_weights_give_the_same_answer_as_floats() -> None:
    decimal = sample_ratio_mismatch(
        [3300, 3300, 3400], [Decimal("0.33"), Decimal("0.33"), Decimal("0.34")]
    )
    floating = sample_ratio_mismatch([3300, 3300, 3400], [0.33, 0.33, 0.34])
    assert decimal == floating


def test_a_broken_split_is_flagged_and_a_healthy_one_is_not() -> None:
    analyzer = StatisticalAnalyzer()
    broken = analyzer.sample_ratio_mismatch([5000, 5400], [Decimal("0.5"), Decimal("0.5")])
    assert broken.mismatch
    assert broken.alpha == 0.001
    assert "deviate" in broken.reason
    healthy = analyzer.sample_ratio_mismatch([5000, 5100], [Decimal("0.5"), Decimal("0.5")])
    assert not healthy.mismatch
    assert healthy.p_value is not None
    assert healthy.p_value > 0.001


def test_the_check_rarely_fires_on_a_correct_split() -> None:
    rng = np.random.default_rng(61)
    flags = [
        sample_ratio_mismatch(
            rng.multinomial(10_000, [0.2, 0.3, 0.5]).tolist(), [0.2, 0.3, 0.5]
        ).mismatch
        for _ in range(2000)
    ]
    assert sum(flags) <= 8  # alpha = 0.001: about 2 expected


def test_no_units_and_tiny_samples_give_codes_without_flags() -> None:
    empty = sample_ratio_mismatch([0, 0], [0.5, 0.5])
    assert empty.code is ResultCode.NO_DATA
    assert not empty.mismatch
    assert empty.p_value is None
    tiny = sample_ratio_mismatch([6, 0], [0.5, 0.5])
    assert tiny.code is ResultCode.INSUFFICIENT_SAMPLE
    assert not tiny.mismatch
    assert tiny.statistic is not None
    for result in (empty, tiny):
        assert_no_nan(result)


def test_units_in_a_zero_weight_variant_are_a_mismatch() -> None:
    result = sample_ratio_mismatch([500, 500, 3], [0.5, 0.5, 0.0])
    assert result.mismatch
    assert result.p_value == 0.0
    assert result.statistic is None
    assert_no_nan(result)


def test_zero_weight_variants_without_units_are_left_out() -> None:
    result = sample_ratio_mismatch([500, 520, 0], [Decimal("0.5"), Decimal("0.5"), Decimal(0)])
    expected = stats.chisquare([500, 520])
    assert result.df == 1
    assert_close(result.p_value, float(expected.pvalue))


@pytest.mark.parametrize(
    ("observed", "weights", "field"),
    [
        ([10, 10], [0.5], "weights"),
        ([10], [1.0], "observed"),
        ([10, -1], [0.5, 0.5], "observed"),
        ([10, 1.5], [0.5, 0.5], "observed"),
        ([10, 10], [0.5, -0.5], "weights"),
        ([10, 10], [0.5, float("nan")], "weights"),
        ([10, 10], [Decimal("NaN"), Decimal(1)], "weights"),
        ([10, 10], [0.0, 0.0], "weights"),
        ([10, 10], [Decimal(0), Decimal(0)], "weights"),
        ([10, 10], ["0.5", "0.5"], "weights"),
    ],
)
def test_malformed_input_is_rejected(
    observed: list[int], weights: list[object], field: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        sample_ratio_mismatch(observed, weights)  # type: ignore[arg-type]
    assert caught.value.field == field
