"""Fitted trees as plain arrays, read from scikit-learn, XGBoost and LightGBM models.

The tabulated TreeSHAP (:mod:`._path_tables`) needs each tree's structure, split rule,
missing-value direction, training cover and leaf values, read the way the library itself
evaluates the tree:

* scikit-learn: ``x <= threshold`` goes left, ``x`` rounded to float32 first (``Tree.apply``
  works on float32 input); NaN follows ``missing_go_to_left``. Cover is
  ``weighted_n_node_samples``; classifier leaves hold class fractions, and a forest's output
  is the mean of its trees.
* XGBoost: ``x < threshold`` in float32 goes left; NaN follows ``default_left``. Cover is
  the node's hessian sum (what XGBoost's own TreeSHAP uses); tree ``t`` feeds output
  ``tree_info[t]``.
* LightGBM: ``x <= threshold`` in float64; NaN is 0 unless the split's missing type is
  ``NaN``, and a ``Zero`` or ``NaN`` missing value follows ``default_left``. Cover is the
  data count; tree ``t`` feeds output ``t % K``.

A model whose trees cannot be read this way (categorical splits, DART weights, linear
leaves, early-stopped XGBoost ranges, gradient boosting in scikit-learn, a custom missing
value marker) gives None, and the caller keeps the library's own TreeSHAP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .models import FloatArray

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
SplitRule = Literal["le", "lt"]
MissingRule = Literal["nan", "lightgbm"]

LIGHTGBM_ZERO = 1e-35
"""LightGBM treats ``|x| <= 1e-35`` as zero (``kZeroThreshold``) for zero-as-missing splits."""


@dataclass(frozen=True)
class TreeArrays:
    """One tree as arrays over its nodes (``-1`` children mark a leaf).

    Attributes:
        left: Left child of each node, or -1.
        right: Right child of each node, or -1.
        feature: Split feature of each internal node.
        threshold: Split threshold of each internal node.
        default_left: Whether a missing value goes left.
        missing_zero: Whether the split treats zero as missing (LightGBM's ``Zero`` type).
        nan_as_zero: Whether a NaN is read as 0.0 (LightGBM's ``None`` missing type).
        cover: Training cover of each node (the path-dependent background).
        value: ``(nodes, K)`` leaf values (rows of internal nodes are ignored).
    """

    left: IntArray
    right: IntArray
    feature: IntArray
    threshold: FloatArray
    default_left: BoolArray
    missing_zero: BoolArray
    nan_as_zero: BoolArray
    cover: FloatArray
    value: FloatArray


@dataclass(frozen=True)
class TreeEnsemble:
    """An additive ensemble: output = ``base`` + sum of the trees' leaf values.

    Attributes:
        trees: The trees, leaf values already scaled (a forest's by ``1 / n_trees``).
        n_features: Number of input features.
        n_outputs: Number of outputs ``K``.
        split_rule: ``"le"`` (``x <= t`` goes left) or ``"lt"`` (``x < t``).
        float32: Whether inputs are rounded to float32 before they meet the thresholds.
        base: ``(K,)`` constant added to the trees' output (XGBoost's base margin).
    """

    trees: tuple[TreeArrays, ...]
    n_features: int
    n_outputs: int
    split_rule: SplitRule
    float32: bool
    base: FloatArray


def _tree(
    left: Any,
    right: Any,
    feature: Any,
    threshold: Any,
    default_left: Any,
    cover: Any,
    value: Any,
    *,
    missing_zero: Any = None,
    nan_as_zero: Any = None,
) -> TreeArrays:
    n_nodes = len(left)
    flags = np.zeros(n_nodes, dtype=np.bool_)
    return TreeArrays(
        left=np.asarray(left, dtype=np.intp),
        right=np.asarray(right, dtype=np.intp),
        feature=np.asarray(feature, dtype=np.intp),
        threshold=np.asarray(threshold, dtype=np.float64),
        default_left=np.asarray(default_left, dtype=np.bool_),
        missing_zero=flags if missing_zero is None else np.asarray(missing_zero, np.bool_),
        nan_as_zero=flags if nan_as_zero is None else np.asarray(nan_as_zero, np.bool_),
        cover=np.asarray(cover, dtype=np.float64),
        value=np.asarray(value, dtype=np.float64).reshape(n_nodes, -1),
    )


# ---------------------------------------------------------------------- scikit-learn

_SKLEARN_SINGLE = frozenset(
    {"DecisionTreeRegressor", "DecisionTreeClassifier", "ExtraTreeRegressor", "ExtraTreeClassifier"}
)
_SKLEARN_FORESTS = frozenset(
    {
        "RandomForestRegressor",
        "RandomForestClassifier",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
    }
)


def _sklearn_tree(estimator: Any, scale: float, classifier: bool) -> TreeArrays:
    tree = estimator.tree_
    value = np.asarray(tree.value, dtype=np.float64)
    if classifier:
        # Class fractions, as predict_proba reads them (older releases store counts).
        totals = value.sum(axis=2, keepdims=True)
        value = value / np.where(totals == 0.0, 1.0, totals)
    n_nodes = int(tree.node_count)
    missing = getattr(tree, "missing_go_to_left", None)
    default_left = np.ones(n_nodes, np.bool_) if missing is None else np.asarray(missing) != 0
    return _tree(
        tree.children_left,
        tree.children_right,
        tree.feature,
        tree.threshold,
        default_left,
        tree.weighted_n_node_samples,
        value.reshape(n_nodes, -1) * scale,
    )


def sklearn_ensemble(model: Any) -> TreeEnsemble | None:
    """Read a scikit-learn decision tree, random forest or extra-trees model.

    Args:
        model: A fitted scikit-learn model.

    Returns:
        The ensemble (regressors: one output per target; classifiers: one output per class,
        single-output only), or None for other models.
    """
    name = type(model).__name__
    if not type(model).__module__.startswith("sklearn."):
        return None
    if name in _SKLEARN_SINGLE:
        estimators = [model]
    elif name in _SKLEARN_FORESTS:
        estimators = list(model.estimators_)
    else:
        return None
    classifier = hasattr(model, "classes_")
    if classifier and int(model.n_outputs_) != 1:
        return None
    trees = tuple(_sklearn_tree(tree, 1.0 / len(estimators), classifier) for tree in estimators)
    n_outputs = trees[0].value.shape[1]
    return TreeEnsemble(
        trees=trees,
        n_features=int(model.n_features_in_),
        n_outputs=n_outputs,
        split_rule="le",
        float32=True,
        base=np.zeros(n_outputs),
    )


# ---------------------------------------------------------------------- XGBoost


def _xgboost_tree(raw: dict[str, Any], output: int, n_outputs: int) -> TreeArrays | None:
    if any(int(kind) != 0 for kind in raw.get("split_type", [])):
        return None  # categorical splits
    left = np.asarray(raw["left_children"], dtype=np.intp)
    # The JSON holds float32 values in shortest decimal form: round them back to float32.
    conditions = np.asarray(raw["split_conditions"], dtype=np.float32).astype(np.float64)
    value = np.zeros((len(left), n_outputs))
    # Leaves keep their (learning-rate scaled) value in split_conditions.
    value[:, output] = np.where(left == -1, conditions, 0.0)
    return _tree(
        left,
        raw["right_children"],
        raw["split_indices"],
        conditions,
        np.asarray(raw["default_left"]) != 0,
        raw["sum_hessian"],
        value,
    )


def xgboost_ensemble(model: Any) -> TreeEnsemble | None:
    """Read an XGBoost tree booster's trees from its JSON model (without the base margin).

    The base margin is left at zero: how ``base_score`` becomes a margin depends on the
    objective, so the caller measures it from the booster's own margins.

    Args:
        model: An ``XGBModel`` or ``Booster``.

    Returns:
        The trees up to the best iteration (all trees without early stopping), or None if
        the booster is not a single-target ``gbtree`` of numerical splits reading NaN as
        missing.
    """
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    marker = getattr(model, "missing", np.nan)
    if marker is not None and not np.isnan(marker):
        return None
    document = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = document["learner"]
    parameters = learner["learner_model_param"]
    gradient_booster = learner["gradient_booster"]
    if gradient_booster["name"] != "gbtree" or int(parameters.get("num_target", 1)) != 1:
        return None
    forest = gradient_booster["model"]
    n_trees = len(forest["trees"])
    best = getattr(booster, "best_iteration", None)
    if best is not None:
        n_trees = int(forest["iteration_indptr"][int(best) + 1])
    n_outputs = max(1, int(parameters["num_class"]))
    trees = []
    for raw, output in zip(forest["trees"][:n_trees], forest["tree_info"][:n_trees], strict=True):
        tree = _xgboost_tree(raw, int(output), n_outputs)
        if tree is None:
            return None
        trees.append(tree)
    return TreeEnsemble(
        trees=tuple(trees),
        n_features=int(parameters["num_feature"]),
        n_outputs=n_outputs,
        split_rule="lt",
        float32=True,
        base=np.zeros(n_outputs),
    )


# ---------------------------------------------------------------------- LightGBM


def _lightgbm_tree(root: dict[str, Any], output: int, n_outputs: int) -> TreeArrays | None:
    nodes: list[dict[str, Any]] = []
    children: list[list[int]] = []
    stack: list[tuple[dict[str, Any], int, int]] = [(root, -1, 0)]
    while stack:
        node, parent, side = stack.pop()
        index = len(nodes)
        nodes.append(node)
        children.append([-1, -1])
        if parent >= 0:
            children[parent][side] = index
        if "split_index" in node:
            if node["decision_type"] != "<=":
                return None  # categorical split
            stack.append((node["right_child"], index, 1))
            stack.append((node["left_child"], index, 0))
    n_nodes = len(nodes)
    value = np.zeros((n_nodes, n_outputs))
    feature = np.zeros(n_nodes, np.intp)
    threshold = np.zeros(n_nodes)
    default_left = np.zeros(n_nodes, np.bool_)
    missing_zero = np.zeros(n_nodes, np.bool_)
    nan_as_zero = np.zeros(n_nodes, np.bool_)
    cover = np.zeros(n_nodes)
    for index, node in enumerate(nodes):
        if "split_index" in node:
            feature[index] = node["split_feature"]
            threshold[index] = node["threshold"]
            default_left[index] = node["default_left"]
            missing_zero[index] = node["missing_type"] == "Zero"
            nan_as_zero[index] = node["missing_type"] == "None"
            cover[index] = node["internal_count"]
        else:
            value[index, output] = node["leaf_value"]
            cover[index] = node.get("leaf_count", 0)
    return _tree(
        [pair[0] for pair in children],
        [pair[1] for pair in children],
        feature,
        threshold,
        default_left,
        cover,
        value,
        missing_zero=missing_zero,
        nan_as_zero=nan_as_zero,
    )


def lightgbm_ensemble(model: Any) -> TreeEnsemble | None:
    """Read a LightGBM model's trees from ``dump_model`` (every tree, as shap uses).

    Args:
        model: An ``LGBMModel`` or ``Booster``.

    Returns:
        The ensemble, or None for categorical splits, linear trees or random-forest mode
        (averaged trees).
    """
    booster = model.booster_ if hasattr(model, "booster_") else model
    dump = booster.dump_model()
    if dump.get("linear_tree") or dump.get("average_output"):
        return None
    n_outputs = int(dump["num_tree_per_iteration"])
    trees = []
    for index, info in enumerate(dump["tree_info"]):
        tree = _lightgbm_tree(info["tree_structure"], index % n_outputs, n_outputs)
        if tree is None:
            return None
        trees.append(tree)
    return TreeEnsemble(
        trees=tuple(trees),
        n_features=int(dump["max_feature_idx"]) + 1,
        n_outputs=n_outputs,
        split_rule="le",
        float32=False,
        base=np.zeros(n_outputs),
    )
