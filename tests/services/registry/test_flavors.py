"""Safe serialisation by flavour, and signature inference from fitted models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from synapsenet.errors import InvalidError
from synapsenet.services.registry.flavors import (
    _sklearn_wrapper,
    deserialize,
    detect_flavor,
    serialize,
)
from synapsenet.services.registry.models import ModelFlavor, ModelSignature, OutputKind
from synapsenet.services.registry.signatures import infer_signature
from tests.services.registry.conftest import FEATURES, training_data


class CustomEstimator(BaseEstimator):  # type: ignore[misc]
    """A scikit-learn compatible estimator from outside scikit-learn."""


class NoFeatures:
    """Says nothing about its inputs and has no predict method."""


def test_estimators_from_other_modules_are_detected_as_sklearn() -> None:
    assert detect_flavor(CustomEstimator()) is ModelFlavor.SKLEARN


def test_a_flavour_that_does_not_fit_the_model_is_refused() -> None:
    with pytest.raises(InvalidError, match="fitted LightGBM model"):
        serialize(NoFeatures(), ModelFlavor.LIGHTGBM)
    with pytest.raises(InvalidError, match="fitted XGBoost model"):
        serialize(NoFeatures(), ModelFlavor.XGBOOST)


def test_xgboost_wrappers_are_rebuilt_by_estimator_type() -> None:
    import xgboost

    x, y = training_data(60)
    regressor = xgboost.XGBRegressor(n_estimators=3, max_depth=2).fit(x, y.astype(float))
    loaded = deserialize(serialize(regressor, ModelFlavor.XGBOOST), ModelFlavor.XGBOOST)
    assert isinstance(loaded, xgboost.XGBRegressor)
    np.testing.assert_allclose(loaded.predict(x), regressor.predict(x), rtol=1e-6)
    ranker = xgboost.XGBRanker(n_estimators=2, max_depth=2).fit(x, y, qid=np.repeat([0, 1], 30))
    assert isinstance(
        deserialize(serialize(ranker, ModelFlavor.XGBOOST), ModelFlavor.XGBOOST), xgboost.Booster
    )
    assert _sklearn_wrapper(json.dumps({"_estimator_type": "ranker"})) is None
    assert _sklearn_wrapper("not json") is None
    assert _sklearn_wrapper("[1, 2]") is None
    assert _sklearn_wrapper(None) is None


def test_given_feature_names_must_match_the_model() -> None:
    from sklearn.linear_model import LinearRegression

    x, y = training_data(30)
    model = LinearRegression().fit(x.to_numpy(), y)
    inferred = infer_signature(model, ModelFlavor.SKLEARN)
    assert inferred == ModelSignature.numeric(("f0", "f1", "f2"), OutputKind.REGRESSION)
    named = infer_signature(model, ModelFlavor.SKLEARN, ["a", "b", "c"])
    assert named.feature_names == ("a", "b", "c")
    with pytest.raises(InvalidError, match="has 2 names, but the model takes 3") as caught:
        infer_signature(model, ModelFlavor.SKLEARN, ["a", "b"])
    assert caught.value.field == "feature_names"


def test_a_model_that_does_not_name_its_inputs_needs_feature_names() -> None:
    with pytest.raises(InvalidError, match="pass feature_names") as caught:
        infer_signature(NoFeatures(), ModelFlavor.PICKLE)
    assert caught.value.field == "feature_names"
    signature = infer_signature(NoFeatures(), ModelFlavor.PICKLE, ["a"])
    assert signature.output_kind is OutputKind.REGRESSION


def test_sklearn_output_kinds() -> None:
    from sklearn.cluster import KMeans
    from sklearn.svm import LinearSVC

    x, y = training_data(60)
    labels = infer_signature(LinearSVC().fit(x, y), ModelFlavor.SKLEARN)
    assert (labels.output_kind, labels.output_names) == (OutputKind.LABEL, ("0", "1"))
    clusters = infer_signature(KMeans(2, n_init=1, random_state=0).fit(x), ModelFlavor.SKLEARN)
    assert (clusters.output_kind, clusters.feature_names) == (OutputKind.LABEL, FEATURES)


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"objective": "binary:logistic"}, OutputKind.PROBABILITY),
        ({"objective": "multi:softprob", "num_class": 3}, OutputKind.PROBABILITY),
        ({"objective": "multi:softmax", "num_class": 3}, OutputKind.LABEL),
        ({"objective": "reg:squarederror"}, OutputKind.REGRESSION),
    ],
)
def test_xgboost_booster_objectives(params: dict[str, object], kind: OutputKind) -> None:
    import xgboost

    x, y = training_data(90)
    labels = y + (x["tenure"].to_numpy() > 1) if "num_class" in params else y
    booster = xgboost.train(
        {**params, "max_depth": 2}, xgboost.DMatrix(x, label=labels), num_boost_round=2
    )
    signature = infer_signature(booster, ModelFlavor.XGBOOST)
    assert (signature.output_kind, signature.feature_names) == (kind, FEATURES)


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"objective": "binary"}, OutputKind.PROBABILITY),
        ({"objective": "multiclass", "num_class": 3}, OutputKind.PROBABILITY),
        ({"objective": "regression"}, OutputKind.REGRESSION),
    ],
)
def test_lightgbm_booster_objectives(params: dict[str, object], kind: OutputKind) -> None:
    import lightgbm

    x, y = training_data(90)
    labels = y + (x["tenure"].to_numpy() > 1) if "num_class" in params else y
    booster = lightgbm.train(
        {**params, "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5},
        lightgbm.Dataset(x, label=labels),
        num_boost_round=2,
    )
    signature = infer_signature(booster, ModelFlavor.LIGHTGBM)
    assert (signature.output_kind, signature.feature_names) == (kind, FEATURES)
