"""Path tables for a fitted model: read its trees, tabulate them, fix XGBoost's base margin.

XGBoost turns ``base_score`` into a margin in an objective-specific way (a logit for
logistic objectives, a log for Poisson, the value itself for squared error, per-class
intercepts for multi-class models). Rather than re-implement each, the base margin is
measured: the booster's own margins minus the tabulated trees' output, on probe rows whose
values are the trees' own thresholds (so they reach many different leaves). XGBoost sums
its float32 leaf values in float32, so each difference carries that rounding; the median
over the probes is the base.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._native_trees import native_margins
from ._path_tables import PathTables, compile_tables
from ._tree_arrays import TreeEnsemble, lightgbm_ensemble, sklearn_ensemble, xgboost_ensemble
from ._tree_models import TreeFamily
from .models import FloatArray

PROBE_ROWS = 32
"""Rows the XGBoost base margin is measured on."""


def _probe_rows(ensemble: TreeEnsemble) -> FloatArray:
    rng = np.random.default_rng(0)
    rows = np.zeros((PROBE_ROWS, ensemble.n_features))
    features = np.concatenate([tree.feature[tree.left >= 0] for tree in ensemble.trees])
    thresholds = np.concatenate([tree.threshold[tree.left >= 0] for tree in ensemble.trees])
    for feature in np.unique(features):
        candidates = thresholds[features == feature]
        rows[:, feature] = rng.choice(candidates, size=PROBE_ROWS)
    return rows


def model_tables(family: TreeFamily, model: Any, budget_bytes: int) -> PathTables | None:
    """Tabulated TreeSHAP for ``model``, or None if its trees cannot be tabulated.

    Args:
        family: The model's tree family.
        model: The fitted model.
        budget_bytes: The most memory the tables may take.

    Returns:
        The tables (with the model's base margin), or None for models the tree reader does
        not cover (see :mod:`._tree_arrays`) or whose tables exceed the budget.
    """
    if family == "sklearn":
        ensemble = sklearn_ensemble(model)
    elif family == "lightgbm":
        ensemble = lightgbm_ensemble(model)
    else:
        ensemble = xgboost_ensemble(model)
    if ensemble is None:
        return None
    tables = compile_tables(ensemble, budget_bytes)
    if tables is None or family != "xgboost":
        return tables
    probes = _probe_rows(ensemble)
    margins = native_margins("xgboost", model, probes)
    base = np.median(margins - tables.predict(probes), axis=0)
    return dataclasses.replace(tables, base=base, expected_value=tables.expected_value + base)
