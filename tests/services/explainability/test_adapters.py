"""Model adapters: every model family becomes ``f: (n, M) -> (n, K)`` with shap's conventions."""

from __future__ import annotations

import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.adapters import ModelOutputError, adapt, model_family
from synapsenet.services.explainability.models import FloatArray

RNG = np.random.default_rng(7)
X = RNG.normal(size=(240, 4))
Y = X[:, 0] * 2.0 + X[:, 1] * X[:, 2]
Y_BINARY = (Y > 0).astype(int)
Y_CLASSES = np.digitize(Y, [-1.0, 1.0])
FRAME = pd.DataFrame(X, columns=["age", "income", "tenure", "score"])


def _logit(p: FloatArray) -> FloatArray:
    result: FloatArray = np.log(p) - np.log1p(-p)
    return result


BINARY_CLASSIFIERS: list[Any] = [
    LogisticRegression(),
    RandomForestClassifier(n_estimators=10, random_state=0),
    xgb.XGBClassifier(n_estimators=10, max_depth=3),
    lgb.LGBMClassifier(n_estimators=10, verbose=-1),
]


@pytest.mark.parametrize("model", BINARY_CLASSIFIERS, ids=lambda m: type(m).__name__)
def test_binary_classifier_probability_has_two_outputs_named_by_class(model: Any) -> None:
    model.fit(X, Y_BINARY)
    function = adapt(model)
    predicted = function(X[:9])
    assert function.output == "probability"
    assert function.n_outputs == 2
    assert function.output_names == ("0", "1")
    assert function.link_default == "logit"
    assert function.kind == "classification"
    np.testing.assert_allclose(predicted, model.predict_proba(X[:9]), rtol=1e-12)


def test_output_names_are_the_class_labels() -> None:
    labels = np.where(Y_BINARY == 1, "churn", "stay")
    function = adapt(LogisticRegression().fit(X, labels))
    assert function.output_names == ("churn", "stay")


@pytest.mark.parametrize(
    "model",
    [
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        xgb.XGBClassifier(n_estimators=10, max_depth=3),
        lgb.LGBMClassifier(n_estimators=10, verbose=-1),
    ],
    ids=lambda m: type(m).__name__,
)
def test_raw_binary_boosted_classifier_is_one_log_odds_output(model: Any) -> None:
    model.fit(X, Y_BINARY)
    function = adapt(model, output="raw")
    assert function.n_outputs == 1
    assert function.output_names == ("1",)
    assert function.link_default == "identity"
    positive = model.predict_proba(X[:9])[:, 1]
    np.testing.assert_allclose(function(X[:9])[:, 0], _logit(positive), rtol=1e-5, atol=1e-5)


def test_forest_raw_output_is_its_probabilities() -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y_CLASSES)
    function = adapt(forest, output="raw")
    assert function.output == "probability"
    assert function.n_outputs == 3
    np.testing.assert_allclose(function(X[:5]), forest.predict_proba(X[:5]))


def test_multiclass_probabilities_sum_to_one_for_every_family() -> None:
    models: list[Any] = [
        LogisticRegression(max_iter=500),
        xgb.XGBClassifier(n_estimators=5),
        lgb.LGBMClassifier(n_estimators=5, verbose=-1),
    ]
    for model in models:
        function = adapt(model.fit(X, Y_CLASSES))
        predicted = function(X[:20])
        assert predicted.shape == (20, 3)
        np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-6)


def test_xgboost_booster_matches_its_sklearn_wrapper() -> None:
    wrapper = xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(X, Y_CLASSES)
    booster = wrapper.get_booster()
    for output in ("probability", "raw"):
        ours = adapt(booster, output=output)(X[:10])
        theirs = adapt(wrapper, output=output)(X[:10])
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    binary = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=Y_BINARY), 5
    )
    function = adapt(binary)
    assert function.n_outputs == 2
    np.testing.assert_allclose(function(X[:4])[:, 1], binary.predict(xgb.DMatrix(X[:4])), 1e-6)


def test_lightgbm_booster_matches_its_sklearn_wrapper() -> None:
    wrapper = lgb.LGBMClassifier(n_estimators=8, verbose=-1).fit(X, Y_CLASSES)
    for output in ("probability", "raw"):
        ours = adapt(wrapper.booster_, output=output)(X[:10])
        theirs = adapt(wrapper, output=output)(X[:10])
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    regressor = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, Y), 5)
    function = adapt(regressor)
    assert (function.kind, function.n_outputs, function.output) == ("regression", 1, "prediction")
    with pytest.raises(InvalidError, match="'output' parameter of adapt"):
        adapt(regressor, output="probability")


@pytest.mark.parametrize(
    "model",
    [
        RandomForestRegressor(n_estimators=3, random_state=0),
        LinearRegression(),
        lgb.LGBMRegressor(n_estimators=3, verbose=-1),
        xgb.XGBRegressor(n_estimators=3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_model_fitted_on_a_dataframe_is_called_without_feature_name_warnings(model: Any) -> None:
    model.fit(FRAME, Y)
    function = adapt(model, example=X[:1])
    assert function.feature_names == tuple(FRAME.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = function(X[:6])
    np.testing.assert_allclose(predicted[:, 0], model.predict(FRAME.iloc[:6]), rtol=1e-6)


def test_multi_target_regressor_has_one_output_per_target() -> None:
    targets = np.column_stack([Y, -Y, X[:, 3]])
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, targets)
    assert adapt(forest).n_outputs == 3
    linear = LinearRegression().fit(X, targets)
    # LinearRegression does not declare its outputs, so it is called once on the example.
    function = adapt(linear, example=X[:1])
    assert function.n_outputs == 3
    assert function.output_names == ("output_0", "output_1", "output_2")


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(1, 40), n_features=st.integers(1, 6))
def test_callable_with_one_dimensional_output_has_one_output(n_rows: int, n_features: int) -> None:
    data = np.arange(n_rows * n_features, dtype=np.float64).reshape(n_rows, n_features)
    function = adapt(lambda rows: rows.sum(axis=1), example=data[:1])
    predicted = function(data)
    assert predicted.shape == (n_rows, 1)
    np.testing.assert_array_equal(predicted[:, 0], data.sum(axis=1))
    assert (function.family, function.kind, function.output_names) == (
        "callable",
        "regression",
        ("output",),
    )


def test_callable_declared_as_probability_defaults_to_the_logit_link() -> None:
    def probabilities(rows: FloatArray) -> FloatArray:
        positive = 1.0 / (1.0 + np.exp(-rows[:, 0]))
        return np.column_stack([1.0 - positive, positive])

    function = adapt(probabilities, output="probability", example=X[:1])
    assert (function.kind, function.link_default, function.n_outputs) == (
        "classification",
        "logit",
        2,
    )


def test_callable_without_an_example_cannot_be_adapted() -> None:
    with pytest.raises(InvalidError, match="Cannot tell how many outputs"):
        adapt(lambda rows: rows[:, 0])


def test_callable_can_receive_a_dataframe_with_the_given_names() -> None:
    seen: list[Any] = []

    def model(frame: pd.DataFrame) -> FloatArray:
        seen.append(frame)
        return np.asarray(frame["income"] * 2.0, dtype=np.float64)

    function = adapt(model, as_frame=True, feature_names=list(FRAME.columns), example=X[:1])
    np.testing.assert_allclose(function(X[:3])[:, 0], X[:3, 1] * 2.0)
    assert list(seen[-1].columns) == list(FRAME.columns)


def test_predictions_are_made_in_chunks_of_batch_size() -> None:
    sizes: list[int] = []

    def model(rows: FloatArray) -> FloatArray:
        sizes.append(rows.shape[0])
        return rows[:, :2] * 3.0

    function = adapt(model, example=X[:1], batch_size=7)
    sizes.clear()
    predicted = function(X[:30])
    assert sizes == [7, 7, 7, 7, 2]
    np.testing.assert_array_equal(predicted, X[:30, :2] * 3.0)


def test_non_finite_predictions_are_rejected_with_the_row() -> None:
    def model(rows: FloatArray) -> FloatArray:
        out = rows[:, 0].copy()
        if out.size > 3:
            out[3] = np.nan
        return out

    function = adapt(model, example=X[:1])
    with pytest.raises(ModelOutputError, match="row 3"):
        function(X[:5])


def test_wrong_number_of_prediction_rows_is_rejected() -> None:
    function = adapt(lambda rows: rows[:1, 0], example=X[:1])
    with pytest.raises(ModelOutputError, match="returned 1 rows for 4 instances"):
        function(X[:4])


def test_missing_value_support_comes_from_the_model() -> None:
    assert adapt(HistGradientBoostingRegressor(max_iter=3).fit(X, Y)).allow_nan
    assert adapt(xgb.XGBRegressor(n_estimators=2).fit(X, Y)).allow_nan
    assert not adapt(Ridge().fit(X, Y), example=X[:1]).allow_nan
    assert not adapt(lambda rows: rows[:, 0], example=X[:1]).allow_nan
    assert adapt(lambda rows: rows[:, 0], example=X[:1], allow_nan=True).allow_nan


def test_regressor_has_no_probability_output() -> None:
    with pytest.raises(InvalidError) as caught:
        adapt(Ridge().fit(X, Y), output="probability")
    assert str(caught.value) == (
        "The 'output' parameter of adapt must be 'auto' or 'raw' for a regressor (it has no "
        "probabilities). Got 'probability' instead."
    )


def test_unknown_output_is_rejected_with_the_choices() -> None:
    with pytest.raises(InvalidError, match=r"must be one of 'auto', 'probability', 'raw'"):
        adapt(Ridge().fit(X, Y), output="margin")


def test_objects_that_are_not_models_are_rejected() -> None:
    with pytest.raises(InvalidError, match="'model' parameter of adapt"):
        model_family(object())
