"""Exact interventional Shapley values by enumerating all ``2^M`` coalitions.

The value of a coalition is ``v(S) = link(sum_b w_b f(x_S, b_notS))`` over a (weighted)
background, and the Shapley value of feature ``j`` is

    phi_j = sum_{S not containing j} |S|! (M - |S| - 1)! / M! * (v(S + j) - v(S)).

The whole table of ``2^M`` values is computed per block of instances (model calls chunked
to ``batch_size`` rows), then every ``phi_j`` is one weighted sum over it. The cost is
``2^M * n_background`` model rows per instance, so the feature count is capped at
:data:`EXACT_MAX_FEATURES`; SHAPExplainer's ``"auto"`` stops at
:data:`EXACT_AUTO_MAX_FEATURES`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from math import comb

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._shapley_inputs import (
    DEFAULT_BATCH_SIZE,
    Link,
    ModelFunction,
    apply_link,
    call_model,
    check_int,
    check_link,
    check_names,
    resolve_output_names,
)
from synapsenet.services.explainability.background import (
    Background,
    BoolArray,
    check_background,
    expected_outputs,
)
from synapsenet.services.explainability.models import Explanation, ExplanationType, FloatArray

EXACT_MAX_FEATURES = 16
"""The most features exact enumeration accepts (65,536 coalitions per background row)."""

EXACT_AUTO_MAX_FEATURES = 12
"""The most features for which ``algorithm="auto"`` prefers exact enumeration."""

_TABLE_LIMIT = 1 << 22
"""Coalition values kept per block of instances (floats): 32 MB."""


def all_coalitions(n_features: int) -> BoolArray:
    """Every coalition as a mask: row ``c`` holds feature ``j`` iff bit ``j`` of ``c`` is set."""
    codes = np.arange(1 << n_features)
    return ((codes[:, None] >> np.arange(n_features)[None, :]) & 1).astype(bool)


def coalition_sizes(n_features: int) -> npt.NDArray[np.intp]:
    """The size (popcount) of every coalition code ``0 .. 2^M - 1``."""
    return np.asarray(all_coalitions(n_features).sum(axis=1), dtype=np.intp)


def coalition_table(
    f: ModelFunction,
    instances: FloatArray,
    background: Background,
    *,
    link: Link,
    batch_size: int,
    predictions: FloatArray,
    base: FloatArray,
) -> Iterator[tuple[slice, FloatArray]]:
    """Yield ``(rows, v)`` per block of instances, ``v`` of shape ``(block, 2^M, K)``.

    The empty and full coalitions are set to ``base`` and ``predictions`` instead of being
    recomputed, so the values add up to exactly the reported prediction.

    Args:
        f: The vectorised model.
        instances: Rows to explain, ``(n, M)``.
        background: The background.
        link: Link applied to the background-averaged outputs.
        batch_size: Model rows per call.
        predictions: ``link(f(x))`` per instance, ``(n, K)``.
        base: ``link(sum_b w_b f(b))``, ``(K,)``.
    """
    n, n_features = instances.shape
    n_outputs = predictions.shape[1]
    masks = all_coalitions(n_features)[1:-1]
    block = max(1, _TABLE_LIMIT // ((1 << n_features) * n_outputs))
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        table = np.empty((rows.stop - rows.start, 1 << n_features, n_outputs))
        averaged = expected_outputs(
            f, instances[rows], masks, background, batch_size=batch_size, n_outputs=n_outputs
        )
        table[:, 1:-1] = apply_link(averaged, link)
        table[:, 0] = base
        table[:, -1] = predictions[rows]
        yield rows, table


def shapley_from_table(table: FloatArray) -> FloatArray:
    """Shapley values ``(n, M, K)`` from a full table of coalition values ``(n, 2^M, K)``."""
    n_coalitions = table.shape[1]
    n_features = n_coalitions.bit_length() - 1
    codes = np.arange(n_coalitions)
    sizes = coalition_sizes(n_features)
    # |S|! (M - |S| - 1)! / M! = 1 / (M * C(M - 1, |S|))
    weight_by_size = np.array(
        [1.0 / (n_features * comb(n_features - 1, s)) for s in range(n_features)]
    )
    values = np.empty((table.shape[0], n_features, table.shape[2]))
    for j in range(n_features):
        without = codes[(codes >> j) & 1 == 0]
        gains = table[:, without | (1 << j)] - table[:, without]
        values[:, j] = np.einsum("c,nck->nk", weight_by_size[sizes[without]], gains)
    return values


def check_feature_count(n_features: int, owner: str) -> None:
    """Refuse feature counts exact enumeration cannot afford.

    Raises:
        InvalidError: If ``n_features`` exceeds :data:`EXACT_MAX_FEATURES`.
    """
    if n_features > EXACT_MAX_FEATURES:
        raise InvalidError(
            f"{owner} enumerates all 2^M coalitions and accepts at most "
            f"{EXACT_MAX_FEATURES} features. Got {n_features}; use KernelSHAP instead.",
            field="X",
        )


def exact_shapley(
    f: ModelFunction,
    X: npt.ArrayLike,  # noqa: N803 - scikit-learn's name for a data matrix
    background: npt.ArrayLike,
    *,
    link: str = "identity",
    weights: npt.ArrayLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feature_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Explanation:
    """Exact interventional Shapley values by enumeration of every coalition.

    Args:
        f: Vectorised model, ``(n, M) -> (n, K)`` (probabilities for the logit link).
        X: Rows to explain, ``(n, M)`` (a 1-D array is one row).
        background: Background rows, ``(n_background, M)``.
        link: ``"identity"`` or ``"logit"``, applied to each coalition's
            background-averaged output (as in shap's KernelExplainer).
        weights: Weight per background row; uniform when None.
        batch_size: Model rows per call of ``f``.
        feature_names: One name per feature; ``x0 ..`` when None.
        output_names: One name per output; ``output`` or ``output_0 ..`` when None.

    Returns:
        An explanation of type ``SHAP_EXACT``, values ``(n, M, K)``; local accuracy holds
        to float64 rounding.

    Raises:
        InvalidError: If ``M > 16``, on inputs of the wrong shape, an empty background,
            malformed weights, or a model returning the wrong shape or non-finite outputs.
    """
    owner = "exact_shapley"
    started = time.perf_counter()
    chosen_link = check_link(link, owner)
    chunk = check_int(batch_size, "batch_size", owner)
    instances, prepared = check_background(X, background, weights, owner)
    n, n_features = instances.shape
    check_feature_count(n_features, owner)
    raw = call_model(f, instances)
    predictions = apply_link(raw, chosen_link)
    base = apply_link(prepared.weights @ call_model(f, prepared.data, raw.shape[1]), chosen_link)
    values = np.empty((n, n_features, raw.shape[1]))
    for rows, table in coalition_table(
        f,
        instances,
        prepared,
        link=chosen_link,
        batch_size=chunk,
        predictions=predictions,
        base=base,
    ):
        values[rows] = shapley_from_table(table)
    return Explanation(
        type=ExplanationType.SHAP_EXACT,
        values=values,
        base_values=np.repeat(base[None, :], n, axis=0),
        predictions=predictions,
        feature_names=check_names(feature_names, n_features, "feature_names", owner, "x"),
        output_names=resolve_output_names(output_names, raw.shape[1], owner),
        parameters={"link": chosen_link, "n_background": prepared.n_rows, "batch_size": chunk},
        seed=None,
        runtime_seconds=time.perf_counter() - started,
        local_accuracy_error=float(
            np.max(np.abs(values.sum(axis=1) + base[None, :] - predictions))
        ),
        extras={"n_coalitions": 1 << n_features},
    )
