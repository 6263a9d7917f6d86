"""SHAPExplainer: algorithm selection, pandas handling, errors, and the explainer contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.models import Explanation, ExplanationType, FloatArray
from synapsenet.services.explainability.shap_explainer import (
    EXACT_TOLERANCE,
    KERNEL_TOLERANCE,
    SHAPExplainer,
)
from synapsenet.services.explainability.tree import TREE_TOLERANCE, tree_interactions

RNG = np.random.default_rng(5)
M = 6
COLUMNS = ["age", "income", "tenure", "score", "visits", "region"]
X = RNG.normal(size=(400, M))
Y = 1.5 * X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3] + 0.1 * RNG.normal(size=400)
Y_CLASSES = np.digitize(Y, [-1.0, 1.0])
BACKGROUND = X[300:320]
ROWS = X[:6]

# Small models, fitted once: the contract runs every check on each.
GB_REGRESSOR = GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0).fit(X, Y)
FOREST_3_CLASSES = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(
    X, Y_CLASSES
)
RIDGE = Ridge().fit(X, Y)
LOGISTIC_3_CLASSES = LogisticRegression(max_iter=500).fit(X, Y_CLASSES)


# ---------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class Case:
    """One explainer under contract: an algorithm on a single- or multi-output model."""

    algorithm: str
    model: Any
    n_outputs: int
    tolerance: float

    def explainer(self, seed: int = 0, background: object = BACKGROUND) -> SHAPExplainer:
        return SHAPExplainer(
            self.model,
            background,
            algorithm=self.algorithm,
            n_samples=30,  # below 2^6 - 2 coalitions, so KernelSHAP really samples
            seed=seed,
        )


CASES = {
    "tree-single": Case("tree", GB_REGRESSOR, 1, TREE_TOLERANCE.atol),
    "tree-multi": Case("tree", FOREST_3_CLASSES, 3, TREE_TOLERANCE.atol),
    "exact-single": Case("exact", RIDGE, 1, EXACT_TOLERANCE.atol),
    "exact-multi": Case("exact", LOGISTIC_3_CLASSES, 3, EXACT_TOLERANCE.atol),
    "kernel-single": Case("kernel", RIDGE, 1, KERNEL_TOLERANCE.atol),
    "kernel-multi": Case("kernel", LOGISTIC_3_CLASSES, 3, KERNEL_TOLERANCE.atol),
}
# The single-output models reject NaN (scikit-learn's tags say so), the forest takes it.
NAN_REJECTING = [name for name in CASES if name.endswith("single")]


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def _arrays(explanation: Explanation) -> list[FloatArray]:
    arrays_ = [explanation.values, explanation.base_values, explanation.predictions]
    if explanation.standard_errors is not None:
        arrays_.append(explanation.standard_errors)
    return arrays_


def test_contract_same_seed_gives_the_same_explanation(case: Case) -> None:
    first = case.explainer(seed=3).explain(ROWS)
    second = case.explainer(seed=3).explain(ROWS)
    again = case.explainer(seed=3).explain(ROWS)
    for a, b, c in zip(_arrays(first), _arrays(second), _arrays(again), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_contract_explaining_twice_is_idempotent(case: Case) -> None:
    explainer = case.explainer()
    for a, b in zip(
        _arrays(explainer.explain(ROWS)), _arrays(explainer.explain(ROWS)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_contract_output_shapes(case: Case) -> None:
    explanation = case.explainer().explain(ROWS)
    n, k = len(ROWS), case.n_outputs
    assert explanation.values.shape == (n, M, k)
    assert explanation.base_values.shape == (n, k)
    assert explanation.predictions.shape == (n, k)
    assert len(explanation.feature_names) == M
    assert len(explanation.output_names) == k
    assert explanation.values.dtype == np.float64
    assert explanation.parameters["algorithm"] == case.algorithm


def test_contract_single_row_input_is_one_instance(case: Case) -> None:
    explanation = case.explainer().explain(ROWS[0])
    assert explanation.values.shape == (1, M, case.n_outputs)


def test_contract_local_accuracy_is_checked_and_reported(case: Case) -> None:
    explanation = case.explainer().explain(ROWS)
    gap = explanation.values.sum(axis=1) + explanation.base_values - explanation.predictions
    assert explanation.local_accuracy_error is not None
    assert explanation.local_accuracy_error == pytest.approx(float(np.abs(gap).max()), abs=1e-15)
    assert explanation.local_accuracy_error <= case.tolerance


@settings(max_examples=8, deadline=None)
@given(rows=arrays(np.float64, (2, M), elements=st.floats(-3.0, 3.0)))
def test_contract_local_accuracy_holds_for_any_instance(rows: FloatArray) -> None:
    for case in CASES.values():
        explanation = case.explainer().explain(rows)
        assert explanation.local_accuracy_error is not None
        assert explanation.local_accuracy_error <= case.tolerance


def test_contract_rows_are_explained_independently_of_their_order(case: Case) -> None:
    explainer = case.explainer()
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = explainer.explain(ROWS[order])
    np.testing.assert_allclose(shuffled.values, explainer.explain(ROWS).values[order], atol=1e-10)


def test_contract_wrong_feature_count_is_a_clear_error(case: Case) -> None:
    with pytest.raises(InvalidError) as caught:
        case.explainer().explain(ROWS[:, :4])
    assert str(caught.value) == (
        "The 'X' parameter of SHAPExplainer.explain must have 6 features (columns), as the "
        "model does. Got 4 instead."
    )


@pytest.mark.parametrize("name", NAN_REJECTING)
def test_contract_nan_is_rejected_for_models_that_cannot_take_it(name: str) -> None:
    rows = ROWS.copy()
    rows[2, 4] = np.nan
    with pytest.raises(InvalidError, match=r"contains NaN \(first at row 2, feature 4\)"):
        CASES[name].explainer().explain(rows)


def test_contract_empty_background_is_a_clear_error(case: Case) -> None:
    with pytest.raises(InvalidError, match="'background' parameter of SHAPExplainer must have"):
        case.explainer(background=BACKGROUND[:0])


def test_contract_pandas_feature_names_are_kept(case: Case) -> None:
    explanation = case.explainer().explain(pd.DataFrame(ROWS, columns=COLUMNS))
    assert explanation.feature_names == tuple(COLUMNS)


# ---------------------------------------------------------------------- algorithm choice


def _fitted(factory: Callable[[], Any], target: Any = Y) -> Any:
    return factory().fit(X, target)


@pytest.mark.parametrize(
    "model",
    [
        _fitted(lambda: xgb.XGBRegressor(n_estimators=5)),
        _fitted(lambda: lgb.LGBMClassifier(n_estimators=5, verbose=-1), Y_CLASSES),
        _fitted(lambda: RandomForestRegressor(n_estimators=3, random_state=0)),
        GB_REGRESSOR,
        FOREST_3_CLASSES,
    ],
    ids=lambda m: type(m).__name__,
)
def test_auto_picks_treeshap_for_tree_ensembles(model: Any) -> None:
    explainer = SHAPExplainer(model)
    assert explainer.algorithm_ == "tree"
    explanation = explainer.explain(ROWS)
    assert explanation.type is ExplanationType.SHAP_TREE
    assert explanation.parameters["feature_perturbation"] == "tree_path_dependent"
    with_background = SHAPExplainer(model, BACKGROUND)
    assert with_background.tree_ is not None
    assert with_background.tree_.feature_perturbation == "interventional"


def test_auto_picks_exact_for_few_features_and_kernel_for_many() -> None:
    assert SHAPExplainer(RIDGE, BACKGROUND).algorithm_ == "exact"
    assert SHAPExplainer(RIDGE, BACKGROUND, max_exact_features=5).algorithm_ == "kernel"
    wide = RNG.normal(size=(10, 14))
    explainer = SHAPExplainer(lambda rows: rows @ np.arange(14.0), wide, n_samples=40)
    assert explainer.algorithm_ == "kernel"
    explanation = explainer.explain(wide[:2])
    assert explanation.type is ExplanationType.SHAP_KERNEL
    assert explanation.standard_errors is not None
    assert explanation.seed == 0


def test_tree_models_treeshap_cannot_handle_go_to_the_model_agnostic_path() -> None:
    multiclass_gb = GradientBoostingClassifier(n_estimators=3).fit(X, Y_CLASSES)
    assert SHAPExplainer(multiclass_gb, BACKGROUND).algorithm_ == "exact"
    hist = HistGradientBoostingClassifier(max_iter=5).fit(X, Y_CLASSES)
    assert SHAPExplainer(hist).algorithm_ == "tree"
    # shap's interventional TreeSHAP is wrong for this one, so a background sends it on.
    assert SHAPExplainer(hist, BACKGROUND).algorithm_ == "exact"


def test_probabilities_of_a_tree_model_are_explained_exactly_on_the_logit_scale() -> None:
    model = _fitted(lambda: xgb.XGBClassifier(n_estimators=5), Y_CLASSES)
    explainer = SHAPExplainer(model, BACKGROUND, output="probability")
    assert (explainer.algorithm_, explainer.link_) == ("exact", "logit")
    explanation = explainer.explain(ROWS[:2])
    probability = model.predict_proba(ROWS[:2])
    np.testing.assert_allclose(
        explanation.predictions, np.log(probability / (1 - probability)), rtol=1e-6
    )
    assert SHAPExplainer(FOREST_3_CLASSES, BACKGROUND, link="logit").algorithm_ == "exact"


def test_tree_algorithm_refuses_what_treeshap_cannot_explain() -> None:
    with pytest.raises(InvalidError, match="algorithm='tree' explains the trees' raw output"):
        SHAPExplainer(GB_REGRESSOR, algorithm="tree", link="logit")
    with pytest.raises(InvalidError, match="TreeSHAP cannot explain a Ridge"):
        SHAPExplainer(RIDGE, algorithm="tree")


def test_exact_and_interventional_treeshap_agree_on_the_same_background() -> None:
    exact = SHAPExplainer(GB_REGRESSOR, BACKGROUND, algorithm="exact").explain(ROWS)
    tree = SHAPExplainer(GB_REGRESSOR, BACKGROUND, algorithm="tree").explain(ROWS)
    np.testing.assert_allclose(exact.values, tree.values, atol=1e-8)
    np.testing.assert_allclose(exact.base_values, tree.base_values, atol=1e-8)


# ---------------------------------------------------------------------- backgrounds


def test_large_backgrounds_are_summarised_by_weighted_kmeans() -> None:
    explainer = SHAPExplainer(RIDGE, X[:300], background_size=25)
    assert explainer.background_ is not None
    assert explainer.background_.shape == (25, M)
    assert explainer.background_weights_ is not None
    assert explainer.background_weights_.sum() == pytest.approx(1.0)
    explanation = explainer.explain(ROWS)
    assert explanation.parameters["background_summarized"] is True
    # A linear model's base value is the model at the weighted mean, which k-means keeps.
    np.testing.assert_allclose(
        explanation.base_values[0, 0], RIDGE.predict(X[:300]).mean(), rtol=1e-6
    )


def test_interventional_treeshap_samples_large_backgrounds_by_seed() -> None:
    first = SHAPExplainer(GB_REGRESSOR, X[:300], background_size=40, seed=1)
    second = SHAPExplainer(GB_REGRESSOR, X[:300], background_size=40, seed=1)
    assert first.background_ is not None
    assert second.background_ is not None
    assert first.background_.shape == (40, M)
    np.testing.assert_array_equal(first.background_, second.background_)
    assert first.background_weights_ is None


def test_a_background_is_required_for_models_that_are_not_trees() -> None:
    with pytest.raises(InvalidError, match="'background' parameter of SHAPExplainer is required"):
        SHAPExplainer(RIDGE)


# ---------------------------------------------------------------------- pandas


def test_dataframe_columns_are_matched_to_the_model_by_name() -> None:
    frame = pd.DataFrame(X, columns=COLUMNS)
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(frame, Y)
    explainer = SHAPExplainer(model)
    in_order = explainer.explain(frame.iloc[:4])
    shuffled = explainer.explain(frame.iloc[:4][COLUMNS[::-1]])
    assert shuffled.feature_names == tuple(COLUMNS)
    np.testing.assert_array_equal(in_order.values, shuffled.values)
    renamed = frame.iloc[:4].rename(columns={"age": "years"})
    with pytest.raises(InvalidError, match=r"Missing: \['age'\]; unexpected: \['years'\]"):
        explainer.explain(renamed)


def test_feature_names_come_from_the_background_frame_or_are_given() -> None:
    background = pd.DataFrame(BACKGROUND, columns=COLUMNS)
    assert SHAPExplainer(RIDGE, background).explain(ROWS).feature_names == tuple(COLUMNS)
    named = SHAPExplainer(RIDGE, BACKGROUND, feature_names=[c.upper() for c in COLUMNS])
    assert named.explain(ROWS).feature_names[0] == "AGE"
    with pytest.raises(InvalidError, match="'feature_names' parameter of SHAPExplainer"):
        SHAPExplainer(RIDGE, BACKGROUND, feature_names=["a"]).explain(ROWS)


# ---------------------------------------------------------------------- seeds and interactions


def test_kernel_values_depend_on_the_seed_but_stay_locally_accurate() -> None:
    first = CASES["kernel-single"].explainer(seed=1).explain(ROWS)
    second = CASES["kernel-single"].explainer(seed=2).explain(ROWS)
    assert not np.array_equal(first.values, second.values)
    assert (first.seed, second.seed) == (1, 2)
    for explanation in (first, second):
        assert explanation.local_accuracy_error is not None
        assert explanation.local_accuracy_error <= KERNEL_TOLERANCE.atol


def test_tree_interactions_through_the_facade_are_treeshaps() -> None:
    explanation = SHAPExplainer(FOREST_3_CLASSES).explain_interactions(ROWS[:3])
    expected = tree_interactions(FOREST_3_CLASSES, ROWS[:3]).extras["interaction_values"]
    np.testing.assert_array_equal(explanation.extras["interaction_values"], expected)
    assert explanation.type is ExplanationType.SHAP_INTERACTION


def test_exact_interaction_rows_sum_to_the_exact_shap_values() -> None:
    explainer = SHAPExplainer(LOGISTIC_3_CLASSES, BACKGROUND)
    interactions = explainer.explain_interactions(ROWS[:3])
    values = explainer.explain(ROWS[:3])
    matrix = interactions.extras["interaction_values"]
    assert matrix.shape == (3, M, M, 3)
    assert interactions.extras["interaction_method"] == "exact"
    np.testing.assert_allclose(matrix.sum(axis=2), values.values, atol=1e-10)
    np.testing.assert_allclose(interactions.base_values, values.base_values, atol=1e-12)
    assert interactions.local_accuracy_error is not None
    assert interactions.local_accuracy_error <= EXACT_TOLERANCE.atol


def test_sampled_interactions_are_seeded_and_locally_accurate() -> None:
    explainer = SHAPExplainer(RIDGE, BACKGROUND, max_exact_features=4, n_samples=20, seed=4)
    first = explainer.explain_interactions(ROWS[:2])
    second = explainer.explain_interactions(ROWS[:2])
    assert first.extras["interaction_method"] == "sampled"
    assert first.seed == 4
    np.testing.assert_array_equal(
        first.extras["interaction_values"], second.extras["interaction_values"]
    )
    assert first.local_accuracy_error is not None
    assert first.local_accuracy_error <= KERNEL_TOLERANCE.atol


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("n_samples", -3, "The 'n_samples' parameter of SHAPExplainer must be an int >= 1. "),
        ("algorithm", "fast", "must be one of 'auto', 'tree', 'exact', 'kernel'. "),
        ("link", "probit", "must be one of 'auto', 'identity', 'logit'. "),
        ("max_exact_features", 20, "must be an int in [1, 16]. "),
        ("background_size", 0, "The 'background_size' parameter of SHAPExplainer must be"),
        ("seed", -1, "The 'seed' parameter of SHAPExplainer must be an int >= 0. "),
        ("tol", -0.5, "The 'tol' parameter of SHAPExplainer must be a finite float > 0 or None"),
        ("native_check", "never", "must be one of 'sample', 'all', 'off'. "),
    ],
)
def test_parameters_are_validated_with_sklearn_style_messages(
    keyword: str, value: object, message: str
) -> None:
    options: dict[str, Any] = {keyword: value}
    with pytest.raises(InvalidError) as caught:
        SHAPExplainer(RIDGE, BACKGROUND, **options)
    assert message in str(caught.value)
    assert f"Got {value!r} instead." in str(caught.value)
    assert caught.value.field == keyword


# ---------------------------------------------------------------------- input validation


def test_inputs_that_are_not_numeric_matrices_are_rejected_clearly() -> None:
    explainer = SHAPExplainer(RIDGE, BACKGROUND)
    with pytest.raises(InvalidError, match=r"must be a 2-D array \(rows x features\)"):
        explainer.explain(np.zeros((2, 3, M)))
    with pytest.raises(InvalidError, match=r"must not contain infinite values \(first at row 1\)"):
        explainer.explain(np.vstack([ROWS[0], np.full(M, np.inf)]))
    with pytest.raises(InvalidError, match="must contain numbers only"):
        explainer.explain(np.array([["a"] * M]))
    frame = pd.DataFrame(ROWS, columns=COLUMNS).assign(region=pd.Categorical(["n"] * len(ROWS)))
    with pytest.raises(InvalidError, match="column 'region' has dtype category"):
        explainer.explain(frame)


def test_polars_frames_are_accepted_with_their_column_names() -> None:
    import polars as pl

    frame = pl.DataFrame({name: ROWS[:, i] for i, name in enumerate(COLUMNS)})
    explanation = SHAPExplainer(RIDGE, BACKGROUND).explain(frame)
    assert explanation.feature_names == tuple(COLUMNS)
    np.testing.assert_allclose(
        explanation.values, SHAPExplainer(RIDGE, BACKGROUND).explain(ROWS).values
    )
