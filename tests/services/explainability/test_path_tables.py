"""Tabulated TreeSHAP: brute-force Shapley values, shap's values, missing values, fallbacks."""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from math import factorial
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
import xgboost as xgb
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor

from synapsenet.errors import InvalidError
from synapsenet.services.explainability import _path_tables
from synapsenet.services.explainability._model_tables import model_tables
from synapsenet.services.explainability._native_trees import (
    native_contributions,
    native_margins,
    shap_reference,
)
from synapsenet.services.explainability._path_tables import (
    MAX_PATH_FEATURES,
    PathTables,
    compile_tables,
)
from synapsenet.services.explainability._tree_arrays import (
    TreeEnsemble,
    lightgbm_ensemble,
    sklearn_ensemble,
    xgboost_ensemble,
)
from synapsenet.services.explainability.models import FloatArray
from synapsenet.services.explainability.tree import (
    FLOAT32_TREE_TOLERANCE,
    TABLES_SOURCE,
    TreeSHAP,
)

RNG = np.random.default_rng(5)
N_FEATURES = 5
X = RNG.normal(size=(400, N_FEATURES))
Y = X[:, 0] + 2.0 * X[:, 1] * X[:, 2] - np.abs(X[:, 3]) + 0.1 * RNG.normal(size=400)
CLASSES = np.digitize(Y, [-1.0, 1.0])
ROWS = RNG.normal(size=(40, N_FEATURES))


SKLEARN_MODELS: dict[str, Any] = {
    "forest": RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0).fit(X, Y),
    "classifier": RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0).fit(
        X, CLASSES
    ),
    "extra-trees": ExtraTreesClassifier(n_estimators=8, max_depth=6, random_state=0).fit(X, Y > 0),
    "multi-output": RandomForestRegressor(n_estimators=4, max_depth=5, random_state=0).fit(
        X, np.c_[Y, X[:, 4]]
    ),
    "deep-tree": DecisionTreeRegressor(random_state=0, max_depth=12).fit(X, Y),
}
"""Fitted scikit-learn models of every layout the tables read, by test id."""


def _tables(family: Any, model: Any) -> PathTables:
    tables = model_tables(family, model, 2**28)
    assert tables is not None
    return tables


def _outputs(values: Any, rank: int = 2) -> FloatArray:
    """shap's values with an output axis: it drops it for single-output models."""
    array = np.asarray(values, dtype=np.float64)
    return array[..., None] if array.ndim == rank else array


def _shap(model: Any, rows: FloatArray) -> FloatArray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _outputs(shap.TreeExplainer(model).shap_values(rows, check_additivity=False))


# ---------------------------------------------------------------- brute-force oracle


def _expected(tree: Any, node: int, row: FloatArray, coalition: set[int]) -> FloatArray:
    """Path-dependent value of a coalition: follow the row on its features, else the covers."""
    left, right = tree.children_left[node], tree.children_right[node]
    if left < 0:
        value = np.asarray(tree.value[node], dtype=np.float64).reshape(-1)
        return np.asarray(value / value.sum() if tree.n_classes[0] > 1 else value)
    feature = int(tree.feature[node])
    if feature in coalition:
        x = np.float32(row[feature])
        if np.isnan(x):
            goes_left = bool(tree.missing_go_to_left[node])
        else:
            goes_left = bool(x <= tree.threshold[node])
        return _expected(tree, left if goes_left else right, row, coalition)
    weights = tree.weighted_n_node_samples
    return np.asarray(
        weights[left] * _expected(tree, left, row, coalition)
        + weights[right] * _expected(tree, right, row, coalition)
    ) / float(weights[node])


def _brute_force(estimators: list[Any], row: FloatArray) -> FloatArray:
    """Exact Shapley values of the mean tree's path-dependent value function."""
    players = range(N_FEATURES)

    def value(coalition: set[int]) -> FloatArray:
        total = sum(_expected(e.tree_, 0, row, coalition) for e in estimators)
        return np.asarray(total) / len(estimators)

    result = []
    for i in players:
        others = [j for j in players if j != i]
        phi: Any = 0.0
        for size in range(N_FEATURES):
            weight = factorial(size) * factorial(N_FEATURES - size - 1) / factorial(N_FEATURES)
            for subset in itertools.combinations(others, size):
                coalition = set(subset)
                phi = phi + weight * (value(coalition | {i}) - value(coalition))
        result.append(phi)
    return np.array(result)


def test_values_equal_brute_force_shapley_values_of_a_deep_tree() -> None:
    # Depth 7 on 5 features: paths split on the same feature again and again.
    model = DecisionTreeRegressor(max_depth=7, random_state=0).fit(X, Y)
    tables = _tables("sklearn", model)
    ours = tables.shap_values(ROWS[:6])
    for index, row in enumerate(ROWS[:6]):
        np.testing.assert_allclose(ours[index], _brute_force([model], row), atol=1e-12)
    assert int(tables.leaf_width.max()) == N_FEATURES


def test_values_equal_brute_force_for_a_classifier_forest_with_missing_values() -> None:
    data = X.copy()
    data[::9, 2] = np.nan
    model = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0)
    model.fit(data, CLASSES)
    rows = ROWS[:4].copy()
    rows[1, 2] = np.nan
    rows[2, 0] = np.nan  # never missing in training: scikit-learn's own default direction
    ours = _tables("sklearn", model).shap_values(rows)
    for index, row in enumerate(rows):
        expected = _brute_force(list(model.estimators_), row)
        np.testing.assert_allclose(ours[index], expected, atol=1e-12)
    np.testing.assert_allclose(_tables("sklearn", model).predict(rows), model.predict_proba(rows))


# ---------------------------------------------------------------- against shap


@pytest.mark.parametrize("model", SKLEARN_MODELS.values(), ids=SKLEARN_MODELS.keys())
def test_scikit_learn_values_equal_shaps_to_1e9(model: Any) -> None:
    tables = _tables("sklearn", model)
    expected = _shap(model, ROWS)
    assert np.abs(tables.shap_values(ROWS) - expected).max() <= 1e-9
    base = np.asarray(shap.TreeExplainer(model).expected_value).reshape(-1)
    np.testing.assert_allclose(tables.expected_value, base, atol=1e-12)


def _lightgbm(**parameters: Any) -> Any:
    data = X.copy()
    data[::7, 1] = np.nan
    data[::5, 3] = 0.0
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=12, verbose=-1, **parameters)
    return model.fit(data, CLASSES)


@pytest.mark.parametrize(
    "parameters", [{}, {"zero_as_missing": True}, {"use_missing": False}], ids=str
)
def test_lightgbm_values_equal_its_own_treeshap_with_missing_values(
    parameters: dict[str, Any],
) -> None:
    model = _lightgbm(**parameters)
    rows = ROWS.copy()
    rows[::3, 1] = np.nan
    rows[::4, 3] = 0.0
    rows[::6, 0] = np.nan
    tables = _tables("lightgbm", model)
    expected = _shap(model, rows)  # LightGBM's own pred_contrib, float64
    assert np.abs(tables.shap_values(rows) - expected).max() <= 1e-9
    np.testing.assert_allclose(
        tables.predict(rows), model.predict(rows, raw_score=True), atol=1e-12
    )


XGBOOST_MODELS: dict[str, tuple[Any, Any]] = {
    "binary": (xgb.XGBClassifier(n_estimators=25, max_depth=5), Y > 0),
    "poisson": (
        xgb.XGBRegressor(objective="count:poisson", n_estimators=25, max_depth=5),
        np.exp(Y / 3),
    ),
    "multiclass": (xgb.XGBClassifier(n_estimators=25, max_depth=5), CLASSES),
}


@pytest.mark.parametrize("name", list(XGBOOST_MODELS))
def test_xgboost_values_equal_shaps_with_missing_values(name: str) -> None:
    data = X.copy()
    data[::6, 2] = np.nan
    model, target = XGBOOST_MODELS[name]
    model.fit(data, target)
    rows = ROWS.copy()
    rows[::3, 2] = np.nan
    rows[::5, 4] = np.nan
    tables = _tables("xgboost", model)
    ours = tables.shap_values(rows)
    # XGBoost's own TreeSHAP computes in float32: equal within its rounding.
    native = native_contributions("xgboost", model, rows)
    assert np.abs(ours - native.values).max() <= FLOAT32_TREE_TOLERANCE.allowed(
        native.values, native.base_values
    )
    np.testing.assert_allclose(tables.expected_value, native.base_values[0], atol=1e-5)
    margins = native_margins("xgboost", model, rows)
    np.testing.assert_allclose(ours.sum(axis=1) + tables.expected_value, margins, atol=2e-5)
    # shap's C-extension TreeSHAP computes in float64 on shap's parse of the trees. (Its
    # additivity check is off: it compares with an output shap gets wrong for these models.)
    explainer = shap_reference("xgboost", model)
    reference = _outputs(explainer.shap_values(rows, check_additivity=False))
    assert np.abs(ours - reference).max() <= 1e-6


def test_xgboost_early_stopping_uses_the_trees_up_to_the_best_iteration() -> None:
    model = xgb.XGBRegressor(n_estimators=60, max_depth=3, early_stopping_rounds=3)
    model.fit(X[:300], Y[:300], eval_set=[(X[300:], Y[300:])], verbose=False)
    assert model.best_iteration < 59
    tables = _tables("xgboost", model)
    margins = native_margins("xgboost", model, ROWS)
    np.testing.assert_allclose(tables.predict(ROWS), margins, atol=2e-5)


# ---------------------------------------------------------------- structure and fallbacks


def test_rows_are_explained_in_chunks_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    model = RandomForestRegressor(n_estimators=4, max_depth=4, random_state=0).fit(X, Y)
    tables = _tables("sklearn", model)
    whole = tables.shap_values(ROWS)
    monkeypatch.setattr(_path_tables, "CHUNK_ELEMENTS", 1)
    np.testing.assert_array_equal(tables.shap_values(ROWS), whole)


def test_a_single_leaf_tree_only_moves_the_base_value() -> None:
    model = DecisionTreeRegressor().fit(X, np.full(len(X), 3.0))
    tables = _tables("sklearn", model)
    assert tables.table_bytes == 0
    np.testing.assert_array_equal(tables.shap_values(ROWS[:3]), np.zeros((3, N_FEATURES, 1)))
    np.testing.assert_array_equal(tables.expected_value, [3.0])


def _ensemble() -> TreeEnsemble:
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, Y)
    ensemble = sklearn_ensemble(model)
    assert ensemble is not None
    return ensemble


def test_tables_over_the_budget_are_not_built() -> None:
    ensemble = _ensemble()
    tables = compile_tables(ensemble)
    assert tables is not None
    assert compile_tables(ensemble, tables.table_bytes) is not None
    assert compile_tables(ensemble, tables.table_bytes - 1) is None


def test_zero_cover_and_too_many_path_features_are_not_tabulated() -> None:
    ensemble = _ensemble()
    tree = ensemble.trees[0]
    empty = dataclasses.replace(tree, cover=np.where(tree.left >= 0, 0.0, tree.cover))
    assert compile_tables(dataclasses.replace(ensemble, trees=(empty,))) is None
    # A chain of splits on distinct features, one more than a table is built for.
    depth = MAX_PATH_FEATURES + 1
    n_nodes = 2 * depth + 1
    left = np.full(n_nodes, -1)
    right = np.full(n_nodes, -1)
    left[:depth] = np.arange(1, depth + 1)
    right[:depth] = np.arange(depth + 1, n_nodes)
    chain = dataclasses.replace(
        tree,
        left=left,
        right=right,
        feature=np.arange(n_nodes),
        threshold=np.zeros(n_nodes),
        default_left=np.ones(n_nodes, np.bool_),
        missing_zero=np.zeros(n_nodes, np.bool_),
        nan_as_zero=np.zeros(n_nodes, np.bool_),
        cover=np.ones(n_nodes),
        value=np.ones((n_nodes, 1)),
    )
    wide = dataclasses.replace(ensemble, trees=(chain,), n_features=n_nodes)
    assert compile_tables(wide) is None


def test_models_the_reader_does_not_cover_are_not_tabulated() -> None:
    assert sklearn_ensemble(GradientBoostingRegressor(n_estimators=3).fit(X, Y)) is None
    two_labels = np.c_[Y > 0, Y > 1]
    assert sklearn_ensemble(RandomForestClassifier(n_estimators=2).fit(X, two_labels)) is None
    assert sklearn_ensemble(object()) is None
    assert xgboost_ensemble(xgb.XGBRegressor(n_estimators=2, missing=-999.0).fit(X, Y)) is None
    dart = xgb.XGBRegressor(n_estimators=2, booster="dart").fit(X, Y)
    assert xgboost_ensemble(dart) is None
    multi_target = xgb.XGBRegressor(n_estimators=2, multi_strategy="multi_output_tree")
    assert xgboost_ensemble(multi_target.fit(X, np.c_[Y, Y])) is None
    frame_categorical = xgb.XGBRegressor(
        n_estimators=3, enable_categorical=True, max_cat_to_onehot=1
    )
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": RNG.integers(0, 4, size=len(X))})
    frame = frame.astype({"c": "category"})
    assert xgboost_ensemble(frame_categorical.fit(frame, Y)) is None
    lgb_categorical = lgb.LGBMRegressor(n_estimators=3, verbose=-1, min_data_per_group=5)
    assert lightgbm_ensemble(lgb_categorical.fit(frame, Y)) is None
    forest_mode = lgb.LGBMRegressor(
        n_estimators=3, boosting_type="rf", bagging_fraction=0.5, bagging_freq=1, verbose=-1
    )
    assert lightgbm_ensemble(forest_mode.fit(X, Y)) is None


# ---------------------------------------------------------------- TreeSHAP wiring


def test_treeshap_falls_back_to_the_library_past_the_budget() -> None:
    model = RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0).fit(X, Y)
    explanation = TreeSHAP(model, table_budget_bytes=0).explain(ROWS)
    assert explanation.parameters["source"] == "shap TreeExplainer"
    tabulated = TreeSHAP(model).explain(ROWS)
    assert tabulated.parameters["source"] == TABLES_SOURCE
    assert tabulated.extras["path_tables"]["bytes"] > 0
    np.testing.assert_allclose(tabulated.values, explanation.values, atol=1e-12)
    with pytest.raises(InvalidError, match="cannot tabulate this RandomForestRegressor"):
        TreeSHAP(model, implementation="tables", table_budget_bytes=0)
    assert TreeSHAP(model, implementation="tables").explain(ROWS).parameters["source"] == (
        TABLES_SOURCE
    )


def test_tables_need_the_path_dependent_algorithm() -> None:
    model = RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0).fit(X, Y)
    with pytest.raises(InvalidError, match="'implementation' parameter of TreeSHAP can be"):
        TreeSHAP(
            model,
            background=X[:10],
            feature_perturbation="interventional",
            implementation="tables",
        )
    with pytest.raises(InvalidError, match="'implementation' parameter of TreeSHAP must be"):
        TreeSHAP(model, implementation="fast")


def test_the_tables_are_built_once_per_explainer() -> None:
    model = RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0).fit(X, Y)
    explainer = TreeSHAP(model)
    first = explainer.explain(ROWS).extras["path_tables"]
    assert explainer.explain(ROWS[:3]).extras["path_tables"] == first
