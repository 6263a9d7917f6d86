"""Holm and Benjamini-Hochberg against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import CorrectionMethod
from synapsenet.services.abtesting.statistics.corrections import adjust_p_values

p_values = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30)


@pytest.mark.parametrize("method", list(CorrectionMethod))
def test_adjusted_p_values_match_statsmodels_multipletests(method: CorrectionMethod) -> None:
    rng = np.random.default_rng(40)
    # statsmodels' Holm runs gc.collect() on every call (~50 ms), so fewer Holm cases.
    cases = 15 if method is CorrectionMethod.HOLM else 300
    for _ in range(cases):
        size = int(rng.integers(1, 60))
        # A mix of true effects (tiny p) and nulls (uniform p), with ties from rounding.
        raw = np.where(rng.random(size) < 0.3, rng.uniform(0, 0.01, size), rng.random(size))
        if rng.random() < 0.3:
            raw = np.round(raw, 2)
        ours = adjust_p_values(raw, method=method, alpha=0.05)
        reject, corrected, _, _ = multipletests(raw, alpha=0.05, method=method.value)
        np.testing.assert_allclose(ours.adjusted, corrected, rtol=1e-12, atol=0)
        # statsmodels decides on raw p against stepped thresholds; away from exact ties at
        # the threshold that is the same as adjusted p <= alpha.
        clear = np.abs(np.asarray(ours.adjusted) - 0.05) > 1e-12
        assert np.array_equal(np.asarray(ours.rejected)[clear], reject[clear])


@settings(max_examples=60, deadline=None)
@given(raw=p_values, seed=st.integers(0, 2**32 - 1))
def test_adjustment_follows_its_input_through_any_permutation(raw: list[float], seed: int) -> None:
    order = np.random.default_rng(seed).permutation(len(raw))
    for method in CorrectionMethod:
        straight = np.asarray(adjust_p_values(raw, method=method).adjusted)
        shuffled = np.asarray(adjust_p_values(np.asarray(raw)[order], method=method).adjusted)
        np.testing.assert_array_equal(shuffled, straight[order])


@settings(max_examples=60, deadline=None)
@given(raw=p_values)
def test_adjusted_p_values_are_valid_and_bh_never_exceeds_holm(raw: list[float]) -> None:
    holm = np.asarray(adjust_p_values(raw, method=CorrectionMethod.HOLM).adjusted)
    bh = np.asarray(adjust_p_values(raw, method=CorrectionMethod.BENJAMINI_HOCHBERG).adjusted)
    ulp = 1e-15  # p * m / m need not round back to p exactly
    assert np.all(holm >= np.asarray(raw) - ulp)
    assert np.all(holm <= 1.0)
    assert np.all(bh >= np.asarray(raw) - ulp)
    assert np.all(bh <= holm + ulp)


def test_empty_family_gives_an_empty_result() -> None:
    result = adjust_p_values([], method=CorrectionMethod.BENJAMINI_HOCHBERG)
    assert result.p_values == result.adjusted == result.rejected == ()


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [1.5], [-0.01], [[0.1, 0.2]]])
def test_invalid_p_values_are_rejected(bad: list[float]) -> None:
    with pytest.raises(InvalidError) as caught:
        adjust_p_values(bad)
    assert caught.value.field == "p_values"
