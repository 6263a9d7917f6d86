"""Exact interventional Shapley values: a naive oracle, shap's TreeExplainer, the axioms."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.exact import exact_shapley
from synapsenet.services.explainability.models import ExplanationType, FloatArray

Model = Callable[[FloatArray], FloatArray]


def random_model(n_features: int, seed: int) -> Model:
    """A smooth two-output model with pairwise and three-way interactions."""
    rng = np.random.default_rng(seed)
    linear = rng.normal(size=n_features)
    pairwise = rng.normal(size=(n_features, n_features))
    third = rng.choice(n_features, size=min(3, n_features), replace=False)

    def f(x: FloatArray) -> FloatArray:
        first = np.tanh(x @ linear) + 0.3 * np.einsum("ni,ij,nj->n", x, pairwise, x)
        first = first + np.prod(x[:, third], axis=1)
        second = np.sin(x).sum(axis=1) + np.maximum(x[:, 0], x[:, -1])
        return np.stack([first, second], axis=1)

    return f


def naive_shapley(
    f: Model, x: FloatArray, background: FloatArray, weights: FloatArray
) -> FloatArray:
    """Textbook Shapley values: loop over every subset with the factorial weights."""
    n_features = x.size
    share = weights / weights.sum()

    def value(subset: tuple[int, ...]) -> FloatArray:
        rows = background.copy()
        rows[:, list(subset)] = x[list(subset)]
        result: FloatArray = share @ f(rows)
        return result

    phi = np.zeros((n_features, f(x[None]).shape[1]))
    for j in range(n_features):
        others = [i for i in range(n_features) if i != j]
        for size in range(n_features):
            weight = (
                math.factorial(size)
                * math.factorial(n_features - size - 1)
                / math.factorial(n_features)
            )
            for subset in itertools.combinations(others, size):
                phi[j] += weight * (value((*subset, j)) - value(subset))
    return phi


@settings(max_examples=12, deadline=None)
@given(
    n_features=st.integers(min_value=3, max_value=6),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_exact_values_match_the_textbook_formula(n_features: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = random_model(n_features, seed)
    instances = rng.normal(size=(2, n_features))
    background = rng.normal(size=(5, n_features))
    weights = rng.random(5) + 0.1
    explanation = exact_shapley(f, instances, background, weights=weights)
    expected = np.stack([naive_shapley(f, x, background, weights) for x in instances])
    np.testing.assert_allclose(explanation.values, expected, rtol=0, atol=1e-10)
    assert explanation.type is ExplanationType.SHAP_EXACT
    assert explanation.values.shape == (2, n_features, 2)


@settings(max_examples=20, deadline=None)
@given(
    n_features=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_values_add_up_to_the_prediction(n_features: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = random_model(n_features, seed)
    instances = rng.normal(size=(3, n_features))
    explanation = exact_shapley(f, instances, rng.normal(size=(4, n_features)))
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, explanation.predictions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(explanation.predictions, f(instances), rtol=0, atol=0)
    assert explanation.local_accuracy_error is not None
    assert explanation.local_accuracy_error < 1e-12


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_symmetric_features_get_equal_values_and_unused_features_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)

    def f(x: FloatArray) -> FloatArray:
        # Symmetric in features 0 and 1; feature 4 is never read.
        pair = x[:, 0] + x[:, 1]
        return (np.tanh(pair * x[:, 2]) + x[:, 0] * x[:, 1] * x[:, 3] + x[:, 2] ** 2)[:, None]

    instance = rng.normal(size=5)
    instance[1] = instance[0]
    background = rng.normal(size=(6, 5))
    background[:, 1] = background[:, 0]
    values = exact_shapley(f, instance, background).values[0, :, 0]
    assert values[0] == pytest.approx(values[1], abs=1e-12)
    assert values[4] == pytest.approx(0.0, abs=1e-14)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_values_are_linear_in_the_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    f, g = random_model(4, seed), random_model(4, seed + 1)
    instances, background = rng.normal(size=(2, 4)), rng.normal(size=(5, 4))
    both = exact_shapley(lambda x: 2.0 * f(x) - g(x), instances, background).values
    separate = (
        2.0 * exact_shapley(f, instances, background).values
        - exact_shapley(g, instances, background).values
    )
    np.testing.assert_allclose(both, separate, rtol=0, atol=1e-12)


def test_exact_values_match_shap_interventional_tree_explainer() -> None:
    import shap
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(3)
    data = rng.normal(size=(400, 7))
    target = data[:, 0] * data[:, 1] + np.sin(data[:, 2]) + (data[:, 3] > 0) * data[:, 4]
    model = GradientBoostingRegressor(n_estimators=40, max_depth=4, random_state=0)
    model.fit(data, target)
    background, instances = data[:30], data[300:306]
    reference = shap.TreeExplainer(
        model, data=background, feature_perturbation="interventional"
    ).shap_values(instances)
    explanation = exact_shapley(model.predict, instances, background)
    np.testing.assert_allclose(explanation.values[:, :, 0], reference, rtol=0, atol=1e-6)


def test_logit_link_attributes_log_odds_against_the_log_odds_of_the_mean() -> None:
    rng = np.random.default_rng(5)
    coefficients = rng.normal(size=4)

    def probability(x: FloatArray) -> FloatArray:
        return (1.0 / (1.0 + np.exp(-(x @ coefficients + x[:, 0] * x[:, 1]))))[:, None]

    instances, background = rng.normal(size=(3, 4)), rng.normal(size=(8, 4))
    explanation = exact_shapley(probability, instances, background, link="logit")
    p = probability(instances)
    mean = probability(background).mean()
    np.testing.assert_allclose(explanation.predictions, np.log(p / (1 - p)), rtol=1e-12)
    np.testing.assert_allclose(explanation.base_values, np.log(mean / (1 - mean)), rtol=1e-12)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, explanation.predictions, rtol=0, atol=1e-12)


def test_weighted_background_equals_repeated_rows() -> None:
    rng = np.random.default_rng(8)
    f = random_model(5, 8)
    instances, background = rng.normal(size=(2, 5)), rng.normal(size=(4, 5))
    weighted = exact_shapley(f, instances, background, weights=[3, 1, 2, 1]).values
    repeated = exact_shapley(f, instances, np.repeat(background, [3, 1, 2, 1], axis=0)).values
    np.testing.assert_allclose(weighted, repeated, rtol=0, atol=1e-13)


def test_results_do_not_depend_on_the_batch_size() -> None:
    rng = np.random.default_rng(9)
    f = random_model(6, 9)
    instances, background = rng.normal(size=(3, 6)), rng.normal(size=(5, 6))
    small = exact_shapley(f, instances, background, batch_size=7).values
    large = exact_shapley(f, instances, background).values
    np.testing.assert_array_equal(small, large)


def test_names_and_parameters_are_reported() -> None:
    f = random_model(3, 0)
    explanation = exact_shapley(f, np.zeros((1, 3)), np.ones((2, 3)), feature_names=["a", "b", "c"])
    assert explanation.feature_names == ("a", "b", "c")
    assert explanation.output_names == ("output_0", "output_1")
    assert explanation.parameters["link"] == "identity"
    assert explanation.seed is None


def test_more_than_sixteen_features_are_refused() -> None:
    with pytest.raises(InvalidError, match=r"at most 16 features\. Got 17"):
        exact_shapley(lambda x: x.sum(axis=1), np.zeros((1, 17)), np.zeros((2, 17)))


@pytest.mark.parametrize(
    ("instances", "background", "weights", "message"),
    [
        (np.zeros((1, 3)), np.zeros((0, 3)), None, "'background' parameter"),
        (np.zeros((1, 4)), np.zeros((2, 3)), None, "as many features as the background"),
        (np.zeros((1, 3)), np.zeros((2, 3)), [1.0, -1.0], "'weights' parameter"),
        (np.zeros((1, 3)), np.zeros((2, 3)), [1.0], "'weights' parameter"),
    ],
)
def test_malformed_inputs_get_clear_errors(
    instances: FloatArray, background: FloatArray, weights: list[float] | None, message: str
) -> None:
    with pytest.raises(InvalidError, match=message):
        exact_shapley(lambda x: x.sum(axis=1), instances, background, weights=weights)


def test_a_model_returning_nan_or_the_wrong_shape_is_reported() -> None:
    with pytest.raises(InvalidError, match="NaN or infinite"):
        exact_shapley(lambda x: np.full(len(x), np.nan), np.zeros((1, 2)), np.zeros((2, 2)))
    with pytest.raises(InvalidError, match="one row of outputs per input row"):
        exact_shapley(lambda x: np.zeros(3), np.zeros((1, 2)), np.zeros((2, 2)))
    with pytest.raises(InvalidError, match="'link' parameter of exact_shapley"):
        exact_shapley(lambda x: x, np.zeros((1, 2)), np.zeros((2, 2)), link="probit")
