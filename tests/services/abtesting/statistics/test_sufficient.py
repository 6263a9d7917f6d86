"""Sufficient statistics: summaries of raw data, pooling, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import CovariateStats, SampleStats

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
samples = arrays(np.float64, st.integers(0, 40), elements=finite)


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.float64, st.integers(2, 60), elements=finite))
def test_from_values_matches_numpy_mean_and_variance(values: np.ndarray) -> None:
    stats = SampleStats.from_values(values)
    assert stats.n == values.size
    assert math.isclose(stats.mean, float(np.mean(values)), rel_tol=1e-9, abs_tol=1e-9)
    # The one-pass formula loses digits to cancellation; scale the tolerance to the data.
    scale = float(np.mean(values**2)) + 1.0
    assert math.isclose(stats.variance, float(np.var(values, ddof=1)), abs_tol=1e-9 * scale)


@settings(max_examples=60, deadline=None)
@given(first=samples, second=samples)
def test_pooling_equals_summarising_concatenated_data(
    first: np.ndarray, second: np.ndarray
) -> None:
    pooled = SampleStats.from_values(first) + SampleStats.from_values(second)
    direct = SampleStats.from_values(np.concatenate([first, second]))
    assert pooled.n == direct.n
    assert math.isclose(pooled.sum, direct.sum, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(pooled.sum_squares, direct.sum_squares, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    pairs=arrays(np.float64, st.tuples(st.integers(0, 30), st.just(4)), elements=finite),
    cut=st.integers(0, 30),
)
def test_covariate_pooling_equals_summarising_concatenated_data(
    pairs: np.ndarray, cut: int
) -> None:
    y, x = pairs[:, 0], pairs[:, 1]
    cut = min(cut, y.size)
    pooled = CovariateStats.from_values(y[:cut], x[:cut]) + CovariateStats.from_values(
        y[cut:], x[cut:]
    )
    direct = CovariateStats.from_values(y, x)
    for name in ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy"):
        assert math.isclose(getattr(pooled, name), getattr(direct, name), abs_tol=1e-6)
    assert pooled.n == direct.n


def test_covariate_stats_expose_outcome_covariate_and_covariance() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(5, 2, 500)
    y = 0.5 * x + rng.normal(0, 1, 500)
    stats = CovariateStats.from_values(y, x)
    assert stats.outcome == SampleStats.from_values(y)
    assert stats.covariate == SampleStats.from_values(x)
    assert math.isclose(stats.covariance, float(np.cov(x, y)[0, 1]), rel_tol=1e-9)


def test_from_successes_describes_binary_outcomes() -> None:
    stats = SampleStats.from_successes(n=200, successes=30)
    assert stats == SampleStats.from_values(np.r_[np.ones(30), np.zeros(170)])
    assert stats.is_binary
    assert stats.mean == 0.15
    assert not SampleStats.from_values([0.5, 1.5]).is_binary


def test_empty_and_single_unit_samples_have_zero_spread() -> None:
    empty = SampleStats(0, 0.0, 0.0)
    assert (empty.mean, empty.variance, empty.standard_error) == (0.0, 0.0, 0.0)
    single = SampleStats.from_values([3.0])
    assert (single.mean, single.variance, single.std) == (3.0, 0.0, 0.0)
    assert CovariateStats(0, 0, 0, 0, 0, 0).covariance == 0.0


def test_rounding_error_in_constant_data_is_tolerated() -> None:
    # 0.1 is not representable, so sum**2 / n can exceed sum_squares by a few ulps.
    stats = SampleStats.from_values(np.full(100_000, 0.1))
    assert stats.variance == pytest.approx(0.0, abs=1e-12)


def test_numpy_integers_are_accepted_as_n() -> None:
    # Counts summed with numpy arrive as numpy integers; they are stored as plain ints.
    stats = SampleStats(np.int64(3), 3, 3)  # type: ignore[arg-type]
    assert type(stats.n) is int


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, 0.0, 0.0), "n"),
        ((1.5, 0.0, 0.0), "n"),
        ((True, 1.0, 1.0), "n"),
        ((0, 1.0, 1.0), "sum_squares"),
        ((3, 6.0, 1.0), "sum_squares"),
        ((2, math.nan, 1.0), "sum"),
        ((2, 1.0, math.inf), "sum_squares"),
    ],
)
def test_impossible_sample_stats_are_rejected(args: tuple[float, float, float], field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        SampleStats(*args)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_impossible_covariate_stats_are_rejected() -> None:
    with pytest.raises(InvalidError) as caught:
        CovariateStats(2, 2.0, 2.0, 4.0, 1.0, 0.0)
    assert caught.value.field == "sum_x2"
    with pytest.raises(InvalidError) as caught:
        CovariateStats(0, 0.0, 0.0, 0.0, 0.0, 1.0)
    assert caught.value.field == "sum_xy"


def test_from_values_rejects_bad_arrays() -> None:
    with pytest.raises(InvalidError, match="1-D"):
        SampleStats.from_values(np.zeros((2, 2)))
    with pytest.raises(InvalidError, match="finite"):
        SampleStats.from_values([1.0, math.nan])
    with pytest.raises(InvalidError, match="same length") as caught:
        CovariateStats.from_values([1.0, 2.0], [1.0])
    assert caught.value.field == "x"
    with pytest.raises(InvalidError) as caught:
        SampleStats.from_successes(n=10, successes=11)
    assert caught.value.field == "successes"


def test_adding_unrelated_types_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        SampleStats(1, 1.0, 1.0) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        CovariateStats(0, 0, 0, 0, 0, 0) + SampleStats(0, 0, 0)  # type: ignore[operator]


def test_stats_are_frozen() -> None:
    stats = SampleStats(1, 1.0, 1.0)
    with pytest.raises(AttributeError):
        stats.n = 2  # type: ignore[misc]
