"""XGBoost's and LightGBM's own TreeSHAP (``pred_contribs`` / ``pred_contrib``), reshaped.

Both libraries implement path-dependent TreeSHAP in C++ (shap's TreeExplainer calls them
for these models too). Their outputs carry the bias in an extra last column and put the
outputs first; this module turns them into our ``(n, M, K)`` values and ``(n, K)`` bases,
and reads the raw margins (for the local-accuracy check) with the same call setup, so values
and predictions use the same trees (the best iteration for early-stopped XGBoost models, as
shap does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._tree_arrays import LIGHTGBM_ZERO, IntArray, TreeArrays
from .models import FloatArray

NativeFamily = Literal["xgboost", "lightgbm"]


@dataclass(frozen=True)
class NativeResult:
    """Attributions from a library's own TreeSHAP.

    Attributes:
        values: ``(n, M, K)`` contributions, or ``(n, M, M, K)`` interaction values.
        base_values: ``(n, K)`` bias column; bias plus the row's values is, by construction,
            the margin the native code attributed.
    """

    values: FloatArray
    base_values: FloatArray


def _xgboost_booster(model: Any) -> Any:
    return model.get_booster() if hasattr(model, "get_booster") else model


def _xgboost_dmatrix(model: Any, instances: FloatArray) -> Any:
    import xgboost

    # The scikit-learn wrapper's data settings (missing value marker, threads) must reach
    # the DMatrix, or a model fitted with missing=-999 reads -999 as a number (shap GH #3313).
    properties: dict[str, Any] = {}
    for attribute, keyword in (("missing", "missing"), ("n_jobs", "nthread")):
        value = getattr(model, attribute, None)
        if value is not None:
            properties[keyword] = value
    return xgboost.DMatrix(instances, **properties)


def _xgboost_iterations(booster: Any) -> tuple[int, int]:
    best = getattr(booster, "best_iteration", None)
    return (0, 0 if best is None else int(best) + 1)


def _bias_last(contributions: FloatArray, n_rows: int) -> tuple[FloatArray, FloatArray]:
    """``(n, M+1)`` or ``(n, K, M+1)`` -> values ``(n, M, K)`` and bases ``(n, K)``."""
    if contributions.ndim == 2:
        contributions = contributions[:, None, :]
    values = np.ascontiguousarray(np.moveaxis(contributions[:, :, :-1], 1, 2))
    return values, np.ascontiguousarray(contributions[:, :, -1]).reshape(n_rows, -1)


def _as_margins(raw: Any, n_rows: int) -> FloatArray:
    return np.asarray(raw, dtype=np.float64).reshape(n_rows, -1)


def native_contributions(family: NativeFamily, model: Any, instances: FloatArray) -> NativeResult:
    """Path-dependent TreeSHAP values from the model's own library.

    The bias column of the native output is the base value, and each row's contributions
    plus its bias are, by construction of the native code, the row's raw margin. The margins
    are therefore not predicted again here: :func:`native_margins` gives the model's own
    output for the rows a caller checks local accuracy on.

    Args:
        family: ``"xgboost"`` or ``"lightgbm"``.
        model: The fitted model (scikit-learn API or ``Booster``).
        instances: ``(n, M)`` float64 instances.

    Returns:
        Values ``(n, M, K)`` and bases ``(n, K)``, float64.
    """
    n_rows = instances.shape[0]
    if family == "xgboost":
        booster = _xgboost_booster(model)
        contributions = booster.predict(
            _xgboost_dmatrix(model, instances),
            pred_contribs=True,
            iteration_range=_xgboost_iterations(booster),
            validate_features=False,
        )
        values, bases = _bias_last(np.asarray(contributions, dtype=np.float64), n_rows)
        return NativeResult(values, bases)
    booster = model.booster_ if hasattr(model, "booster_") else model
    # num_iteration=-1 uses every tree, as shap does; None would pick the best iteration.
    flat = np.asarray(booster.predict(instances, pred_contrib=True, num_iteration=-1))
    n_features = instances.shape[1]
    stacked = flat.reshape(n_rows, flat.shape[1] // (n_features + 1), n_features + 1)
    values, bases = _bias_last(stacked.astype(np.float64), n_rows)
    return NativeResult(values, bases)


def native_interactions(model: Any, instances: FloatArray) -> NativeResult:
    """XGBoost's own exact TreeSHAP interaction values (LightGBM has none).

    Args:
        model: A fitted XGBoost model (scikit-learn API or ``Booster``).
        instances: ``(n, M)`` float64 instances.

    Returns:
        Interaction values ``(n, M, M, K)`` and bases ``(n, K)``.
    """
    booster = _xgboost_booster(model)
    matrix = _xgboost_dmatrix(model, instances)
    iterations = _xgboost_iterations(booster)
    raw = np.asarray(
        booster.predict(
            matrix, pred_interactions=True, iteration_range=iterations, validate_features=False
        ),
        dtype=np.float64,
    )
    if raw.ndim == 3:
        raw = raw[:, None, :, :]
    # (n, K, M+1, M+1) -> (n, M, M, K); the bias sits in the last row and column.
    values = np.ascontiguousarray(np.moveaxis(raw[:, :, :-1, :-1], 1, 3))
    bases = np.ascontiguousarray(raw[:, :, -1, -1])
    return NativeResult(values, bases)


def native_margins(family: NativeFamily, model: Any, instances: FloatArray) -> FloatArray:
    """Raw margins from the same trees the native contributions use.

    Args:
        family: ``"xgboost"`` or ``"lightgbm"``.
        model: The fitted model.
        instances: ``(n, M)`` float64 instances.

    Returns:
        ``(n, K)`` float64 margins.
    """
    n_rows = instances.shape[0]
    if family == "xgboost":
        booster = _xgboost_booster(model)
        margins = booster.predict(
            _xgboost_dmatrix(model, instances),
            output_margin=True,
            iteration_range=_xgboost_iterations(booster),
            validate_features=False,
        )
        return _as_margins(margins, n_rows)
    booster = model.booster_ if hasattr(model, "booster_") else model
    return _as_margins(booster.predict(instances, raw_score=True, num_iteration=-1), n_rows)


@dataclass(frozen=True)
class LightGBMReads:
    """LightGBM's reading of NaN and zero, put into rows so that shap's parse reads them alike.

    shap's parse of LightGBM trees sends a NaN the default way and compares a zero with the
    threshold on every split. LightGBM reads a NaN as 0.0 on splits of features that had no
    missing value in training (missing type ``None``, or ``use_missing=False``) and treats
    zero as missing on ``Zero`` splits (``zero_as_missing=True``). Missing types are set per
    feature at training, so the rows are rewritten per feature: NaN to 0.0 where every
    split of the feature is ``None``, zero to NaN where every split is ``Zero``.

    Attributes:
        nan_as_zero: Features whose NaN LightGBM reads as 0.0.
        zero_as_missing: Features whose zero LightGBM treats as missing.
    """

    nan_as_zero: IntArray
    zero_as_missing: IntArray

    @classmethod
    def of_splits(
        cls,
        feature: IntArray,
        nan_as_zero: npt.NDArray[np.bool_],
        missing_zero: npt.NDArray[np.bool_],
    ) -> LightGBMReads:
        """The features every split of which reads NaN as 0.0, or zero as missing.

        Args:
            feature: Split feature of every split.
            nan_as_zero: Whether each split reads a NaN as 0.0 (missing type ``None``).
            missing_zero: Whether each split treats zero as missing (type ``Zero``).
        """
        features = np.unique(feature)

        def every(flags: npt.NDArray[np.bool_]) -> IntArray:
            some_not = np.unique(feature[~flags])
            return np.setdiff1d(features, some_not).astype(np.intp)

        return cls(every(nan_as_zero), every(missing_zero))

    @classmethod
    def of_trees(cls, trees: Sequence[TreeArrays]) -> LightGBMReads:
        """The reading of the splits of ``trees`` (none: rows are left as they are)."""
        internal = [tree.left >= 0 for tree in trees]
        pairs = list(zip(trees, internal, strict=True))
        return cls.of_splits(
            np.concatenate([np.empty(0, np.intp)] + [t.feature[keep] for t, keep in pairs]),
            np.concatenate([np.empty(0, np.bool_)] + [t.nan_as_zero[keep] for t, keep in pairs]),
            np.concatenate([np.empty(0, np.bool_)] + [t.missing_zero[keep] for t, keep in pairs]),
        )

    def apply(self, rows: FloatArray) -> FloatArray:
        """``rows`` as LightGBM reads them, for shap's parse (a copy)."""
        read = rows.copy()
        columns = read[:, self.nan_as_zero]
        read[:, self.nan_as_zero] = np.where(np.isnan(columns), 0.0, columns)
        columns = read[:, self.zero_as_missing]
        read[:, self.zero_as_missing] = np.where(np.abs(columns) <= LIGHTGBM_ZERO, np.nan, columns)
        return read


def shap_reference(family: NativeFamily, model: Any, background: FloatArray | None = None) -> Any:
    """A ``shap.TreeExplainer`` that runs shap's own C-extension TreeSHAP on ``model``.

    ``shap.TreeExplainer`` hands XGBoost and LightGBM models to their native TreeSHAP, so
    comparing against it would compare the native code with itself. This reference runs
    shap's algorithm on shap's parse of the trees instead, which makes the agreement check
    independent.

    XGBoost: the parsed ensemble is marked ``"internal"``, which routes it to the C
    extension. LightGBM: shap does not split a multi-class ``Booster``'s trees by class (it
    does for ``LGBMClassifier``; for a ``Booster`` its values do not even add up), so the
    parsed trees are rebuilt in shap's documented dictionary model format, tree ``i``
    feeding output ``i % K`` as LightGBM orders them. That rebuilt ensemble is also what
    computes LightGBM's interventional values and interaction values.

    Args:
        family: ``"xgboost"`` or ``"lightgbm"``.
        model: The fitted model.
        background: Reference rows for interventional TreeSHAP; None for path-dependent.

    Returns:
        An explainer whose ``shap_values`` and ``shap_interaction_values`` use shap's code.
    """
    import shap

    perturbation = "tree_path_dependent" if background is None else "interventional"
    if family == "xgboost":
        parsed = shap.TreeExplainer(model, data=background, feature_perturbation=perturbation)
        parsed.model.model_type = "internal"
        return parsed
    parsed = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    booster = model.booster_ if hasattr(model, "booster_") else model
    n_outputs = int(booster.num_model_per_iteration())
    trees = []
    for index, tree in enumerate(parsed.model.trees):
        values = np.zeros((len(tree.values), n_outputs))
        values[:, index % n_outputs] = tree.values[:, 0]
        trees.append(
            {
                "children_left": tree.children_left,
                "children_right": tree.children_right,
                "children_default": tree.children_default,
                "features": tree.features,
                "thresholds": tree.thresholds,
                "values": values,
                "node_sample_weight": tree.node_sample_weight,
            }
        )
    return shap.TreeExplainer({"trees": trees}, data=background, feature_perturbation=perturbation)
