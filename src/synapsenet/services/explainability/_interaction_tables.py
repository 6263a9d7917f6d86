"""Path-dependent TreeSHAP interaction values by table look-up (values: :mod:`._path_tables`).

For one leaf with distinct path features ``U`` (``d`` of them), cover fractions ``z`` and
row bits ``o`` (see :mod:`._path_tables`), the value of a coalition ``S`` is
``v(S) = v * prod_{k in S} o_k * prod_{k in U - S} z_k``. shap's interaction value for
``i != j`` is half the Shapley interaction index,

    Phi_ij = 1/2 * sum_{S subset of N - {i, j}} w(|S|, M - 1) * D_ij(S),
    D_ij(S) = v(S + {i, j}) - v(S + {i}) - v(S + {j}) + v(S),

with ``w(s, n) = s! (n - 1 - s)! / n!`` (shap computes it as half the difference of
``i``'s Shapley values with ``j`` fixed present and fixed absent). Features off the path are
null players, which leave the index unchanged, so the sum runs over ``S`` in
``R = U - {i, j}`` with ``w(|S|, d - 1)``. For such ``S`` the four terms share the factor
``P(S) = prod_{k in S} o_k * prod_{k in R - S} z_k`` and

    D_ij(S) = v * (o_i - z_i) * (o_j - z_j) * P(S),

so ``Phi_ij = v/2 * (o_i - z_i) (o_j - z_j) * sum_{S subset of R, o_S = 1} w(|S|, d - 1)
prod_{k in R - S} z_k``. Like the values, it depends on the row only through the leaf's
``d`` bits: each leaf gets a table of its ``d (d - 1) / 2`` pair coefficients for each of
the ``2**d`` patterns. The diagonal is, as in shap, the SHAP value minus the row's
off-diagonal sum, so every row of the matrix adds up to the SHAP value.

Tables need ``8 * d (d - 1) / 2 * 2**d`` bytes per leaf; together with the value tables
(used for the diagonal) they must fit the caller's budget, else
:func:`compile_interaction_tables` returns None and the caller keeps another implementation.
Rows are explained in chunks that bound the look-ups and the ``(M, M, K)`` matrices built
at once to about :data:`._path_tables.CHUNK_ELEMENTS` elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
import scipy.sparse

from ._path_tables import CHUNK_ELEMENTS, PathTables, shapley_weights, subset_polynomials
from ._tree_arrays import IntArray
from .models import FloatArray


def _pair_tables(zeros: FloatArray) -> FloatArray:
    """Coefficients ``(L, 2**d, d (d - 1) / 2)`` for leaves of ``d >= 2`` path features.

    ``zeros`` is ``(L, d)``. Entry ``[l, q, p]`` is leaf ``l``'s interaction coefficient
    (per unit of leaf value) for its ``p``-th pair of path features ``(a, b)``, ``a < b``
    in :func:`itertools.combinations` order, when the row fails the features in bit set ``q``.
    """
    n_leaves, d = zeros.shape
    weights = shapley_weights(d - 1) / 2  # half the interaction index's weights
    ones = (2**d - 1) ^ np.arange(2**d)  # the satisfied bits of each failed-bits index
    pairs = list(combinations(range(d), 2))
    table = np.empty((n_leaves, 2**d, len(pairs)))
    for p, (a, b) in enumerate(pairs):
        outside_pair = (k for k in range(d) if k not in (a, b))
        sums = subset_polynomials(zeros, outside_pair) @ weights
        others = (
            (ones & ((1 << a) - 1))
            | (((ones >> (a + 1)) & ((1 << (b - a - 1)) - 1)) << a)
            | ((ones >> (b + 1)) << (b - 1))
        )
        factor_a = ((ones >> a) & 1)[None, :] - zeros[:, a, None]
        factor_b = ((ones >> b) & 1)[None, :] - zeros[:, b, None]
        table[:, :, p] = factor_a * factor_b * sums[:, others]
    return table


def _pair_counts(widths: IntArray) -> IntArray:
    return widths * (widths - 1) // 2


def interaction_table_bytes(values: PathTables) -> int:
    """Memory of the pair tables :func:`compile_interaction_tables` would build.

    Args:
        values: The value tables of the ensemble.

    Returns:
        Bytes: 8 per pair of distinct path features, pattern and leaf.
    """
    widths = values.leaf_width
    return int((_pair_counts(widths) * (2**widths)).sum()) * 8


@dataclass(frozen=True)
class InteractionTables:
    """Everything row-independent of tabulated TreeSHAP interaction values.

    Build it with :func:`compile_interaction_tables`; :meth:`interaction_values` explains rows.

    Attributes:
        values: The value tables (patterns and the diagonal's SHAP values come from them).
        table_bytes: Memory of the pair tables (the value tables' is ``values.table_bytes``).
    """

    values: PathTables
    table_bytes: int
    leaf_pairs: IntArray
    element_leaf: IntArray
    element_offset: IntArray
    table: FloatArray
    combine: scipy.sparse.csr_matrix

    def interaction_values(self, instances: FloatArray) -> FloatArray:
        """Path-dependent TreeSHAP interaction values of the trees' output.

        Args:
            instances: ``(n, M)`` float64 rows.

        Returns:
            ``(n, M, M, K)`` symmetric values: off the diagonal half the Shapley interaction
            index, on it the SHAP value minus the row's off-diagonal sum.
        """
        values = self.values
        n_features, n_outputs = values.n_features, values.n_outputs
        n_rows = instances.shape[0]
        out = np.empty((n_rows, n_features, n_features, n_outputs))
        # Per row: one look-up per (leaf, pair) element and the (M, M, K) matrix built.
        per_row = max(self.element_leaf.size, values.element_leaf.size, out[:1].size)
        step = max(1, CHUNK_ELEMENTS // max(1, per_row))
        diagonal = np.arange(n_features)
        for start in range(0, n_rows, step):
            failed = values.failed_bits(instances[start : start + step])
            scaled = failed.astype(np.intp) * self.leaf_pairs[:, None]
            index = scaled[self.element_leaf] + self.element_offset[:, None]
            upper = np.asarray(self.combine @ self.table[index]).reshape(
                n_features, n_features, n_outputs, -1
            )
            # Each pair was put above the diagonal once; mirror it below (the diagonal is 0).
            chunk = (upper + upper.transpose(1, 0, 2, 3)).transpose(3, 0, 1, 2)
            chunk[:, diagonal, diagonal] = values.values_of(failed) - chunk.sum(axis=2)
            out[start : start + step] = chunk
        return out


def compile_interaction_tables(values: PathTables, budget_bytes: int) -> InteractionTables | None:
    """Tabulate every leaf's pair coefficients, or None if that exceeds the budget.

    Args:
        values: The ensemble's value tables (:func:`._path_tables.compile_tables`).
        budget_bytes: The most memory the pair tables and ``values``' tables may take
            together.

    Returns:
        The tables, or None when ``values.table_bytes`` plus
        :func:`interaction_table_bytes` exceeds ``budget_bytes``.
    """
    if values.table_bytes + interaction_table_bytes(values) > budget_bytes:
        return None
    widths = values.leaf_width
    n_leaves = widths.size
    counts = _pair_counts(widths)
    sizes = counts * (2**widths)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    first = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)
    table = np.empty(int(sizes.sum()))
    for width in np.unique(widths[widths >= 2]):
        group = np.flatnonzero(widths == width)
        zeros = values.element_zero[first[group][:, None] + np.arange(width)]
        coefficients = _pair_tables(zeros).reshape(len(group), -1)
        table[offsets[group][:, None] + np.arange(coefficients.shape[1])] = coefficients
    # Elements: (leaf, pair) in combinations order, with the pair's two features.
    element_leaf = np.repeat(np.arange(n_leaves), counts)
    pair_a, pair_b = _pair_positions(widths)
    element_offset = offsets[element_leaf] + np.concatenate(
        [np.arange(count) for count in counts] or [np.empty(0, np.intp)]
    ).astype(np.intp)
    feature_a = values.element_feature[first[element_leaf] + pair_a]
    feature_b = values.element_feature[first[element_leaf] + pair_b]
    n_features, n_outputs = values.n_features, values.n_outputs
    low, high = np.minimum(feature_a, feature_b), np.maximum(feature_a, feature_b)
    rows = (((low * n_features + high) * n_outputs)[:, None] + np.arange(n_outputs)).ravel()
    cols = np.repeat(np.arange(element_leaf.size), n_outputs)
    data = values.leaf_values[element_leaf].ravel()
    keep = data != 0.0
    combine = scipy.sparse.csr_matrix(
        (data[keep], (rows[keep], cols[keep])),
        shape=(n_features * n_features * n_outputs, element_leaf.size),
    )
    combine.sum_duplicates()
    return InteractionTables(
        values=values,
        table_bytes=int(table.nbytes),
        leaf_pairs=counts.astype(np.intp),
        element_leaf=element_leaf,
        element_offset=element_offset,
        table=table,
        combine=combine,
    )


def _pair_positions(widths: IntArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Path positions ``(a, b)`` of every leaf's pairs, in combinations order, concatenated."""
    by_width = {
        int(width): np.array(list(combinations(range(int(width)), 2)), dtype=np.intp).reshape(-1, 2)
        for width in np.unique(widths)
    }
    positions = [by_width[int(width)] for width in widths]
    stacked = np.concatenate(positions) if positions else np.empty((0, 2), np.intp)
    return stacked[:, 0], stacked[:, 1]
