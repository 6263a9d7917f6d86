"""TreeSHAP: identical to shap, native values checked, exact interactions, local accuracy."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeClassifier

from synapsenet.errors import InvalidError
from synapsenet.services.explainability import tree as tree_module
from synapsenet.services.explainability._forest_outputs import forest_raw_output
from synapsenet.services.explainability._native_trees import (
    NativeResult,
    native_contributions,
    native_margins,
)
from synapsenet.services.explainability._path_tables import PathTables
from synapsenet.services.explainability.contract import LocalAccuracyError
from synapsenet.services.explainability.models import ExplanationType, FloatArray
from synapsenet.services.explainability.tree import (
    FLOAT32_TREE_TOLERANCE,
    TABLES_SOURCE,
    TreeSHAP,
    TreeSHAPDisagreementError,
    is_tree_model,
    tree_family,
    tree_interactions,
    tree_shap,
)

RNG = np.random.default_rng(11)
N_FEATURES = 5
X = RNG.normal(size=(300, N_FEATURES))
Y = 2.0 * X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] ** 2 + 0.1 * RNG.normal(size=300)
TARGETS: dict[str, Any] = {
    "regression": Y,
    "binary": (Y > 0).astype(int),
    "multiclass": np.digitize(Y, [-1.0, 1.0]),
}
EXPLAIN = X[:25]


def _fit(factory: Callable[[], Any], task: str) -> Any:
    return factory().fit(X, TARGETS[task])


MODELS: dict[str, tuple[Callable[[], Any], str]] = {
    "xgboost-regression": (lambda: xgb.XGBRegressor(n_estimators=30, max_depth=4), "regression"),
    "xgboost-binary": (lambda: xgb.XGBClassifier(n_estimators=20, max_depth=3), "binary"),
    "xgboost-multiclass": (lambda: xgb.XGBClassifier(n_estimators=10, max_depth=3), "multiclass"),
    "lightgbm-regression": (
        lambda: lgb.LGBMRegressor(n_estimators=30, num_leaves=8, verbose=-1),
        "regression",
    ),
    "lightgbm-binary": (
        lambda: lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1),
        "binary",
    ),
    "lightgbm-multiclass": (
        lambda: lgb.LGBMClassifier(n_estimators=10, num_leaves=8, verbose=-1),
        "multiclass",
    ),
    "forest-regression": (
        lambda: RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0),
        "regression",
    ),
    "forest-binary": (
        lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        "binary",
    ),
    "forest-multiclass": (
        lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        "multiclass",
    ),
    "gradient-boosting-regression": (
        lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
        "regression",
    ),
    "gradient-boosting-binary": (
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0),
        "binary",
    ),
    "extra-trees-regression": (
        lambda: ExtraTreesRegressor(n_estimators=10, max_depth=5, random_state=0),
        "regression",
    ),
    "hist-gradient-boosting-multiclass": (
        lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
        "multiclass",
    ),
    "decision-tree-binary": (
        lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
        "binary",
    ),
}
FITTED: dict[str, Any] = {}


def fitted(name: str) -> Any:
    if name not in FITTED:
        factory, task = MODELS[name]
        FITTED[name] = _fit(factory, task)
    return FITTED[name]


def _with_outputs(array: Any, extra_axes: int) -> FloatArray:
    result = np.asarray(array, dtype=np.float64)
    return result[..., None] if result.ndim == 1 + extra_axes else result


def _shap_values(model: Any, data: FloatArray, background: FloatArray | None = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's notes about LightGBM's output format
        if background is None:
            explainer = shap.TreeExplainer(model)
        else:
            explainer = shap.TreeExplainer(
                model, data=background, feature_perturbation="interventional"
            )
        return explainer, _with_outputs(explainer.shap_values(data), 1)


# ---------------------------------------------------------------------- SHAP values


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("implementation", ["auto", "library"])
def test_values_match_shap_tree_explainer(name: str, implementation: str) -> None:
    model = fitted(name)
    explanation = TreeSHAP(model, implementation=implementation).explain(EXPLAIN)
    explainer, expected = _shap_values(model, EXPLAIN)
    assert explanation.type is ExplanationType.SHAP_TREE
    assert explanation.values.shape == expected.shape
    # shap's XGBoost values are XGBoost's own float32 TreeSHAP; the tables compute in float64.
    allowed = 1e-6
    if name.startswith("xgboost") and implementation == "auto":
        allowed = FLOAT32_TREE_TOLERANCE.allowed(expected, explanation.base_values)
    assert np.abs(explanation.values - expected).max() <= allowed
    base = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(explanation.base_values[0], base, atol=allowed)
    assert explanation.local_accuracy_error is not None
    tabulated = implementation == "auto" and not name.startswith(("gradient", "hist"))
    assert (explanation.parameters["source"] == TABLES_SOURCE) is tabulated


@pytest.mark.parametrize(
    "name",
    [
        "xgboost-binary",
        "xgboost-multiclass",
        "lightgbm-regression",
        "forest-multiclass",
        "gradient-boosting-binary",
    ],
)
def test_interventional_values_match_shap_and_base_is_mean_margin(name: str) -> None:
    model = fitted(name)
    background = X[200:240]
    explainer = TreeSHAP(model, background=background, feature_perturbation="interventional")
    explanation = explainer.explain(EXPLAIN)
    _, expected = _shap_values(model, EXPLAIN, background)
    assert np.abs(explanation.values - expected).max() <= 1e-6
    # The base is the model's own mean raw output over the background (shap's own estimate
    # of it is off for multi-class XGBoost, whose per-class base scores it misreads).
    margins = explainer._predict(background).mean(axis=0)
    np.testing.assert_allclose(explanation.base_values[0], margins, atol=1e-6)
    assert explanation.parameters["feature_perturbation"] == "interventional"


@pytest.mark.parametrize("name", ["xgboost-regression", "forest-binary", "lightgbm-multiclass"])
def test_local_accuracy_holds_against_the_models_raw_output(name: str) -> None:
    explanation = TreeSHAP(fitted(name)).explain(EXPLAIN)
    total = explanation.values.sum(axis=1) + explanation.base_values
    raw = explanation.predictions
    scale = max(1.0, float(np.abs(raw).max()))
    assert np.abs(total - raw).max() <= 1e-5 * scale
    assert explanation.local_accuracy_error == pytest.approx(np.abs(total - raw).max())


def test_xgboost_raw_prediction_is_the_margin() -> None:
    model = fitted("xgboost-binary")
    explanation = tree_shap(model, EXPLAIN)
    margins = model.predict(EXPLAIN, output_margin=True)
    np.testing.assert_allclose(explanation.predictions[:, 0], margins, rtol=1e-6)
    assert explanation.output_names == ("1",)


@settings(max_examples=20, deadline=None)
@given(rows=arrays(np.float64, (3, N_FEATURES), elements=st.floats(-4.0, 4.0)))
def test_values_add_up_to_the_prediction_for_any_input(rows: FloatArray) -> None:
    explanation = TreeSHAP(fitted("lightgbm-binary")).explain(rows)
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, explanation.predictions, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_sampled_check_compares_the_models_own_output_and_states_the_rows(name: str) -> None:
    model = fitted(name)
    sampled = TreeSHAP(model, accuracy_check_rows=4).explain(X[:100])
    every = TreeSHAP(model, accuracy_check="all").explain(X[:100])
    np.testing.assert_array_equal(sampled.values, every.values)
    report = sampled.extras["local_accuracy"]
    # One row in 8 (12 of 100), capped at accuracy_check_rows.
    assert (report["rows_checked"], report["rows"]) == (4, 100)
    assert every.extras["local_accuracy"]["rows_checked"] == 100
    checked = np.unique(np.linspace(0, 99, 4).round().astype(int))
    np.testing.assert_array_equal(sampled.predictions[checked], every.predictions[checked])
    # Rows not checked carry the output the trees attributed: base + sum of the values.
    others = np.setdiff1d(np.arange(100), checked)
    attributed = sampled.values.sum(axis=1) + sampled.base_values
    np.testing.assert_array_equal(sampled.predictions[others], attributed[others])
    scale = max(1.0, float(np.abs(every.predictions).max()))
    np.testing.assert_allclose(sampled.predictions, every.predictions, atol=1e-5 * scale)
    assert sampled.parameters["accuracy_check"] == "sample"


def test_the_sampled_check_misses_an_error_outside_the_sample_and_all_catches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = fitted("lightgbm-regression")
    original = native_margins

    def off_in_row_1(family: Any, booster: Any, data: FloatArray) -> FloatArray:
        margins = original(family, booster, data).copy()
        if len(data) == len(EXPLAIN):
            margins[1] += 0.5  # row 1 is not among the sampled rows 0 and 24
        return margins

    monkeypatch.setattr(tree_module, "native_margins", off_in_row_1)
    sampled = TreeSHAP(model, accuracy_check_rows=2).explain(EXPLAIN)
    assert sampled.extras["local_accuracy"]["rows_checked"] == 2
    with pytest.raises(LocalAccuracyError, match="violates local accuracy"):
        TreeSHAP(model, accuracy_check="all").explain(EXPLAIN)


@pytest.mark.parametrize(
    ("name", "against"),
    [
        ("xgboost-binary", "xgboost output_margin"),
        ("lightgbm-multiclass", "lightgbm raw_score"),
        ("forest-multiclass", "scikit-learn Tree.predict"),
        ("decision-tree-binary", "scikit-learn Tree.predict"),
        ("gradient-boosting-regression", "GradientBoostingRegressor prediction"),
    ],
)
def test_the_report_names_what_local_accuracy_was_checked_against(name: str, against: str) -> None:
    report = TreeSHAP(fitted(name)).explain(EXPLAIN).extras["local_accuracy"]
    assert report["against"] == against
    assert 0.0 <= report["max_abs_error"] <= 1e-5


@pytest.mark.parametrize(
    "name",
    [
        "forest-regression",
        "forest-binary",
        "forest-multiclass",
        "extra-trees-regression",
        "decision-tree-binary",
    ],
)
def test_forest_output_from_the_trees_equals_scikit_learns_prediction(name: str) -> None:
    model = fitted(name)
    ours = forest_raw_output(model, X)
    assert ours is not None
    expected = (
        model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)[:, None]
    )
    np.testing.assert_array_equal(ours, expected)


def test_forest_output_covers_only_plain_single_output_forests() -> None:
    class CustomForest(RandomForestRegressor):  # type: ignore[misc]
        pass

    assert forest_raw_output(fitted("gradient-boosting-regression"), X) is None
    assert forest_raw_output(CustomForest(n_estimators=2).fit(X, Y), X) is None
    two_outputs = RandomForestRegressor(n_estimators=2).fit(X, np.c_[Y, Y])
    assert forest_raw_output(two_outputs, X) is None


# ---------------------------------------------------------------------- native checks


@pytest.mark.parametrize("name", ["xgboost-regression", "xgboost-multiclass", "lightgbm-binary"])
def test_native_contributions_agree_with_shaps_own_algorithm(name: str) -> None:
    explanation = TreeSHAP(fitted(name), native_check="all").explain(EXPLAIN)
    check = explanation.extras["native_check"]
    assert check["status"] == "checked"
    assert check["agrees"] is True
    assert check["rows_checked"] == len(EXPLAIN)
    assert check["max_abs_diff"] <= check["tolerance"]
    assert check["reference"] == "shap's C-extension TreeSHAP"
    if name.startswith("lightgbm"):
        assert check["max_abs_diff"] <= 1e-6


def test_native_check_samples_a_few_rows_by_default() -> None:
    explainer = TreeSHAP(fitted("xgboost-binary"), native_check_rows=4)
    explanation = explainer.explain(X[:300])
    assert explanation.extras["native_check"]["rows_checked"] == 4
    # Small batches check one row in 64 (at least one), so the check stays cheap.
    assert explainer.explain(X[:128]).extras["native_check"]["rows_checked"] == 2
    assert explainer.explain(X[:5]).extras["native_check"]["rows_checked"] == 1
    off = TreeSHAP(fitted("xgboost-binary"), native_check="off").explain(X[:300])
    assert off.extras["native_check"] == {"status": "off"}
    np.testing.assert_array_equal(explanation.values, off.values)


def test_models_without_native_values_say_why_nothing_was_checked() -> None:
    library = TreeSHAP(fitted("forest-binary"), implementation="library")
    assert library.explain(EXPLAIN).extras["native_check"]["status"] == "not_applicable"
    boosting = TreeSHAP(fitted("gradient-boosting-binary")).explain(EXPLAIN)
    assert boosting.extras["native_check"]["status"] == "not_applicable"


def test_tabulated_forest_values_are_checked_against_shap() -> None:
    check = TreeSHAP(fitted("forest-binary")).explain(EXPLAIN).extras["native_check"]
    assert check["status"] == "checked"
    assert check["native"] == TABLES_SOURCE
    assert check["agrees"] is True
    assert check["max_abs_diff"] <= 1e-12


def _skewed_native(monkeypatch: pytest.MonkeyPatch) -> None:
    original = native_contributions

    def skewed(family: Any, model: Any, data: FloatArray) -> NativeResult:
        result = original(family, model, data)
        shifted = result.values.copy()
        shifted[:, 0, :] += 0.01
        shifted[:, 1, :] -= 0.01  # keeps local accuracy, so only the agreement check can tell
        return NativeResult(shifted, result.base_values)

    monkeypatch.setattr(tree_module, "native_contributions", skewed)


def test_native_disagreement_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _skewed_native(monkeypatch)
    with pytest.raises(TreeSHAPDisagreementError, match="lightgbm pred_contrib and shap's"):
        TreeSHAP(fitted("lightgbm-regression"), implementation="library").explain(EXPLAIN)


def test_a_tabulated_disagreement_raises_too(monkeypatch: pytest.MonkeyPatch) -> None:
    original = PathTables.shap_values

    def skewed(self: PathTables, instances: FloatArray) -> FloatArray:
        values = original(self, instances)
        values[:, 0, :] += 0.01
        values[:, 1, :] -= 0.01
        return values

    monkeypatch.setattr(PathTables, "shap_values", skewed)
    with pytest.raises(TreeSHAPDisagreementError, match="synapsenet path tables and shap's"):
        TreeSHAP(fitted("forest-regression")).explain(EXPLAIN)


def test_native_disagreement_can_be_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    _skewed_native(monkeypatch)
    explainer = TreeSHAP(
        fitted("lightgbm-regression"), on_disagreement="record", implementation="library"
    )
    check = explainer.explain(EXPLAIN).extras["native_check"]
    assert check["agrees"] is False
    assert check["max_abs_diff"] == pytest.approx(0.01, rel=1e-6)
    assert "DISAGREE" in check["message"]


def test_local_accuracy_violation_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    explainer = TreeSHAP(fitted("forest-regression"))
    monkeypatch.setattr(explainer, "_predict", lambda data: np.zeros((data.shape[0], 1)))
    with pytest.raises(LocalAccuracyError, match="violates local accuracy"):
        explainer.explain(EXPLAIN)


# ---------------------------------------------------------------------- interactions


@pytest.mark.parametrize(
    "name",
    [
        "xgboost-regression",
        "xgboost-multiclass",
        "lightgbm-binary",
        "forest-multiclass",
        "gradient-boosting-regression",
    ],
)
def test_interaction_rows_sum_to_the_shap_values(name: str) -> None:
    model = fitted(name)
    interactions = tree_interactions(model, EXPLAIN[:8])
    values = TreeSHAP(model).explain(EXPLAIN[:8])
    matrix = interactions.extras["interaction_values"]
    assert interactions.type is ExplanationType.SHAP_INTERACTION
    assert matrix.shape == (8, N_FEATURES, N_FEATURES, values.n_outputs)
    scale = max(1.0, float(np.abs(values.values).max()))
    np.testing.assert_allclose(matrix.sum(axis=2), values.values, atol=1e-5 * scale)
    np.testing.assert_allclose(interactions.values, matrix.sum(axis=2))
    np.testing.assert_allclose(matrix, np.swapaxes(matrix, 1, 2), atol=1e-5 * scale)


@pytest.mark.parametrize(
    "name", ["xgboost-binary", "lightgbm-multiclass", "forest-binary", "extra-trees-regression"]
)
def test_interaction_values_match_shaps(name: str) -> None:
    model = fitted(name)
    ours = tree_interactions(model, EXPLAIN[:8]).extras["interaction_values"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _with_outputs(shap.TreeExplainer(model).shap_interaction_values(EXPLAIN[:8]), 2)
    assert np.abs(ours - theirs).max() <= 1e-6


def test_xgboost_interactions_are_checked_against_shaps_algorithm() -> None:
    explainer = TreeSHAP(fitted("xgboost-multiclass"), native_check="all", implementation="library")
    explanation = explainer.interactions(EXPLAIN[:6])
    check = explanation.extras["native_check"]
    assert check["native"] == "xgboost pred_interactions"
    assert check["agrees"] is True
    assert explanation.local_accuracy_error is not None


def test_interactions_need_the_path_dependent_algorithm() -> None:
    explainer = TreeSHAP(
        fitted("forest-regression"), background=X[:20], feature_perturbation="interventional"
    )
    with pytest.raises(InvalidError, match="interaction values need"):
        explainer.interactions(EXPLAIN)


# ---------------------------------------------------------------------- detection and errors


def test_tree_models_are_detected_by_family() -> None:
    assert tree_family(fitted("xgboost-binary")) == "xgboost"
    assert tree_family(fitted("lightgbm-binary").booster_) == "lightgbm"
    assert tree_family(fitted("forest-binary")) == "sklearn"
    assert tree_family(Ridge().fit(X, Y)) is None
    assert tree_family(RandomForestRegressor()) is None  # not fitted
    linear = xgb.XGBRegressor(booster="gblinear", n_estimators=3).fit(X, Y)
    assert tree_family(linear) is None
    multiclass_gb = GradientBoostingClassifier(n_estimators=3).fit(X, TARGETS["multiclass"])
    assert not is_tree_model(multiclass_gb)


def test_interventional_multiclass_hist_gradient_boosting_is_refused() -> None:
    model = fitted("hist-gradient-boosting-multiclass")
    assert is_tree_model(model)
    assert not is_tree_model(model, "interventional")
    with pytest.raises(InvalidError, match="multi-class HistGradientBoostingClassifier"):
        TreeSHAP(model, background=X[:20], feature_perturbation="interventional")


def test_non_tree_model_is_rejected() -> None:
    with pytest.raises(InvalidError, match="TreeSHAP cannot explain a Ridge"):
        TreeSHAP(Ridge().fit(X, Y))


def test_background_is_required_for_interventional_and_refused_otherwise() -> None:
    model = fitted("forest-regression")
    with pytest.raises(InvalidError, match="'background' parameter of TreeSHAP is required"):
        TreeSHAP(model, feature_perturbation="interventional")
    with pytest.raises(InvalidError, match="must be None with"):
        TreeSHAP(model, background=X[:5])
    with pytest.raises(InvalidError, match="at least one row"):
        TreeSHAP(model, background=X[:0], feature_perturbation="interventional")


def test_parameters_are_validated_with_sklearn_messages() -> None:
    model = fitted("forest-regression")
    with pytest.raises(InvalidError) as caught:
        TreeSHAP(model, native_check="sometimes")
    assert str(caught.value) == (
        "The 'native_check' parameter of TreeSHAP must be one of 'sample', 'all', 'off'. "
        "Got 'sometimes' instead."
    )
    with pytest.raises(InvalidError, match="'feature_perturbation' parameter of TreeSHAP"):
        TreeSHAP(model, feature_perturbation="auto")
    with pytest.raises(InvalidError, match="'accuracy_check' parameter of TreeSHAP must be"):
        TreeSHAP(model, accuracy_check="off")
    with pytest.raises(InvalidError, match="'accuracy_check_rows' parameter of TreeSHAP"):
        TreeSHAP(model, accuracy_check_rows=0)
    with pytest.raises(InvalidError, match="'output' parameter of tree_shap"):
        tree_shap(model, EXPLAIN, output="probability")


def test_wrong_feature_count_is_rejected() -> None:
    with pytest.raises(InvalidError, match="must have 5 features"):
        TreeSHAP(fitted("xgboost-binary")).explain(X[:3, :4])


def test_nan_is_explained_for_models_that_take_it_and_rejected_otherwise() -> None:
    rows = EXPLAIN[:4].copy()
    rows[1, 2] = np.nan
    explanation = TreeSHAP(fitted("xgboost-regression")).explain(rows)
    assert np.isfinite(explanation.values).all()
    with pytest.raises(InvalidError, match=r"contains NaN \(first at row 1, feature 2\)"):
        TreeSHAP(fitted("gradient-boosting-regression")).explain(rows)


def test_feature_names_come_from_a_dataframe_or_the_model() -> None:
    columns = [f"f_{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(frame, Y)
    assert TreeSHAP(model).explain(X[:2]).feature_names == tuple(columns)
    renamed = pd.DataFrame(X[:2], columns=[c.upper() for c in columns])
    assert TreeSHAP(fitted("xgboost-binary")).explain(renamed).feature_names == tuple(
        c.upper() for c in columns
    )
    assert TreeSHAP(fitted("forest-binary")).explain(X[:2]).feature_names[0] == "x0"


def test_booster_objects_are_explained_like_their_wrappers() -> None:
    wrapper = fitted("lightgbm-multiclass")
    from_booster = TreeSHAP(wrapper.booster_).explain(EXPLAIN)
    from_wrapper = TreeSHAP(wrapper).explain(EXPLAIN)
    np.testing.assert_array_equal(from_booster.values, from_wrapper.values)
    # shap misparses a multi-class LightGBM Booster; ours is rebuilt per class.
    np.testing.assert_allclose(
        TreeSHAP(wrapper.booster_).interactions(EXPLAIN[:4]).extras["interaction_values"],
        TreeSHAP(wrapper).interactions(EXPLAIN[:4]).extras["interaction_values"],
        atol=1e-12,
    )
    background = X[200:230]
    np.testing.assert_allclose(
        TreeSHAP(wrapper.booster_, background=background, feature_perturbation="interventional")
        .explain(EXPLAIN)
        .values,
        TreeSHAP(wrapper, background=background, feature_perturbation="interventional")
        .explain(EXPLAIN)
        .values,
        atol=1e-12,
    )
    xgb_wrapper = fitted("xgboost-binary")
    np.testing.assert_array_equal(
        TreeSHAP(xgb_wrapper.get_booster()).explain(EXPLAIN).values,
        TreeSHAP(xgb_wrapper).explain(EXPLAIN).values,
    )
