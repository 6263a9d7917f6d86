"""Shapley interaction values of any model: exact enumeration and a sampling estimator.

The Shapley interaction index of features ``i != j`` (Grabisch & Roubens 1999) is

    I_ij = sum_{S in N - {i, j}} |S|! (M - |S| - 2)! / (M - 1)!
           * (v(S + i + j) - v(S + i) - v(S + j) + v(S)).

Results follow shap's convention for interaction values: an array ``(n, M, M, K)`` whose
off-diagonal entries are ``I_ij / 2`` (symmetric) and whose diagonal holds the main effect
``phi_i - sum_{j != i} I_ij / 2``, so each row sums to the Shapley value ``phi_i`` and the
whole matrix to ``prediction - base``.

:func:`exact_interactions` enumerates all ``2^M`` coalitions (``M <= 16``).
:func:`sampled_interactions` uses that row ``i`` of the index is the Shapley value of the
*derivative game* ``u_i(S) = v(S + i) - v(S)`` on the other ``M - 1`` features:
``I_ij = phi_j(u_i)``. Each row is estimated by the KernelSHAP regression of
:mod:`._kernel_regression` (complete enumeration of the sizes the budget covers, paired
stratified sampling, the row's efficiency ``sum_j I_ij = v(N) - v(N - i) - v(i) + v(0)``
held exactly). One coalition design serves every row, coalition values are deduplicated
across rows before the model sees them, and ``I_ij`` and ``I_ji`` are averaged. The
diagonal comes from KernelSHAP's Shapley values with ``M`` times the budget (at most
KernelSHAP's default ``2 M + 2048``, at least ``n_samples``), so rows sum to them exactly.
Measured error (``tests/services/explainability/test_interactions.py``, a
10-feature model with pairwise terms, two three-way products and a max, 4 rows, seeds 0-5):
with ``n_samples=64``, an eighth of the derivative games' 510 coalitions, the RMSE is
1.3-1.9% of the RMS of the exact values off the diagonal and 1.2-2.2% over the whole
matrix; with ``n_samples=32``, 2.8-3.8%. A budget of ``2^M - 2`` reproduces the exact
values. The derivative games share one coalition design (not one per background row as
KernelSHAP's Shapley values do), so this estimator also serves the logit link.
"""

from __future__ import annotations

from math import comb

import numpy as np
import numpy.typing as npt

from synapsenet.services.explainability._coalitions import CoalitionPlan
from synapsenet.services.explainability._kernel_regression import DesignSolver
from synapsenet.services.explainability._shapley_inputs import (
    DEFAULT_BATCH_SIZE,
    Link,
    ModelFunction,
    apply_link,
    call_model,
    check_int,
    check_link,
)
from synapsenet.services.explainability.background import (
    Background,
    BoolArray,
    check_background,
    expected_outputs,
)
from synapsenet.services.explainability.exact import (
    check_feature_count,
    coalition_sizes,
    coalition_table,
    shapley_from_table,
)
from synapsenet.services.explainability.kernel_shap import KernelSHAP
from synapsenet.services.explainability.models import FloatArray

_VALUE_LIMIT = 1 << 22
"""Coalition values kept per block of instances (floats): 32 MB."""


def interactions_from_table(table: FloatArray) -> FloatArray:
    """Interaction values ``(n, M, M, K)`` from a full table of coalition values.

    Args:
        table: ``v(S)`` for every coalition code ``0 .. 2^M - 1`` (bit ``j`` = feature
            ``j``), ``(n, 2^M, K)``.

    Returns:
        shap-convention interaction values: halves of the index off the diagonal, main
        effects on it.
    """
    n, n_coalitions, n_outputs = table.shape
    n_features = n_coalitions.bit_length() - 1
    shapley = shapley_from_table(table)
    result = np.zeros((n, n_features, n_features, n_outputs))
    codes = np.arange(n_coalitions)
    sizes = coalition_sizes(n_features)
    # |S|! (M - |S| - 2)! / (M - 1)! = 1 / ((M - 1) * C(M - 2, |S|))
    weight_by_size = np.array(
        [1.0 / ((n_features - 1) * comb(n_features - 2, s)) for s in range(n_features - 1)]
    )
    for i in range(n_features):
        for j in range(i + 1, n_features):
            pair = (1 << i) | (1 << j)
            rest = codes[codes & pair == 0]
            second = (
                table[:, rest | pair]
                - table[:, rest | (1 << i)]
                - table[:, rest | (1 << j)]
                + table[:, rest]
            )
            half = 0.5 * np.einsum("c,nck->nk", weight_by_size[sizes[rest]], second)
            result[:, i, j] = half
            result[:, j, i] = half
    return _with_main_effects(result, shapley)


def _with_main_effects(off_diagonal: FloatArray, shapley: FloatArray) -> FloatArray:
    n_features = shapley.shape[1]
    diagonal = np.arange(n_features)
    off_diagonal[:, diagonal, diagonal] = 0.0
    off_diagonal[:, diagonal, diagonal] = shapley - off_diagonal.sum(axis=2)
    return off_diagonal


def exact_interactions(
    f: ModelFunction,
    X: npt.ArrayLike,  # noqa: N803 - scikit-learn's name for a data matrix
    background: npt.ArrayLike,
    *,
    link: str = "identity",
    weights: npt.ArrayLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FloatArray:
    """Exact Shapley interaction values by enumerating every coalition.

    Args:
        f: Vectorised model, ``(n, M) -> (n, K)``.
        X: Rows to explain, ``(n, M)``.
        background: Background rows, ``(n_background, M)``.
        link: ``"identity"`` or ``"logit"`` (applied to background-averaged outputs).
        weights: Weight per background row; uniform when None.
        batch_size: Model rows per call of ``f``.

    Returns:
        ``(n, M, M, K)`` interaction values; row ``i`` sums to the Shapley value of ``i``.

    Raises:
        InvalidError: If ``M > 16``, or on malformed inputs or model outputs.
    """
    owner = "exact_interactions"
    chosen_link = check_link(link, owner)
    chunk = check_int(batch_size, "batch_size", owner)
    instances, prepared = check_background(X, background, weights, owner)
    n, n_features = instances.shape
    check_feature_count(n_features, owner)
    predictions, base = _endpoints(f, instances, prepared, chosen_link)
    result = np.empty((n, n_features, n_features, predictions.shape[1]))
    for rows, table in coalition_table(
        f,
        instances,
        prepared,
        link=chosen_link,
        batch_size=chunk,
        predictions=predictions,
        base=base,
    ):
        result[rows] = interactions_from_table(table)
    return result


def _endpoints(
    f: ModelFunction, instances: FloatArray, background: Background, link: Link
) -> tuple[FloatArray, FloatArray]:
    raw = call_model(f, instances)
    base = background.weights @ call_model(f, background.data, raw.shape[1])
    return apply_link(raw, link), apply_link(base, link)


def sampled_interactions(
    f: ModelFunction,
    X: npt.ArrayLike,  # noqa: N803 - scikit-learn's name for a data matrix
    background: npt.ArrayLike,
    *,
    n_samples: int | str = "auto",
    seed: int = 0,
    link: str = "identity",
    weights: npt.ArrayLike | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FloatArray:
    """Estimate Shapley interaction values by KernelSHAP on each feature's derivative game.

    Costs about ``2 * M * n_samples`` coalitions per instance (fewer after deduplication),
    each evaluated against every background row, plus up to ``M * n_samples`` per
    background row for the Shapley values on the diagonal.

    Args:
        f: Vectorised model, ``(n, M) -> (n, K)``.
        X: Rows to explain, ``(n, M)``.
        background: Background rows, ``(n_background, M)``.
        n_samples: Coalitions per derivative game (up to ``M`` times as many for the
            Shapley values); ``"auto"`` is ``2 * M + 512``. ``2^M - 2`` or more gives exact values.
        seed: Seed of the coalition sampling.
        link: ``"identity"`` or ``"logit"`` (applied to background-averaged outputs).
        weights: Weight per background row; uniform when None.
        batch_size: Model rows per call of ``f``.

    Returns:
        ``(n, M, M, K)`` interaction values; row ``i`` sums to the estimated Shapley value
        of ``i`` exactly, and the matrix to ``prediction - base``.

    Raises:
        InvalidError: On a bad parameter, malformed inputs or model outputs.
    """
    owner = "sampled_interactions"
    chosen_link = check_link(link, owner)
    chunk = check_int(batch_size, "batch_size", owner)
    rng_seed = check_int(seed, "seed", owner, minimum=0)
    instances, prepared = check_background(X, background, weights, owner)
    n, n_features = instances.shape
    requested = (
        2 * n_features + 512 if n_samples == "auto" else check_int(n_samples, "n_samples", owner)
    )
    # The diagonal (main effects) carries the Shapley values' error on top of the row's
    # interactions; M times the budget (half the cost of the M derivative games), up to
    # KernelSHAP's own default, keeps it in line with the off-diagonal error.
    shapley_budget = max(requested, min(n_features * requested, 2 * n_features + 2048))
    shapley = (
        KernelSHAP(shapley_budget, link=chosen_link, seed=rng_seed, batch_size=chunk)
        .explain(f, instances, prepared.data, prepared.weights)
        .values
    )
    off_diagonal = np.zeros((n, n_features, n_features, shapley.shape[2]))
    if n_features >= 2:
        budget = min(requested, 2 ** (n_features - 1) - 2)
        predictions, base = _endpoints(f, instances, prepared, chosen_link)
        game = _DerivativeGames(n_features, budget, np.random.default_rng(rng_seed))
        block = max(1, _VALUE_LIMIT // (game.masks.shape[0] * shapley.shape[2]))
        for start in range(0, n, block):
            rows = slice(start, min(start + block, n))
            values = apply_link(
                expected_outputs(
                    f,
                    instances[rows],
                    game.masks,
                    prepared,
                    batch_size=chunk,
                    n_outputs=shapley.shape[2],
                ),
                chosen_link,
            )
            off_diagonal[rows] = game.interactions(values, predictions[rows], base)
    return _with_main_effects(off_diagonal, shapley)


class _DerivativeGames:
    """The coalitions of all ``M`` derivative games, deduplicated, and their regression.

    Attributes:
        masks: The distinct coalitions of ``N`` whose values are needed, ``(U, M)``.
    """

    def __init__(self, n_features: int, budget: int, rng: np.random.Generator) -> None:
        self.n_features = n_features
        others = n_features - 1
        if others >= 2:
            plan = CoalitionPlan.for_budget(others, budget, paired=True)
            design = plan.designs([rng])
            self.solver: DesignSolver | None = DesignSolver.build(
                design, plan.selection(plan.units)
            )
            small = design[0, self.solver.selection.columns]
        else:
            self.solver = None
            small = np.zeros((0, 1), dtype=bool)
        rows = []
        for i in range(n_features):
            without = np.insert(small, i, False, axis=1)
            with_i = without.copy()
            with_i[:, i] = True
            rows.append((without, with_i))
        singles = np.eye(n_features, dtype=bool)
        leave_one_out = ~singles
        candidates = np.concatenate(
            [singles, leave_one_out, *[np.concatenate(pair) for pair in rows]]
        )
        self.masks, inverse = _distinct(candidates)
        count = small.shape[0]
        self.single = inverse[:n_features]
        self.leave_one_out = inverse[n_features : 2 * n_features]
        paired = inverse[2 * n_features :].reshape(n_features, 2, count)
        self.without, self.with_i = paired[:, 0], paired[:, 1]

    def interactions(
        self, values: FloatArray, predictions: FloatArray, base: FloatArray
    ) -> FloatArray:
        """Symmetrised off-diagonal interaction values (halves of the index).

        Args:
            values: ``v`` of :attr:`masks` per instance, ``(n, U, K)``.
            predictions: ``v(N)`` per instance, ``(n, K)``.
            base: ``v(empty)``, ``(K,)``.

        Returns:
            ``(n, M, M, K)`` with a zero diagonal.
        """
        n, _, n_outputs = values.shape
        m = self.n_features
        # u_i(S) = v(S + i) - v(S); its empty and full coalitions are known exactly.
        empty = values[:, self.single] - base[None, None, :]
        full = predictions[:, None, :] - values[:, self.leave_one_out]
        index = np.zeros((n, m, m, n_outputs))
        off = ~np.eye(m, dtype=bool)
        if self.solver is None:
            # Two features: the derivative game has one player, its value is the total.
            index[:, off] = (full - empty).reshape(n, m, n_outputs)
        else:
            gains = values[:, self.with_i] - values[:, self.without]
            targets = (gains - empty[:, :, None, :]).reshape(n * m, 1, -1, n_outputs)
            totals = (full - empty).reshape(n * m, 1, n_outputs)
            rows = self.solver.fit(targets, totals)[0].reshape(n, m, m - 1, n_outputs)
            index[:, off] = rows.reshape(n, m * (m - 1), n_outputs)
        return 0.25 * (index + index.transpose(0, 2, 1, 3))


def _distinct(masks: BoolArray) -> tuple[BoolArray, npt.NDArray[np.intp]]:
    packed = np.ascontiguousarray(np.packbits(masks, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return masks[first], np.asarray(inverse.ravel(), dtype=np.intp)
