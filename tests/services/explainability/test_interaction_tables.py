"""Tabulated TreeSHAP interaction values: brute-force interaction index, shap's values, wiring."""

from __future__ import annotations

import itertools
import warnings
from math import factorial
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import shap
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from synapsenet.errors import InvalidError
from synapsenet.services.explainability import _interaction_tables
from synapsenet.services.explainability._interaction_tables import (
    InteractionTables,
    compile_interaction_tables,
    interaction_table_bytes,
)
from synapsenet.services.explainability._native_trees import native_interactions, shap_reference
from synapsenet.services.explainability.models import FloatArray
from synapsenet.services.explainability.tree import (
    FLOAT32_TREE_TOLERANCE,
    TABLES_SOURCE,
    TreeSHAP,
)

from .test_path_tables import (
    CLASSES,
    N_FEATURES,
    ROWS,
    SKLEARN_MODELS,
    X,
    Y,
    _brute_force,
    _expected,
    _outputs,
    _tables,
)


def _interactions(family: Any, model: Any) -> InteractionTables:
    tables = compile_interaction_tables(_tables(family, model), 2**30)
    assert tables is not None
    return tables


def _shap_interactions(model: Any, rows: FloatArray) -> FloatArray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _outputs(shap.TreeExplainer(model).shap_interaction_values(rows), rank=3)


def _assert_consistent(interactions: InteractionTables, rows: FloatArray) -> FloatArray:
    """Symmetric, and every row of each matrix adds up to the row's SHAP value."""
    ours = interactions.interaction_values(rows)
    np.testing.assert_array_equal(ours, np.swapaxes(ours, 1, 2))
    np.testing.assert_allclose(
        ours.sum(axis=2), interactions.values.shap_values(rows), rtol=0, atol=1e-12
    )
    return ours


# ---------------------------------------------------------------- brute-force oracle


def _brute_force_interactions(estimators: list[Any], row: FloatArray) -> FloatArray:
    """shap's interaction values from the Shapley interaction index, over all M players.

    Off the diagonal half the index, ``sum_S s! (M - s - 2)! / (2 (M - 1)!) * D_ij(S)`` over
    coalitions ``S`` of the other players; on it the Shapley value minus the off-diagonal sum.
    """
    players = range(N_FEATURES)

    def value(coalition: set[int]) -> FloatArray:
        total = sum(_expected(e.tree_, 0, row, coalition) for e in estimators)
        return np.asarray(total) / len(estimators)

    phi = _brute_force(estimators, row)
    result = np.zeros((N_FEATURES, N_FEATURES, phi.shape[1]))
    for i, j in itertools.combinations(players, 2):
        others = [k for k in players if k not in (i, j)]
        index: Any = 0.0
        for size in range(N_FEATURES - 1):
            weight = (
                factorial(size) * factorial(N_FEATURES - size - 2) / (2 * factorial(N_FEATURES - 1))
            )
            for subset in itertools.combinations(others, size):
                s = set(subset)
                index = index + weight * (
                    value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s)
                )
        result[i, j] = result[j, i] = index
    for i in players:
        result[i, i] = phi[i] - result[i].sum(axis=0)
    return result


def test_interactions_equal_the_brute_force_index_on_a_deep_tree() -> None:
    # Depth 7 on 5 features: paths split on the same feature again and again.
    model = DecisionTreeRegressor(max_depth=7, random_state=0).fit(X, Y)
    interactions = _interactions("sklearn", model)
    ours = _assert_consistent(interactions, ROWS[:4])
    for index, row in enumerate(ROWS[:4]):
        expected = _brute_force_interactions([model], row)
        np.testing.assert_allclose(ours[index], expected, rtol=0, atol=1e-12)
    assert np.abs(ours[:, 1, 2]).max() > 0.01  # the x1 * x2 term interacts


def test_interactions_equal_the_brute_force_index_with_missing_values() -> None:
    data = X.copy()
    data[::9, 2] = np.nan
    model = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0)
    model.fit(data, CLASSES)
    rows = ROWS[:4].copy()
    rows[1, 2] = np.nan
    rows[2, 0] = np.nan  # never missing in training: scikit-learn's own default direction
    ours = _assert_consistent(_interactions("sklearn", model), rows)
    for index, row in enumerate(rows):
        expected = _brute_force_interactions(list(model.estimators_), row)
        np.testing.assert_allclose(ours[index], expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- against shap


@pytest.mark.parametrize("model", SKLEARN_MODELS.values(), ids=SKLEARN_MODELS.keys())
def test_scikit_learn_interactions_equal_shaps_to_1e9(model: Any) -> None:
    ours = _assert_consistent(_interactions("sklearn", model), ROWS)
    assert np.abs(ours - _shap_interactions(model, ROWS)).max() <= 1e-9


@pytest.mark.parametrize(
    "parameters", [{}, {"zero_as_missing": True}, {"use_missing": False}], ids=str
)
def test_lightgbm_interactions_equal_shaps_with_missing_values(
    parameters: dict[str, Any],
) -> None:
    data = X.copy()
    data[::7, 1] = np.nan
    data[::5, 3] = 0.0
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=12, verbose=-1, **parameters)
    model.fit(data, CLASSES)
    rows = ROWS.copy()
    rows[::3, 1] = np.nan
    rows[::4, 3] = 0.0
    rows[::6, 0] = np.nan
    interactions = _interactions("lightgbm", model)
    ours = _assert_consistent(interactions, rows)
    # Our rows add up to our SHAP values, which equal LightGBM's own (test_path_tables).
    # shap's parse of the trees sends every NaN and 0.0 the way of a plain NaN or number,
    # so it is compared on the rows as LightGBM reads them: NaN is 0.0 on splits of
    # features never missing in training (feature 0 here) or with use_missing=False, and
    # zero is missing with zero_as_missing=True.
    read = rows.copy()
    if parameters.get("use_missing") is False:
        read = np.nan_to_num(read, nan=0.0)
    elif parameters.get("zero_as_missing"):
        read[read == 0.0] = np.nan
    else:
        read[:, 0] = np.nan_to_num(read[:, 0], nan=0.0)
    assert np.abs(ours - _shap_interactions(model, read)).max() <= 1e-9
    misread = np.abs(_shap_interactions(model, rows) - ours).max(axis=(1, 2, 3)) > 1e-3
    assert misread.any()
    clean = ~misread
    np.testing.assert_allclose(
        _shap_interactions(model, rows[clean]), ours[clean], rtol=0, atol=1e-9
    )


@pytest.mark.parametrize("multiclass", [False, True], ids=["binary", "multiclass"])
def test_xgboost_interactions_equal_its_own_within_float32(multiclass: bool) -> None:
    data = X.copy()
    data[::6, 2] = np.nan
    model = xgb.XGBClassifier(n_estimators=25, max_depth=5)
    model.fit(data, CLASSES if multiclass else Y > 0)
    rows = ROWS.copy()
    rows[::3, 2] = np.nan
    rows[::5, 4] = np.nan
    ours = _assert_consistent(_interactions("xgboost", model), rows)
    # shap returns XGBoost's own pred_interactions, computed in float32: equal within its
    # rounding (the tolerance of the values, on the row's attribution mass).
    native = native_interactions(model, rows)
    allowed = FLOAT32_TREE_TOLERANCE.allowed(native.values.sum(axis=2), native.base_values)
    assert np.abs(ours - native.values).max() <= allowed
    assert np.abs(ours - _shap_interactions(model, rows)).max() <= allowed
    # shap's C extension computes in float64 on shap's parse of the same trees.
    reference = _outputs(shap_reference("xgboost", model).shap_interaction_values(rows), rank=3)
    assert np.abs(ours - reference).max() <= 1e-6


# ---------------------------------------------------------------- structure and budget


def test_rows_are_explained_in_chunks_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    model = RandomForestRegressor(n_estimators=4, max_depth=4, random_state=0).fit(X, Y)
    interactions = _interactions("sklearn", model)
    whole = interactions.interaction_values(ROWS)
    monkeypatch.setattr(_interaction_tables, "CHUNK_ELEMENTS", 1)
    np.testing.assert_array_equal(interactions.interaction_values(ROWS), whole)


def test_single_feature_paths_have_only_main_effects() -> None:
    stump = DecisionTreeRegressor(max_depth=1, random_state=0).fit(X, Y)
    interactions = _interactions("sklearn", stump)
    assert interactions.table_bytes == 0
    ours = interactions.interaction_values(ROWS[:5])
    np.testing.assert_array_equal(ours[:, 0, 1:], 0.0)
    diagonal = np.einsum("nmmk->nmk", ours)
    np.testing.assert_array_equal(diagonal, interactions.values.shap_values(ROWS[:5]))
    constant = DecisionTreeRegressor().fit(X, np.full(len(X), 3.0))
    np.testing.assert_array_equal(
        _interactions("sklearn", constant).interaction_values(ROWS[:2]), 0.0
    )


def test_the_budget_covers_value_and_pair_tables() -> None:
    model = RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0).fit(X, Y)
    values = _tables("sklearn", model)
    needed = values.table_bytes + interaction_table_bytes(values)
    built = compile_interaction_tables(values, needed)
    assert built is not None
    assert built.table_bytes == interaction_table_bytes(values) > 0
    assert compile_interaction_tables(values, needed - 1) is None


# ---------------------------------------------------------------- TreeSHAP wiring


def _forest() -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0).fit(X, Y)


def test_treeshap_interactions_come_from_the_tables_and_are_checked() -> None:
    model = _forest()
    explanation = TreeSHAP(model, native_check="all").interactions(ROWS[:6])
    assert explanation.parameters["source"] == TABLES_SOURCE
    check = explanation.extras["native_check"]
    assert check["native"] == TABLES_SOURCE
    assert check["rows_checked"] == 6
    assert check["agrees"] is True
    report = explanation.extras["interaction_tables"]
    assert report["status"] == "used"
    assert report["bytes"] > 0
    library = TreeSHAP(model, implementation="library").interactions(ROWS[:6])
    assert library.parameters["source"] == "shap TreeExplainer"
    np.testing.assert_allclose(
        explanation.extras["interaction_values"],
        library.extras["interaction_values"],
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(explanation.values, library.values, rtol=0, atol=1e-12)


def test_treeshap_interactions_fall_back_past_the_budget() -> None:
    model = _forest()
    values = _tables("sklearn", model)
    budget = values.table_bytes  # enough for the values, not for the pairs
    explainer = TreeSHAP(model, table_budget_bytes=budget)
    assert explainer.explain(ROWS[:3]).parameters["source"] == TABLES_SOURCE
    explanation = explainer.interactions(ROWS[:3])
    assert explanation.parameters["source"] == "shap TreeExplainer"
    report = explanation.extras["interaction_tables"]
    assert report["status"] == "over_budget"
    assert report["bytes_needed"] == values.table_bytes + interaction_table_bytes(values)
    assert str(budget) in report["reason"]
    strict = TreeSHAP(model, implementation="tables", table_budget_bytes=budget)
    with pytest.raises(InvalidError, match="interaction tables need"):
        strict.interactions(ROWS[:3])


def test_xgboost_interactions_from_the_tables_are_checked_against_shaps_algorithm() -> None:
    model = xgb.XGBRegressor(n_estimators=10, max_depth=4).fit(X, Y)
    explanation = TreeSHAP(model, native_check="all").interactions(ROWS[:5])
    check = explanation.extras["native_check"]
    assert (check["native"], check["agrees"]) == (TABLES_SOURCE, True)
    assert check["max_abs_diff"] <= 1e-6
    assert explanation.extras["local_accuracy"]["rows_checked"] == 1


@pytest.mark.parametrize(
    "parameters", [{}, {"zero_as_missing": True}, {"use_missing": False}], ids=str
)
def test_lightgbm_checks_read_missing_values_as_lightgbm_does(parameters: dict[str, Any]) -> None:
    # shap's parse of the trees misreads these rows (see the test against shap above); the
    # agreement check and the library's interaction values give it the rows as LightGBM
    # reads them, so every implementation agrees.
    data = X.copy()
    data[::7, 1] = np.nan
    data[::5, 3] = 0.0
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, verbose=-1, **parameters)
    model.fit(data, Y)
    rows = ROWS[:12].copy()
    rows[::3, 1] = np.nan
    rows[::4, 3] = 0.0
    rows[::2, 0] = np.nan
    tabulated = TreeSHAP(model, native_check="all")
    library = TreeSHAP(model, native_check="all", implementation="library")
    for explainer in (tabulated, library):
        check = explainer.explain(rows).extras["native_check"]
        assert (check["rows_checked"], check["agrees"]) == (12, True)
    ours = tabulated.interactions(rows)
    check = ours.extras["native_check"]
    assert (check["rows_checked"], check["agrees"]) == (12, True)
    assert check["max_abs_diff"] <= 1e-9
    theirs = library.interactions(rows).extras["interaction_values"]
    np.testing.assert_allclose(ours.extras["interaction_values"], theirs, rtol=0, atol=1e-9)


def test_lightgbm_with_missing_values_in_every_feature_is_checked_unchanged() -> None:
    data = X.copy()
    for column in range(N_FEATURES):
        data[column :: 2 * N_FEATURES, column] = np.nan
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=6, verbose=-1).fit(data, Y)
    explainer = TreeSHAP(model, native_check="all")
    rows = ROWS[:6].copy()
    rows[::2, 2] = np.nan
    check = explainer.interactions(rows).extras["native_check"]
    assert (check["rows_checked"], check["agrees"]) == (6, True)
    assert explainer._tables is not None
    assert explainer._tables.splits.nan_as_zero is None
