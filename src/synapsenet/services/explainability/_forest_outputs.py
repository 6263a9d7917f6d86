"""scikit-learn forests' raw output from the fitted trees, without the per-call overhead.

``RandomForestRegressor.predict`` on 8 rows costs as much as on 200 (about 16 ms for 50
trees): it dispatches one joblib task per tree and re-validates the input for each. TreeSHAP
needs the model's own output of a handful of rows to check local accuracy, so this module
evaluates the same fitted ``tree_`` objects with scikit-learn's compiled ``Tree.predict``
and averages them exactly as the forest does. It is independent of shap's parse of the trees
(the point of the check); anything it does not cover returns None and the caller falls back
to the model's public ``predict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .models import FloatArray

_SINGLE_TREES = frozenset(
    {"DecisionTreeRegressor", "DecisionTreeClassifier", "ExtraTreeRegressor", "ExtraTreeClassifier"}
)
_FORESTS = frozenset(
    {
        "RandomForestRegressor",
        "RandomForestClassifier",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
    }
)


def forest_trees(model: Any) -> list[Any] | None:
    """The fitted trees whose mean is ``model``'s raw output, or None if not covered.

    Covered: single-output scikit-learn decision trees, extra trees, random forests and
    extra-trees forests, of their exact classes (a subclass may override ``predict``).
    """
    cls = type(model)
    if not cls.__module__.startswith("sklearn."):
        return None
    if cls.__name__ in _SINGLE_TREES:
        trees = [model]
    elif cls.__name__ in _FORESTS:
        trees = list(model.estimators_)
    else:
        return None
    return trees if model.n_outputs_ == 1 else None


def forest_raw_output(model: Any, instances: FloatArray) -> FloatArray | None:
    """What shap's TreeExplainer explains for a tree or forest: mean value or class fractions.

    Args:
        model: A fitted scikit-learn model.
        instances: ``(n, M)`` float64 rows, already validated.

    Returns:
        ``(n, 1)`` for a single-output regressor, ``(n, C)`` class probabilities for a
        single-output classifier, or None for a model :func:`forest_trees` does not cover.
    """
    trees = forest_trees(model)
    if trees is None:
        return None
    # scikit-learn evaluates its trees on float32 inputs; convert once, as predict does.
    data = np.ascontiguousarray(instances, dtype=np.float32)
    total = np.zeros((instances.shape[0], 1), dtype=np.float64)
    for tree in trees:
        total = total + tree.tree_.predict(data)
    total /= len(trees)
    classes = getattr(model, "n_classes_", None)
    return total[:, :1] if classes is None else total[:, : int(classes)]
