"""LimeTabular against ground truth on linear models, the lime library and scikit-learn."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lime.lime_base import LimeBase
from lime.lime_tabular import LimeTabularExplainer
from scipy.stats import truncnorm
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import Ridge

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._surrogate import exponential_kernel, fit_surrogate
from synapsenet.services.explainability._tabular_sampling import TabularStatistics
from synapsenet.services.explainability.adapters import ModelOutputError
from synapsenet.services.explainability.lime_tabular import LimeTabular
from synapsenet.services.explainability.models import ExplanationType

FloatArray = npt.NDArray[np.float64]

COEFFICIENTS = np.array([3.0, -2.0, 1.5, -1.0, 0.5, 0.25])


@pytest.fixture(scope="module")
def standard_data() -> FloatArray:
    return np.random.default_rng(0).standard_normal((2000, COEFFICIENTS.size))


def linear(rows: FloatArray) -> FloatArray:
    return np.asarray(rows @ COEFFICIENTS, dtype=np.float64)


@pytest.fixture(scope="module")
def classifier() -> tuple[FloatArray, GradientBoostingClassifier]:
    features, y = make_classification(
        n_samples=800, n_features=8, n_informative=5, n_redundant=1, random_state=0
    )
    model = GradientBoostingClassifier(n_estimators=60, random_state=0).fit(features, y)
    return features, model


def _bin_means(stats: TabularStatistics, feature: int) -> FloatArray:
    """Mean of lime's truncated normal in each bin of a discretised feature."""
    count = int(stats.n_levels[feature])
    mean, std = stats.bin_mean[feature, :count], stats.bin_std[feature, :count]
    low = (stats.bin_low[feature, :count] - mean) / std
    high = (stats.bin_high[feature, :count] - mean) / std
    return np.asarray(truncnorm.mean(low, high, loc=mean, scale=std), dtype=np.float64)


# ---------------------------------------------------------------------- ground truth


def test_continuous_lime_recovers_linear_coefficients(standard_data: FloatArray) -> None:
    explainer = LimeTabular(
        standard_data, discretize=None, mode="regression", feature_selection="none"
    )
    for row in standard_data[:5]:
        weights = explainer.explain(linear, row).values[0, :, 0]
        # The surrogate sees standardised features, so it recovers w * std (ridge's alpha=1
        # shrinks by well under 1% with 5000 samples).
        np.testing.assert_allclose(weights, COEFFICIENTS * standard_data.std(axis=0), rtol=0.01)
        assert np.array_equal(np.sign(weights), np.sign(COEFFICIENTS))
        ranking = np.argsort(-np.abs(weights))
        assert np.array_equal(ranking, np.arange(COEFFICIENTS.size))


def test_discretised_lime_weights_are_bin_mean_differences(standard_data: FloatArray) -> None:
    # For an additive model and independent sampling, the population weight of "same bin as
    # the instance" is w_j * (mean of the instance's bin - mean of the other bins).
    explainer = LimeTabular(standard_data, mode="regression", feature_selection="none")
    stats = explainer.statistics_
    for row in standard_data[:5]:
        weights = explainer.explain(linear, row).values[0, :, 0]
        levels = stats.levels_of(row)
        expected = np.empty(COEFFICIENTS.size)
        for j, coefficient in enumerate(COEFFICIENTS):
            means = _bin_means(stats, j)
            frequency = stats.frequencies[j, : means.size]
            others = np.delete(np.arange(means.size), levels[j])
            rest = frequency[others] @ means[others] / frequency[others].sum()
            expected[j] = coefficient * (means[levels[j]] - rest)
        np.testing.assert_allclose(weights, expected, rtol=0.1, atol=0.02)
        assert np.array_equal(np.sign(weights), np.sign(expected))


def test_surrogate_matches_sklearn_weighted_ridge() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 2, (500, 7)).astype(float)
    data[0] = 1.0
    targets = rng.standard_normal((500, 3)) + data @ rng.standard_normal((7, 3))
    weights = exponential_kernel(rng.uniform(0, 3, 500), 1.5)
    fit = fit_surrogate(data, targets, weights, n_features=7, feature_selection="none")
    for k in range(3):
        reference = Ridge(alpha=1.0).fit(data, targets[:, k], sample_weight=weights)
        np.testing.assert_allclose(fit.coef[:, k], reference.coef_, rtol=1e-9, atol=1e-12)
        assert fit.intercept[k] == pytest.approx(reference.intercept_, rel=1e-9)
        score = reference.score(data, targets[:, k], sample_weight=weights)
        assert fit.score[k] == pytest.approx(score, rel=1e-9)
        assert fit.local_prediction[k] == pytest.approx(reference.predict(data[:1])[0], rel=1e-9)


@pytest.mark.parametrize(
    ("method", "lime_method", "n_features"),
    [("forward", "forward_selection", 4), ("highest_weights", "highest_weights", 4)],
)
def test_feature_selection_matches_lime(method: str, lime_method: str, n_features: int) -> None:
    rng = np.random.default_rng(2)
    data = (rng.random((800, 9)) < 0.3).astype(float)
    data[0] = 1.0
    target = data @ np.array([2.0, -1.5, 0.1, 1.0, 0.05, -0.7, 0.0, 0.3, 0.2])
    target = target + 0.3 * rng.standard_normal(800)
    weights = exponential_kernel(np.sqrt((1 - data).sum(axis=1)), 2.25)
    fit = fit_surrogate(
        data, target[:, None], weights, n_features=n_features, feature_selection=method
    )
    base = LimeBase(lambda d: d, random_state=0)
    expected = base.feature_selection(data, target, weights, n_features, lime_method)
    assert set(fit.selected[0]) == {int(i) for i in expected}
    assert np.count_nonzero(fit.coef) == n_features


def test_auto_selection_follows_lime_rule(
    classifier: tuple[FloatArray, GradientBoostingClassifier],
) -> None:
    features, model = classifier
    predict = model.predict_proba
    few = LimeTabular(features, n_features=3).explain(predict, features[0], labels=(1,))
    many = LimeTabular(features, n_features=7).explain(predict, features[0], labels=(1,))
    assert np.count_nonzero(few.values) == 3
    assert np.count_nonzero(many.values) == 7
    forward = LimeTabular(features, n_features=3, feature_selection="forward")
    assert np.array_equal(forward.explain(predict, features[0], labels=(1,)).values, few.values)


# ---------------------------------------------------------------------- against lime


def _top(weights: FloatArray, k: int) -> set[int]:
    return {int(i) for i in np.argsort(-np.abs(weights))[:k]}


def test_top_features_agree_with_lime(
    classifier: tuple[FloatArray, GradientBoostingClassifier],
) -> None:
    features, model = classifier
    predict = model.predict_proba
    ours = LimeTabular(features, n_features=features.shape[1])
    overlaps = []
    for i in range(6):
        mine = ours.explain(predict, features[i], labels=(1,)).values[0, :, 0]
        reference = LimeTabularExplainer(features, mode="classification", random_state=i)
        explanation = reference.explain_instance(
            features[i], predict, num_features=features.shape[1], num_samples=5000, labels=(1,)
        )
        theirs = np.zeros(features.shape[1])
        for feature, weight in explanation.local_exp[1]:
            theirs[feature] = weight
        overlaps.append(len(_top(mine, 3) & _top(theirs, 3)) / 3)
        # Same method, same estimand: the weights themselves are close.
        np.testing.assert_allclose(mine, theirs, atol=0.05)
    assert np.mean(overlaps) >= 2 / 3


def test_statistics_match_lime_discretizer(standard_data: FloatArray) -> None:
    reference = LimeTabularExplainer(standard_data, random_state=0)
    stats = LimeTabular(standard_data).statistics_
    discretizer = reference.discretizer
    for j in range(standard_data.shape[1]):
        count = int(stats.n_levels[j])
        np.testing.assert_allclose(stats.bin_mean[j, :count], discretizer.means[j])
        np.testing.assert_allclose(stats.bin_std[j, :count], discretizer.stds[j])
        np.testing.assert_allclose(stats.bin_low[j, :count], discretizer.mins[j])
        np.testing.assert_allclose(stats.bin_high[j, :count], discretizer.maxs[j])
        np.testing.assert_allclose(stats.frequencies[j, :count], reference.feature_frequencies[j])


# ---------------------------------------------------------------------- behaviour


def test_same_seed_same_explanation_other_seed_differs(standard_data: FloatArray) -> None:
    first = LimeTabular(standard_data, mode="regression", seed=7).explain(linear, standard_data[3])
    again = LimeTabular(standard_data, mode="regression", seed=7).explain(linear, standard_data[3])
    other = LimeTabular(standard_data, mode="regression", seed=8).explain(linear, standard_data[3])
    assert np.array_equal(first.values, again.values)
    assert first.extras["score"].tolist() == again.extras["score"].tolist()
    assert not np.array_equal(first.values, other.values)
    assert first.seed == 7
    assert first.type is ExplanationType.LIME_TABULAR


def test_explain_many_equals_explaining_each_row(
    classifier: tuple[FloatArray, GradientBoostingClassifier],
) -> None:
    features, model = classifier
    calls: list[int] = []

    def predict(rows: FloatArray) -> FloatArray:
        calls.append(rows.shape[0])
        return np.asarray(model.predict_proba(rows))

    explainer = LimeTabular(features, n_samples=1000)
    many = explainer.explain_many(predict, features[:4])
    assert calls == [4 + 999]  # one model call for every instance
    assert many.values.shape == (4, features.shape[1], 2)
    assert many.extras["score"].shape == (4, 2)
    assert len(many.extras["feature_descriptions"]) == 4
    for i in range(4):
        single = explainer.explain(predict, features[i])
        np.testing.assert_allclose(many.values[i], single.values[0], atol=1e-12)
        np.testing.assert_allclose(many.predictions[i], single.predictions[0])


def test_classification_outputs_labels_and_top_labels(
    classifier: tuple[FloatArray, GradientBoostingClassifier],
) -> None:
    features, model = classifier
    predict = model.predict_proba
    explainer = LimeTabular(features, feature_selection="none")
    both = explainer.explain(predict, features[0])
    assert both.output_names == ("0", "1")
    assert both.extras["labels"] == (0, 1)
    # P(class 0) = 1 - P(class 1): the surrogate's weights are exact negatives.
    np.testing.assert_allclose(both.values[0, :, 0], -both.values[0, :, 1], atol=1e-10)
    np.testing.assert_allclose(both.predictions[0], predict(features[:1])[0])
    top = explainer.explain(predict, features[0], top_labels=1)
    winner = int(np.argmax(predict(features[:1])[0]))
    assert top.extras["labels"] == (winner,)
    np.testing.assert_allclose(top.values[0, :, 0], both.values[0, :, winner])
    local = both.extras["local_prediction"][0]
    assert both.extras["intercept"][0] + both.values[0].sum(axis=0) == pytest.approx(local)


def test_categorical_feature_driving_the_model_ranks_first() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((1000, 4))
    data[:, 2] = rng.integers(0, 4, 1000)

    def predict(rows: FloatArray) -> FloatArray:
        return np.asarray(3.0 * (rows[:, 2] == 1) + 0.2 * rows[:, 0], dtype=np.float64)

    explainer = LimeTabular(
        data, categorical_features=[2], mode="regression", feature_names=["a", "b", "c", "d"]
    )
    row = np.array([0.1, -0.3, 1.0, 0.5])
    explanation = explainer.explain(predict, row)
    weights = explanation.values[0, :, 0]
    assert int(np.argmax(np.abs(weights))) == 2
    assert weights[2] == pytest.approx(3.0, rel=0.05)
    descriptions = explanation.extras["feature_descriptions"][0]
    assert descriptions[2] == "c=1"
    # 0.1 lies between the median and the upper quartile of a standard normal.
    assert re.fullmatch(r"-?0\.\d\d < a <= 0\.\d\d", descriptions[0])


def test_decile_discretisation_and_descriptions(standard_data: FloatArray) -> None:
    explainer = LimeTabular(standard_data, discretize="decile", mode="regression")
    assert explainer.statistics_.n_levels.tolist() == [10] * COEFFICIENTS.size
    low = np.full(COEFFICIENTS.size, -5.0)
    descriptions = explainer.explain(linear, low).extras["feature_descriptions"][0]
    assert all(text.startswith(f"x{j} <= ") for j, text in enumerate(descriptions))
    assert explainer.explain(linear, low).parameters["discretize"] == "decile"


def test_kernel_width_default_and_parameters(standard_data: FloatArray) -> None:
    explanation = LimeTabular(standard_data, mode="regression").explain(linear, standard_data[0])
    assert explanation.parameters["kernel_width"] == pytest.approx(0.75 * np.sqrt(6))
    assert explanation.parameters["n_samples"] == 4097  # the instance and 2^12 Sobol' points
    assert explanation.parameters["sampling"] == "sobol"
    assert explanation.runtime_seconds > 0


def test_dataframe_training_data_names_features() -> None:
    frame = pd.DataFrame(
        np.random.default_rng(4).standard_normal((300, 3)), columns=["age", "income", "debt"]
    )
    explainer = LimeTabular(frame, mode="regression", categorical_features=())
    explanation = explainer.explain(lambda rows: rows[:, 1] * 2.0, frame.iloc[0])
    assert explanation.feature_names == ("age", "income", "debt")
    assert int(np.argmax(np.abs(explanation.values[0, :, 0]))) == 1


@settings(max_examples=15, deadline=None)
@given(
    shift=st.floats(-100, 100),
    scale=st.floats(0.1, 10),
    seed=st.integers(0, 2**16),
)
def test_weights_are_linear_in_the_model_output(shift: float, scale: float, seed: int) -> None:
    data = np.random.default_rng(5).standard_normal((200, 4))
    explainer = LimeTabular(data, mode="regression", n_samples=300, seed=seed)

    def model(rows: FloatArray) -> FloatArray:
        return np.asarray(np.sin(rows[:, 0]) + rows[:, 1] * rows[:, 2], dtype=np.float64)

    base = explainer.explain(model, data[0])
    moved = explainer.explain(lambda rows: scale * model(rows) + shift, data[0])
    np.testing.assert_allclose(moved.values, scale * base.values, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(moved.base_values, scale * base.base_values + shift, rtol=1e-7)


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"n_samples": -3}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_features": 0}, "n_features"),
        ({"feature_selection": "lasso"}, "feature_selection"),
        ({"mode": "ranking"}, "mode"),
        ({"sampling": "halton"}, "sampling"),
        ({"kernel_width": -1.0}, "kernel_width"),
        ({"discretize": "entropy"}, "discretize"),
        ({"categorical_features": [9]}, "categorical_features"),
        ({"categorical_features": "x0"}, "categorical_features"),
        ({"feature_names": ["a", "b"]}, "feature_names"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_are_rejected_with_the_field_named(
    standard_data: FloatArray, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        LimeTabular(standard_data, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert f"The '{field}' parameter of LimeTabular must be" in caught.value.detail


def test_sklearn_style_message() -> None:
    with pytest.raises(InvalidError, match=r"must be an int >= 2\. Got -3 instead\."):
        LimeTabular(np.ones((3, 2)), n_samples=-3)


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (np.empty((0, 3)), "at least one row"),
        (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), "infinite"),
    ],
)
def test_bad_training_data_is_rejected(training: FloatArray, message: str) -> None:
    with pytest.raises(InvalidError, match=message) as caught:
        LimeTabular(training)
    assert caught.value.field == "training_data"


def test_bad_instances_are_rejected(standard_data: FloatArray) -> None:
    explainer = LimeTabular(standard_data, mode="regression")
    with pytest.raises(InvalidError, match="must have 6 features") as caught:
        explainer.explain(linear, standard_data[0, :4])
    assert caught.value.field == "x"
    nan_row = standard_data[0].copy()
    nan_row[2] = np.nan
    with pytest.raises(InvalidError, match="NaN"):
        explainer.explain(linear, nan_row)
    with pytest.raises(InvalidError, match="one instance"):
        explainer.explain(linear, standard_data[:2])
    with pytest.raises(InvalidError, match="must have 6 features"):
        explainer.explain_many(linear, standard_data[:3, :5])


BadModel = Callable[[FloatArray], object]


@pytest.mark.parametrize(
    ("mode", "model", "message"),
    [
        ("classification", lambda rows: rows[:, 0], "predict_proba"),
        ("regression", lambda rows: rows[:3, 0], "Got shape"),
        ("regression", lambda rows: np.full(rows.shape[0], np.nan), "NaN"),
        ("regression", lambda rows: ["x"] * rows.shape[0], "must return numbers"),
    ],
)
def test_bad_model_outputs_are_rejected(
    standard_data: FloatArray, mode: str, model: BadModel, message: str
) -> None:
    explainer = LimeTabular(standard_data, mode=mode, n_samples=50)
    with pytest.raises(ModelOutputError, match=message):
        explainer.explain(model, standard_data[0])  # type: ignore[arg-type]


def test_bad_labels_are_rejected(classifier: tuple[FloatArray, GradientBoostingClassifier]) -> None:
    features, model = classifier
    explainer = LimeTabular(features, n_samples=50)
    predict = model.predict_proba
    with pytest.raises(InvalidError, match=r"output indices in \[0, 1\]"):
        explainer.explain(predict, features[0], labels=(2,))
    with pytest.raises(InvalidError, match="None when 'labels' is given"):
        explainer.explain(predict, features[0], labels=(1,), top_labels=1)
