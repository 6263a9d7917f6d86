"""Which models TreeSHAP explains exactly: detection by type, without importing the world.

A model counts as a tree model only if shap's TreeExplainer (or the library's own TreeSHAP)
handles it exactly: multi-class scikit-learn ``GradientBoostingClassifier`` (shap refuses
it) and XGBoost's linear booster are not tree models here, so ``algorithm="auto"`` sends
them to the exact or kernel path instead of failing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

TreeFamily = Literal["xgboost", "lightgbm", "sklearn"]

_SKLEARN_TREES = frozenset(
    {
        "DecisionTreeRegressor",
        "DecisionTreeClassifier",
        "ExtraTreeRegressor",
        "ExtraTreeClassifier",
        "RandomForestRegressor",
        "RandomForestClassifier",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
        "GradientBoostingRegressor",
        "GradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "HistGradientBoostingClassifier",
    }
)


def _sklearn_tree_class(model: object) -> bool:
    # Match the scikit-learn class itself (or a subclass), not a look-alike name elsewhere.
    for cls in type(model).__mro__:
        if cls.__name__ in _SKLEARN_TREES and cls.__module__.startswith("sklearn."):
            return True
    return False


def _is_fitted_sklearn(model: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def _xgboost_uses_trees(model: Any) -> bool:
    try:
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        config = json.loads(booster.save_config())
    except Exception:
        # An unfitted wrapper raises XGBoost's NotFittedError or XGBoostError: not a tree
        # model we can explain, so the caller falls back to another algorithm or says so.
        return False
    return str(config["learner"]["gradient_booster"]["name"]) in {"gbtree", "dart"}


def _lightgbm_fitted(model: Any) -> bool:
    if type(model).__name__ == "Booster":
        return True
    try:
        return model.booster_ is not None
    except Exception:
        # LightGBM raises its own LGBMNotFittedError before fit.
        return False


def tree_family(model: object) -> TreeFamily | None:
    """Which TreeSHAP route explains ``model``, or None if it is not a supported tree model.

    Args:
        model: Any object.

    Returns:
        ``"xgboost"`` (tree boosters, scikit-learn API or ``Booster``), ``"lightgbm"``
        (either API), ``"sklearn"`` (fitted trees, forests, gradient boosting for regression
        and binary classification, histogram gradient boosting), or None.
    """
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        return "xgboost" if _xgboost_uses_trees(model) else None
    if module == "lightgbm":
        return "lightgbm" if _lightgbm_fitted(model) else None
    if not _sklearn_tree_class(model) or not _is_fitted_sklearn(model):
        return None
    estimators = getattr(model, "estimators_", None)
    # One tree column per class: shap supports the binary (single column) case only.
    if (
        type(model).__name__ == "GradientBoostingClassifier"
        and getattr(estimators, "shape", (0, 1))[1] > 1
    ):
        return None
    return "sklearn"


def unsupported_reason(model: object, feature_perturbation: str) -> str | None:
    """Why TreeSHAP must not explain this model this way, or None if it may.

    shap 0.51's interventional TreeSHAP returns wrong values for multi-class
    ``HistGradientBoostingClassifier`` (its own additivity check fails by up to 0.36), so
    that combination is refused rather than explained wrongly.

    Args:
        model: A model :func:`tree_family` recognises.
        feature_perturbation: ``"tree_path_dependent"`` or ``"interventional"``.

    Returns:
        A message for the user, or None.
    """
    if (
        feature_perturbation == "interventional"
        and type(model).__name__ == "HistGradientBoostingClassifier"
        and len(getattr(model, "classes_", ())) > 2
    ):
        return (
            "Interventional TreeSHAP gives wrong values for a multi-class "
            "HistGradientBoostingClassifier (shap's additivity fails); use "
            "feature_perturbation='tree_path_dependent', or algorithm='exact' or 'kernel'."
        )
    return None
