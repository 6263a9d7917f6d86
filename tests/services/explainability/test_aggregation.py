"""FeatureImportanceAggregator against direct computations, scipy and seeded simulations."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._ranking import (
    adjust_p_values,
    mean_pairwise_kendall_tau,
    mean_pairwise_top_k_overlap,
)
from synapsenet.services.explainability.aggregation import (
    INTERACTION_VALUES_EXTRA,
    FeatureImportanceAggregator,
    stability_from_scores,
)
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    ExplanationType,
)

FloatArray = npt.NDArray[np.float64]
M = AggregationMethod


def _direct_ranks(values: FloatArray) -> FloatArray:
    """Ranks of |value| per row for data without ties: argsort of argsort, 1-based."""
    return np.argsort(np.argsort(np.abs(values), axis=1), axis=1).astype(float) + 1.0


DIRECT: dict[AggregationMethod, Callable[[FloatArray], FloatArray]] = {
    M.MEAN_ABS: lambda v: np.abs(v).mean(axis=0),
    M.MEAN: lambda v: v.mean(axis=0),
    M.MEDIAN_ABS: lambda v: np.median(np.abs(v), axis=0),
    M.MAX_ABS: lambda v: np.abs(v).max(axis=0),
    M.RMS: lambda v: np.sqrt((v**2).mean(axis=0)),
    M.MEAN_RANK: lambda v: _direct_ranks(v).mean(axis=0),
}


def _values(
    n: int = 200, scales: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0), seed: int = 0
) -> FloatArray:
    rng = np.random.default_rng(seed)
    values: FloatArray = rng.normal(size=(n, len(scales))) * np.array(scales)
    return values


def _explanation(values: FloatArray, **extras: object) -> Explanation:
    n, m = values.shape[:2]
    return Explanation(
        type=ExplanationType.SHAP_EXACT,
        values=values if values.ndim == 3 else values[:, :, None],
        base_values=np.zeros((n, 1)),
        predictions=values.reshape(n, m, -1).sum(axis=1),
        feature_names=tuple(f"x{j}" for j in range(m)),
        extras=dict(extras),
    )


# --- global importance --------------------------------------------------------------------


@pytest.mark.parametrize("method", list(AggregationMethod))
def test_every_method_matches_a_direct_numpy_computation(method: AggregationMethod) -> None:
    values = _values()
    result = FeatureImportanceAggregator(n_bootstrap=50).global_importance(values, method)
    np.testing.assert_allclose(result.importance, DIRECT[method](values), rtol=1e-12)
    assert result.method is method
    assert result.n_explanations == 200
    assert result.feature_names == ("feature_0", "feature_1", "feature_2", "feature_3")
    assert np.all(result.ci_lower <= result.ci_upper)


def test_method_may_be_given_by_its_string_value() -> None:
    result = FeatureImportanceAggregator(n_bootstrap=10).global_importance(_values(), "rms")
    assert result.method is M.RMS
    assert result.ranking() == ("feature_3", "feature_1", "feature_0", "feature_2")


def test_mean_rank_gives_tied_features_their_average_rank() -> None:
    values = np.array([[1.0, -1.0, 3.0], [0.0, 2.0, -2.0]])
    result = FeatureImportanceAggregator(n_bootstrap=10).global_importance(values, M.MEAN_RANK)
    # Row 1: |1| = |-1| share ranks 1 and 2 -> 1.5 each, 3 ranks 3. Row 2: 1, 2.5, 2.5.
    np.testing.assert_allclose(result.importance, [(1.5 + 1) / 2, (1.5 + 2.5) / 2, (3 + 2.5) / 2])


@pytest.mark.parametrize("method", list(AggregationMethod))
def test_vectorised_bootstrap_equals_a_loop_over_resamples(method: AggregationMethod) -> None:
    values = _values(n=37)
    # A tiny block size forces many blocks; the random stream must not notice.
    aggregator = FeatureImportanceAggregator(n_bootstrap=25, seed=11, chunk_bytes=1)
    vectorised = aggregator.bootstrap(values, method)
    rng = np.random.default_rng(11)
    loop = np.stack([DIRECT[method](values[rng.integers(0, 37, size=37)]) for _ in range(25)])
    np.testing.assert_allclose(vectorised, loop, rtol=1e-12)


def test_bootstrap_does_not_depend_on_the_block_size() -> None:
    values = _values(n=50)
    small = FeatureImportanceAggregator(n_bootstrap=40, chunk_bytes=1000).bootstrap(values)
    large = FeatureImportanceAggregator(n_bootstrap=40).bootstrap(values)
    np.testing.assert_allclose(small, large, rtol=1e-12)


TRUE_IMPORTANCE: dict[AggregationMethod, Callable[[FloatArray, FloatArray], FloatArray]] = {
    M.MEAN: lambda mu, sigma: mu,
    M.MEAN_ABS: lambda mu, sigma: sigma * math.sqrt(2 / math.pi),
    M.RMS: lambda mu, sigma: np.sqrt(mu**2 + sigma**2),
    M.MEDIAN_ABS: lambda mu, sigma: sigma * stats.norm.ppf(0.75),
}


@pytest.mark.parametrize("method", [*TRUE_IMPORTANCE, M.MEAN_RANK])
def test_intervals_cover_the_true_importance_at_about_the_nominal_rate(
    method: AggregationMethod,
) -> None:
    """200 seeded data sets of 200 instances; 90% intervals; 600 (set, feature) checks."""
    sigma = np.array([1.0, 1.5, 2.5])
    mu = np.zeros(3) if method is not M.MEAN else np.array([0.0, 0.5, -1.0])
    rng = np.random.default_rng(2024)
    if method is M.MEAN_RANK:
        truth = DIRECT[M.MEAN_RANK](rng.normal(mu, sigma, size=(400_000, 3)))
    else:
        truth = TRUE_IMPORTANCE[method](mu, sigma)
    aggregator = FeatureImportanceAggregator(n_bootstrap=300, confidence_level=0.9, seed=1)
    covered = 0
    for _ in range(200):
        result = aggregator.global_importance(rng.normal(mu, sigma, size=(200, 3)), method)
        covered += int(np.sum((result.ci_lower <= truth) & (truth <= result.ci_upper)))
    coverage = covered / 600
    # Binomial sd at 0.9 over 600 checks is 0.012; the percentile bootstrap runs a little low.
    assert 0.85 <= coverage <= 0.95, coverage


def test_same_seed_same_result_and_another_seed_differs() -> None:
    values = _values()
    first = FeatureImportanceAggregator(n_bootstrap=100, seed=5)
    again = FeatureImportanceAggregator(n_bootstrap=100, seed=5)
    other = FeatureImportanceAggregator(n_bootstrap=100, seed=6)
    a = first.global_importance(values)
    assert np.array_equal(a.ci_lower, first.global_importance(values).ci_lower)
    assert np.array_equal(a.ci_upper, again.global_importance(values).ci_upper)
    assert not np.array_equal(a.ci_upper, other.global_importance(values).ci_upper)
    one, two = first.stability(values), again.stability(values)
    assert np.array_equal(one.std, two.std)
    assert one.kendall_tau == two.kendall_tau
    b = _values(seed=1)
    assert np.array_equal(first.compare(values, b).p_values, again.compare(values, b).p_values)


def test_explanations_are_stacked_and_outputs_selected() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(n, 3, 2)) for n in (10, 15)]
    explanations = [_explanation(part) for part in parts]
    aggregator = FeatureImportanceAggregator(n_bootstrap=10)
    result = aggregator.global_importance(explanations, M.MEAN_ABS, output=1)
    stacked = np.concatenate(parts)
    np.testing.assert_allclose(result.importance, np.abs(stacked[:, :, 1]).mean(axis=0))
    assert result.feature_names == ("x0", "x1", "x2")
    assert result.n_explanations == 25
    assert result.output == 1
    single = aggregator.global_importance(explanations[0], output=0)
    np.testing.assert_allclose(single.importance, np.abs(parts[0][:, :, 0]).mean(axis=0))


def test_raw_arrays_take_feature_names() -> None:
    aggregator = FeatureImportanceAggregator(n_bootstrap=10)
    result = aggregator.global_importance(_values(), feature_names=["a", "b", "c", "d"])
    assert result.ranking()[0] == "d"
    with pytest.raises(InvalidError, match="'feature_names'"):
        aggregator.global_importance(_values(), feature_names=["a"])
    with pytest.raises(InvalidError, match="'feature_names'"):
        aggregator.global_importance(_explanation(_values()), feature_names=["a"] * 4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_bootstrap": 1}, "n_bootstrap"),
        ({"n_bootstrap": 10.0}, "n_bootstrap"),
        ({"n_bootstrap": True}, "n_bootstrap"),
        ({"confidence_level": 1.0}, "confidence_level"),
        ({"confidence_level": "0.9"}, "confidence_level"),
        ({"seed": -1}, "seed"),
        ({"chunk_bytes": 0}, "chunk_bytes"),
    ],
)
def test_bad_constructor_parameters_are_named(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        FeatureImportanceAggregator(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert f"The '{field}' parameter of FeatureImportanceAggregator must be" in caught.value.detail


def test_bad_inputs_get_clear_errors() -> None:
    aggregator = FeatureImportanceAggregator(n_bootstrap=10)
    with pytest.raises(InvalidError, match=r"'method'.*one of 'mean_abs'"):
        aggregator.global_importance(_values(), "mean_squared")
    with pytest.raises(InvalidError, match="'output'"):
        aggregator.global_importance(_values(), output=1)
    with pytest.raises(InvalidError, match="'output'"):
        aggregator.global_importance(_values(), output=-1)
    with pytest.raises(InvalidError, match="non-empty"):
        aggregator.global_importance(np.zeros((0, 3)))
    with pytest.raises(InvalidError, match="non-empty"):
        aggregator.global_importance(np.zeros(3))
    with pytest.raises(InvalidError, match="array of numbers"):
        aggregator.global_importance([["a", "b"]])  # type: ignore[list-item]
    with pytest.raises(InvalidError, match="finite"):
        aggregator.global_importance(np.array([[1.0, math.nan]]))
    with pytest.raises(InvalidError, match="share feature names"):
        aggregator.global_importance([_explanation(_values()), _explanation(_values()[:, :3])])
    malformed = Explanation(
        type=ExplanationType.SHAP_EXACT,
        values=np.zeros((2, 3, 1)),
        base_values=np.zeros((2, 1)),
        predictions=np.zeros((2, 1)),
        feature_names=("only", "two"),
    )
    with pytest.raises(InvalidError, match="2 feature names for 3 features"):
        aggregator.global_importance(malformed)
    with pytest.raises(InvalidError, match="Explanation only"):
        aggregator.global_importance([_explanation(_values()), _values()])  # type: ignore[list-item]


# --- rank statistics ----------------------------------------------------------------------

score_matrices = hnp.arrays(
    np.float64,
    st.tuples(st.integers(2, 6), st.integers(2, 6)),
    elements=st.integers(0, 3).map(float),  # few distinct values: plenty of ties
)


@settings(max_examples=150, deadline=None)
@given(scores=score_matrices)
def test_mean_pairwise_kendall_tau_equals_scipy_tau_b(scores: FloatArray) -> None:
    taus = []
    for a in range(scores.shape[0]):
        for b in range(a + 1, scores.shape[0]):
            tau = stats.kendalltau(scores[a], scores[b]).statistic
            taus.append(0.0 if math.isnan(tau) else tau)  # an all-tied row counts as 0
    expected = float(np.mean(taus))
    assert mean_pairwise_kendall_tau(scores) == pytest.approx(expected, abs=1e-12)
    assert mean_pairwise_kendall_tau(scores, chunk_bytes=1) == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_of_one_feature_is_one() -> None:
    assert mean_pairwise_kendall_tau(np.array([[1.0], [2.0]])) == 1.0


@settings(max_examples=100, deadline=None)
@given(scores=score_matrices, k=st.integers(1, 6))
def test_top_k_overlap_equals_the_set_definition(scores: FloatArray, k: int) -> None:
    k = min(k, scores.shape[1])
    tops = [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in scores]
    pairs = [(a, b) for a in range(len(tops)) for b in range(a + 1, len(tops))]
    expected = np.mean([len(tops[a] & tops[b]) / k for a, b in pairs])
    assert mean_pairwise_top_k_overlap(scores, k) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(p=hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(0.0, 1.0)))
def test_benjamini_hochberg_equals_statsmodels(p: FloatArray) -> None:
    expected = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(adjust_p_values(p, "bh"), expected, atol=1e-12)


# statsmodels' Holm takes ~70 ms a call here, so a fixed handful of cases instead of hypothesis.
@pytest.mark.parametrize(
    "p",
    [
        np.array([0.01]),
        np.array([0.04, 0.01, 0.03, 0.2]),
        np.array([0.02, 0.02, 0.02, 0.5, 1.0]),  # ties
        *(np.random.default_rng(seed).uniform(0, 0.1, size=8) for seed in range(3)),
    ],
)
def test_holm_equals_statsmodels(p: FloatArray) -> None:
    expected = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(adjust_p_values(p, "holm"), expected, atol=1e-12)


def test_adjusting_no_p_values_gives_none() -> None:
    assert adjust_p_values(np.array([]), "holm").size == 0


# --- stability ----------------------------------------------------------------------------


def test_clearly_separated_importances_are_stable() -> None:
    values = _values(n=500, scales=(1.0, 2.0, 4.0, 8.0, 16.0))
    aggregator = FeatureImportanceAggregator(n_bootstrap=200, seed=3)
    report = aggregator.stability(values, k=2)
    assert report.kendall_tau == pytest.approx(1.0)
    assert report.top_k_overlap == pytest.approx(1.0)
    assert report.k == 2
    assert report.n_runs == 200
    resampled = aggregator.bootstrap(values)
    np.testing.assert_allclose(report.mean, resampled.mean(axis=0))
    np.testing.assert_allclose(report.std, resampled.std(axis=0, ddof=1))
    np.testing.assert_allclose(report.coefficient_of_variation, report.std / report.mean)
    # The CV of a mean over n instances shrinks like 1 / sqrt(n).
    assert np.all(report.coefficient_of_variation < 0.1)


def test_equal_importances_have_unstable_rankings() -> None:
    values = _values(n=100, scales=(1.0,) * 6)
    report = FeatureImportanceAggregator(n_bootstrap=200, seed=3).stability(values, k=3)
    assert abs(report.kendall_tau) < 0.5
    assert report.top_k_overlap < 0.9


def test_stability_from_scores_handles_zero_means() -> None:
    report = stability_from_scores(np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 2.0]]), "abc", k=99)
    assert report.coefficient_of_variation[0] == 0.0
    assert report.coefficient_of_variation[1] == math.inf
    assert report.coefficient_of_variation[2] == 0.0
    assert report.k == 3
    with pytest.raises(InvalidError, match="'scores'"):
        stability_from_scores(np.ones((1, 3)), "abc")
    with pytest.raises(InvalidError, match="finite"):
        stability_from_scores(np.full((2, 3), math.nan), "abc")
    with pytest.raises(InvalidError, match="'feature_names'"):
        stability_from_scores(np.ones((2, 3)), "ab")
    with pytest.raises(InvalidError, match="'k' parameter of stability_from_scores"):
        stability_from_scores(np.ones((2, 3)), "abc", k=0)


# --- comparison ---------------------------------------------------------------------------


def test_permutation_p_values_are_uniform_under_the_null() -> None:
    """300 seeded A/A comparisons of 4 features: rejections at 5% happen about 5% of the time."""
    rng = np.random.default_rng(7)
    aggregator = FeatureImportanceAggregator(seed=1)
    p_values, family_rejections = [], 0
    for _ in range(300):
        a, b = rng.normal(size=(60, 4)), rng.normal(size=(80, 4))
        result = aggregator.compare(a, b, n_permutations=199)
        p_values.append(result.p_values)
        family_rejections += int(result.significant.any())
    pooled = np.concatenate(p_values)
    false_positive_rate = float(np.mean(pooled <= 0.05))
    # 1,200 tests: sd 0.006 around 0.05.
    assert 0.03 <= false_positive_rate <= 0.07, false_positive_rate
    assert stats.kstest(pooled, "uniform").pvalue > 0.001
    # Holm keeps the chance of any false discovery among the 4 features at or below alpha.
    assert family_rejections / 300 <= 0.08


@pytest.mark.parametrize("method", [M.MEAN_ABS, M.MEDIAN_ABS, M.MEAN_RANK])
def test_a_feature_whose_importance_shifted_is_detected(method: AggregationMethod) -> None:
    rng = np.random.default_rng(8)
    a = rng.normal(size=(300, 5))
    b = rng.normal(size=(300, 5)) * np.array([1.0, 1.0, 1.6, 1.0, 1.0])
    result = FeatureImportanceAggregator(seed=2).compare(a, b, method=method, n_permutations=999)
    assert result.changed() == ("feature_2",)
    assert result.difference[2] > 0
    assert result.p_values[2] == pytest.approx(1 / 1000)
    np.testing.assert_allclose(result.difference, DIRECT[method](b) - DIRECT[method](a))


@pytest.mark.parametrize("method", [M.MEAN_ABS, M.RMS, M.MAX_ABS])
def test_vectorised_permutations_equal_a_loop(method: AggregationMethod) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) * 1.3
    result = FeatureImportanceAggregator(seed=9, chunk_bytes=1).compare(
        a, b, method=method, n_permutations=50, correction="bh"
    )
    pooled = np.concatenate([a, b])
    observed = DIRECT[method](b) - DIRECT[method](a)
    generator = np.random.default_rng(9)
    extreme = np.zeros(3)
    for _ in range(50):
        order = generator.permutation(21)
        permuted = DIRECT[method](pooled[order[12:]]) - DIRECT[method](pooled[order[:12]])
        extreme += np.abs(permuted) >= np.abs(observed) - 1e-9
    np.testing.assert_allclose(result.p_values, (1 + extreme) / 51)
    np.testing.assert_allclose(result.adjusted_p_values, adjust_p_values(result.p_values, "bh"))
    assert (result.n_a, result.n_b, result.correction) == (12, 9, "bh")


def test_compare_rejects_mismatched_sets_and_bad_parameters() -> None:
    aggregator = FeatureImportanceAggregator()
    values = _values()
    with pytest.raises(InvalidError, match="same features"):
        aggregator.compare(_explanation(values), _values(), n_permutations=10)
    with pytest.raises(InvalidError, match="'correction'"):
        aggregator.compare(values, values, correction="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="'alpha'"):
        aggregator.compare(values, values, alpha=0.0)
    with pytest.raises(InvalidError, match="'n_permutations'"):
        aggregator.compare(values, values, n_permutations=0)


# --- interactions -------------------------------------------------------------------------


def _product_model(n: int, seed: int = 0) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exact SHAP and interaction values of f = 2 x0 + x1 x2 + 0.5 x3 - x4 (baseline 0).

    With a single all-zero background row, x1 x2 is split evenly: phi_1 = phi_2 = x1 x2 / 2,
    and the interaction values put x1 x2 / 2 in both off-diagonal cells.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    linear = np.array([2.0, 0.0, 0.0, 0.5, -1.0])
    phi = x * linear
    phi[:, 1] += x[:, 1] * x[:, 2] / 2
    phi[:, 2] += x[:, 1] * x[:, 2] / 2
    interaction = np.zeros((n, 5, 5))
    interaction[:, np.arange(5), np.arange(5)] = x * linear
    interaction[:, 1, 2] = interaction[:, 2, 1] = x[:, 1] * x[:, 2] / 2
    np.testing.assert_allclose(interaction.sum(axis=2), phi)
    return x, phi, interaction


def test_interaction_values_rank_the_product_pair_first() -> None:
    x, phi, interaction = _product_model(500)
    report = FeatureImportanceAggregator().interactions(interaction_values=interaction, top=3)
    assert report.source == "interaction_values"
    assert report.pairs[0][:2] == ("feature_1", "feature_2")
    assert report.pairs[0][2] == pytest.approx(np.abs(x[:, 1] * x[:, 2]).mean())
    assert report.pairs[1][2] == 0.0
    assert len(report.pairs) == 3
    assert np.array_equal(report.matrix, report.matrix.T)
    assert np.all(np.diag(report.matrix) == 0)
    # The same values carried by explanations, and as a 4-D positional array.
    explanation = _explanation(phi, **{INTERACTION_VALUES_EXTRA: interaction[..., None]})
    from_extras = FeatureImportanceAggregator().interactions(explanation)
    assert from_extras.pairs[0][:2] == ("x1", "x2")
    from_array = FeatureImportanceAggregator().interactions(interaction[..., None])
    np.testing.assert_allclose(from_array.matrix, report.matrix)


def test_shap_dependence_ranks_the_product_pair_first() -> None:
    x, phi, _ = _product_model(1000)
    report = FeatureImportanceAggregator().interactions(phi, X=x, top=10)
    assert report.source == "shap_dependence"
    assert report.pairs[0][:2] == ("feature_1", "feature_2")
    assert len(report.pairs) == 10
    # Each direction is about E|x| * std(x) / 2 = 0.4; unrelated pairs are bin noise.
    assert report.pairs[0][2] == pytest.approx(0.8, rel=0.15)
    assert report.pairs[0][2] > 4 * report.pairs[1][2]
    assert np.array_equal(report.matrix, report.matrix.T)


def test_shap_dependence_finds_the_interaction_in_a_fitted_tree_model() -> None:
    shap = pytest.importorskip("shap")
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(600, 4))
    y = x[:, 0] + 2 * x[:, 1] * x[:, 3] + 0.5 * x[:, 2]
    model = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(x, y)
    explainer = shap.TreeExplainer(model)
    phi = np.asarray(explainer.shap_values(x[:300]))
    names = ["a", "b", "c", "d"]
    aggregator = FeatureImportanceAggregator()
    heuristic = aggregator.interactions(phi, X=x[:300], feature_names=names)
    assert heuristic.pairs[0][:2] == ("b", "d")
    exact = aggregator.interactions(
        interaction_values=explainer.shap_interaction_values(x[:300]), feature_names=names
    )
    assert exact.pairs[0][:2] == ("b", "d")


def test_interactions_explain_what_they_are_missing() -> None:
    aggregator = FeatureImportanceAggregator()
    _, phi, interaction = _product_model(50)
    with pytest.raises(InvalidError, match="needs the feature values X"):
        aggregator.interactions(phi)
    with pytest.raises(InvalidError, match="needs explanations"):
        aggregator.interactions()
    with pytest.raises(InvalidError, match="'X'"):
        aggregator.interactions(phi, X=np.zeros((50, 4)))
    with pytest.raises(InvalidError, match="'X'"):
        aggregator.interactions(phi, X=[["a"] * 5] * 50)
    with pytest.raises(InvalidError, match="finite"):
        aggregator.interactions(phi, X=np.full((50, 5), math.nan))
    with pytest.raises(InvalidError, match="'interaction_values'"):
        aggregator.interactions(interaction_values=np.zeros((50, 5, 4)))
    with pytest.raises(InvalidError, match="finite"):
        aggregator.interactions(interaction_values=np.full((2, 2, 2), math.inf))
    with pytest.raises(InvalidError, match="do not match"):
        aggregator.interactions(phi[:10], interaction_values=interaction)
    with pytest.raises(InvalidError, match="'feature_names'"):
        aggregator.interactions(interaction_values=interaction, feature_names=["a"])
    with pytest.raises(InvalidError, match="'output'"):
        aggregator.interactions(interaction_values=interaction, output=1)
    with pytest.raises(InvalidError, match="'top'"):
        aggregator.interactions(interaction_values=interaction, top=0)


def test_interaction_values_must_match_the_attributions() -> None:
    _, phi, interaction = _product_model(20)
    bad = _explanation(phi, **{INTERACTION_VALUES_EXTRA: interaction[:5]})
    with pytest.raises(InvalidError, match="do not match"):
        FeatureImportanceAggregator().interactions(bad)


def test_repr_shows_the_configuration() -> None:
    assert repr(FeatureImportanceAggregator(seed=4)) == (
        "FeatureImportanceAggregator(n_bootstrap=1000, confidence_level=0.95, seed=4)"
    )
