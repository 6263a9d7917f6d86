"""Path-dependent TreeSHAP by table look-up: row-independent work done once per model.

For one leaf, let ``U`` be the ``d`` distinct features split on along its root-to-leaf
path. Path-dependent TreeSHAP values the leaf, for a coalition ``S``, at
``v * prod_{j in S} o_j * prod_{j in U - S} z_j``, where ``z_j`` is the product of the cover
ratios of the splits on ``j`` (the share of training data that follows the path there,
the same for every row) and ``o_j`` is 1 if the row satisfies every split on ``j`` along the
path, else 0. Features off the path are dummies, so the leaf's Shapley value for ``i`` in
``U`` is

    v * (o_i - z_i) * sum_{S subset of U - {i}, o_S = 1} w(|S|, d) * prod_{j in U - S - {i}} z_j

with ``w(s, d) = s! (d - 1 - s)! / d!``. It depends on the row only through the ``d`` bits
``o``. So each leaf gets a table of its ``d`` coefficients for each of the ``2**d``
patterns, computed once (the idea of Yang's Fast TreeSHAP v2, 2021), and a row costs one
pass down every tree for its patterns, one look-up per path feature and a sum: ``O(L d)``
per tree instead of TreeSHAP's ``O(L D**2)``.

The patterns come level by level: a node's "failed" bits are its parent's plus the bit of
the parent's split feature if the row goes the other way, computed for all trees at once on
``(nodes, rows)`` arrays. Each leaf's table is stored by failed bits; leaf values stay out
of the tables (a sparse matrix from (leaf, feature) to (feature, output) applies them), so
multi-output trees share one table.

Tables need ``8 * d * 2**d`` bytes per leaf: :func:`compile_tables` returns None past
``budget_bytes``, and the caller keeps another implementation (deep trees).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import factorial, prod

import numpy as np
import numpy.typing as npt
import scipy.sparse

from ._tree_arrays import LIGHTGBM_ZERO, IntArray, SplitRule, TreeEnsemble
from .models import FloatArray

DEFAULT_BUDGET_BYTES = 256 * 2**20
"""Default cap on the tables' memory (256 MiB); larger ensembles are not tabulated."""

CHUNK_ELEMENTS = 2**21
"""Rows are explained in chunks of about this many (path feature x row) look-ups (16 MiB)."""

MAX_PATH_FEATURES = 16
"""The most distinct features on one path that a table is built for (2**16 patterns)."""


@dataclass(frozen=True)
class _Leaf:
    node: int
    features: tuple[int, ...]
    zeros: tuple[float, ...]
    value: FloatArray


@dataclass
class _Layout:
    """Nodes of every tree numbered level by level, and the leaves found on the way."""

    parents: list[list[int]]
    bits: list[list[int]]
    leaves: list[_Leaf]
    split_feature: list[int]
    threshold: list[float]
    default_left: list[bool]
    missing_zero: list[bool]
    nan_as_zero: list[bool]
    split_node: list[int]
    n_nodes: int = 0


def _walk(ensemble: TreeEnsemble) -> _Layout | None:
    """Lay out every tree breadth-first; None if a path is too long or a cover is zero."""
    layout = _Layout([], [], [], [], [], [], [], [], [])
    # Plain lists: indexing numpy arrays one node at a time costs several times more.
    trees = [
        (
            tree.left.tolist(),
            tree.right.tolist(),
            tree.feature.tolist(),
            tree.cover.tolist(),
            tree.threshold.tolist(),
            tree.default_left.tolist(),
            tree.missing_zero.tolist(),
            tree.nan_as_zero.tolist(),
        )
        for tree in ensemble.trees
    ]
    # Frontier entries: (tree, node, global id, path features, path zero fractions).
    frontier: list[tuple[int, int, int, tuple[int, ...], tuple[float, ...]]] = []
    for index in range(len(trees)):
        frontier.append((index, 0, layout.n_nodes, (), ()))
        layout.n_nodes += 1
    while frontier:
        parents: list[int] = []
        bits: list[int] = []
        following: list[tuple[int, int, int, tuple[int, ...], tuple[float, ...]]] = []
        for index, node, gid, features, zeros in frontier:
            left, right, feature_of, cover_of, threshold, default, zero, nan = trees[index]
            if left[node] < 0:
                layout.leaves.append(_Leaf(gid, features, zeros, ensemble.trees[index].value[node]))
                continue
            cover = cover_of[node]
            feature = feature_of[node]
            position = features.index(feature) if feature in features else len(features)
            if position >= MAX_PATH_FEATURES or not cover > 0.0:
                return None
            parents.append(len(layout.split_feature))
            bits.append(1 << position)
            layout.split_feature.append(feature)
            layout.threshold.append(threshold[node])
            layout.default_left.append(default[node])
            layout.missing_zero.append(zero[node])
            layout.nan_as_zero.append(nan[node])
            layout.split_node.append(gid)
            for child in (left[node], right[node]):
                ratio = cover_of[child] / cover
                if position < len(features):
                    path = features
                    fractions = (*zeros[:position], zeros[position] * ratio, *zeros[position + 1 :])
                else:
                    path, fractions = (*features, feature), (*zeros, ratio)
                following.append((index, child, layout.n_nodes, path, fractions))
                layout.n_nodes += 1
        if parents:
            layout.parents.append(parents)
            layout.bits.append(bits)
        frontier = following
    return layout


def shapley_weights(d: int) -> FloatArray:
    """The Shapley weights ``w(s, d) = s! (d - 1 - s)! / d!`` for ``s = 0 .. d - 1``."""
    return np.array([factorial(s) * factorial(d - 1 - s) / factorial(d) for s in range(d)])


def subset_polynomials(zeros: FloatArray, others: Iterable[int]) -> FloatArray:
    """Zero-fraction products over the coalitions of ``others``, by satisfied subset and size.

    ``zeros`` is ``(L, d)``. Entry ``[l, r, s]`` is, for leaf ``l`` and the subset ``r`` of
    ``others`` a row satisfies (bit ``j`` of ``r`` for the ``j``-th of ``others``), the sum
    over coalitions ``S`` within ``r`` with ``|S| = s`` of ``prod z_k`` over the others
    outside ``S``. Shape ``(L, 2**m, m + 1)`` for ``m`` others.
    """
    features = list(others)
    poly = np.zeros((zeros.shape[0], 1, len(features) + 1))
    poly[:, 0, 0] = 1.0
    for k in features:
        outside = poly * zeros[:, k, None, None]
        inside = outside.copy()
        inside[:, :, 1:] += poly[:, :, :-1]
        poly = np.concatenate([outside, inside], axis=1)
    return poly


def _leaf_tables(zeros: FloatArray) -> FloatArray:
    """Coefficients ``(L, 2**d, d)`` for leaves of ``d`` path features, by failed bits.

    ``zeros`` is ``(L, d)``. Entry ``[l, q, i]`` is leaf ``l``'s Shapley coefficient for
    its ``i``-th path feature when the row fails the features in bit set ``q``.
    """
    n_leaves, d = zeros.shape
    weights = shapley_weights(d)
    patterns = np.arange(2**d)
    ones = (2**d - 1) ^ patterns  # the satisfied bits of each failed-bits index
    table = np.empty((n_leaves, 2**d, d))
    for i in range(d):
        sums = subset_polynomials(zeros, (k for k in range(d) if k != i)) @ weights
        low = ones & ((1 << i) - 1)
        others = low | ((ones >> (i + 1)) << i)
        satisfied = ((ones >> i) & 1).astype(np.float64)
        table[:, :, i] = (satisfied[None, :] - zeros[:, i, None]) * sums[:, others]
    return table


@dataclass(frozen=True)
class _Splits:
    """Every internal node of the ensemble, in level order, as arrays."""

    feature: IntArray
    threshold: FloatArray
    default_left: npt.NDArray[np.bool_]
    missing_zero: npt.NDArray[np.bool_] | None
    nan_as_zero: npt.NDArray[np.bool_] | None
    node: IntArray


@dataclass(frozen=True)
class PathTables:
    """Everything row-independent of the tabulated TreeSHAP for one ensemble.

    Build it with :func:`compile_tables`; :meth:`shap_values` explains rows.

    Attributes:
        n_features: Number of input features ``M``.
        n_outputs: Number of outputs ``K``.
        expected_value: ``(K,)`` base value: the ensemble's cover-weighted mean output.
        table_bytes: Memory of the coefficient tables.
    """

    n_features: int
    n_outputs: int
    expected_value: FloatArray
    table_bytes: int
    split_rule: SplitRule
    float32: bool
    base: FloatArray
    n_roots: int
    n_nodes: int
    splits: _Splits
    level_splits: tuple[IntArray, ...]
    level_bits: tuple[npt.NDArray[np.int32], ...]
    leaf_nodes: IntArray
    leaf_width: IntArray
    leaf_values: FloatArray
    element_leaf: IntArray
    element_offset: IntArray
    element_feature: IntArray
    element_zero: FloatArray
    table: FloatArray
    combine: scipy.sparse.csr_matrix

    def _goes_left(self, chunk: FloatArray) -> npt.NDArray[np.bool_]:
        """``(splits, rows)``: whether each row goes left at each split."""
        splits = self.splits
        # Rounded to float32 as the library does; a float32 threshold is exact in float64.
        data = chunk.T.astype(np.float32) if self.float32 else chunk.T
        values = data[splits.feature]
        missing = np.isnan(values)
        if splits.nan_as_zero is not None and splits.missing_zero is not None:
            # LightGBM: NaN reads as 0.0 unless the split's missing type is NaN; zero is
            # missing on zero-as-missing splits.
            nan_as_zero = splits.nan_as_zero[:, None]
            values = np.where(missing & nan_as_zero, 0.0, values)
            missing = (missing & ~nan_as_zero) | (
                (np.abs(values) <= LIGHTGBM_ZERO) & splits.missing_zero[:, None]
            )
        threshold = splits.threshold[:, None]
        goes_left = values < threshold if self.split_rule == "lt" else values <= threshold
        if missing.any():
            goes_left = np.where(missing, splits.default_left[:, None], goes_left)
        return goes_left

    def failed_bits(self, chunk: FloatArray) -> npt.NDArray[np.int32]:
        """``(leaves, rows)``: the path features each row fails, as bits, per leaf.

        Bit ``t`` of a leaf's entry stands for its ``t``-th distinct path feature (in path
        order); leaves without any failed bit are the ones the row reaches.
        """
        goes_left = self._goes_left(chunk)
        failed = np.zeros((self.n_nodes, chunk.shape[0]), dtype=np.int32)
        start = self.n_roots
        for splits, bits in zip(self.level_splits, self.level_bits, strict=True):
            count = splits.size
            right = goes_left[splits].astype(np.int32) * bits[:, None]
            parent = failed[self.splits.node[splits]]
            # Children of a level's splits are numbered in pairs (left, right), in order.
            children = failed[start : start + 2 * count].reshape(count, 2, -1)
            children[:, 0] = parent | (bits[:, None] - right)
            children[:, 1] = parent | right
            start += 2 * count
        return failed[self.leaf_nodes]

    def shap_values(self, instances: FloatArray) -> FloatArray:
        """Path-dependent SHAP values of the trees' output.

        Args:
            instances: ``(n, M)`` float64 rows.

        Returns:
            ``(n, M, K)`` values; with :attr:`expected_value` they add up to the output.
        """
        n_rows = instances.shape[0]
        out = np.empty((n_rows, self.n_features, self.n_outputs))
        step = max(1, CHUNK_ELEMENTS // max(1, self.element_leaf.size))
        for start in range(0, n_rows, step):
            out[start : start + step] = self.values_of(
                self.failed_bits(instances[start : start + step])
            )
        return out

    def values_of(self, failed: npt.NDArray[np.int32]) -> FloatArray:
        """``(rows, M, K)`` SHAP values of rows given by their :meth:`failed_bits`."""
        scaled = failed.astype(np.intp) * self.leaf_width[:, None]
        index = scaled[self.element_leaf] + self.element_offset[:, None]
        combined = np.asarray(self.combine @ self.table[index])
        return combined.reshape(self.n_features, self.n_outputs, -1).transpose(2, 0, 1)

    def predict(self, instances: FloatArray) -> FloatArray:
        """The ensemble's output from the leaves each row reaches (those with no failed bit).

        Args:
            instances: ``(n, M)`` float64 rows.

        Returns:
            ``(n, K)`` outputs, base included.
        """
        reached = (self.failed_bits(instances) == 0).astype(np.float64)
        return np.asarray(reached.T @ self.leaf_values) + self.base


def compile_tables(
    ensemble: TreeEnsemble, budget_bytes: int = DEFAULT_BUDGET_BYTES
) -> PathTables | None:
    """Tabulate every leaf of ``ensemble``, or None if that needs more than the budget.

    Args:
        ensemble: The trees (see :mod:`._tree_arrays`).
        budget_bytes: The most memory the coefficient tables may take.

    Returns:
        The tables, or None when they would exceed ``budget_bytes``, a path has more than
        :data:`MAX_PATH_FEATURES` distinct features, or a split has zero cover.
    """
    layout = _walk(ensemble)
    if layout is None:
        return None
    widths = np.array([len(leaf.features) for leaf in layout.leaves], dtype=np.intp)
    sizes = widths * (2**widths)
    if int(sizes.sum()) * 8 > budget_bytes:
        return None
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    table = np.empty(int(sizes.sum()))
    for width in np.unique(widths):
        group = np.flatnonzero(widths == width)
        if width == 0:
            continue
        zeros = np.array([layout.leaves[g].zeros for g in group])
        coefficients = _leaf_tables(zeros).reshape(len(group), -1)
        span = coefficients.shape[1]
        positions = offsets[group][:, None] + np.arange(span)
        table[positions] = coefficients
    values = np.array([leaf.value for leaf in layout.leaves]).reshape(len(layout.leaves), -1)
    n_outputs = ensemble.n_outputs
    element_leaf = np.repeat(np.arange(len(layout.leaves)), widths)
    element_position = np.concatenate(
        [np.arange(width) for width in widths] or [np.empty(0, np.intp)]
    ).astype(np.intp)
    element_feature = np.array(
        [feature for leaf in layout.leaves for feature in leaf.features], dtype=np.intp
    )
    # Combine (feature, output) <- element: the leaf's value for that output.
    rows = (element_feature[:, None] * n_outputs + np.arange(n_outputs)).ravel()
    cols = np.repeat(np.arange(element_leaf.size), n_outputs)
    data = values[element_leaf].ravel()
    keep = data != 0.0
    combine = scipy.sparse.csr_matrix(
        (data[keep], (rows[keep], cols[keep])),
        shape=(ensemble.n_features * n_outputs, element_leaf.size),
    )
    combine.sum_duplicates()
    products = np.array([prod(leaf.zeros) for leaf in layout.leaves])
    has_lightgbm_rules = any(
        bool(tree.missing_zero.any() or tree.nan_as_zero.any()) for tree in ensemble.trees
    )
    splits = _Splits(
        feature=np.array(layout.split_feature, dtype=np.intp),
        threshold=np.array(layout.threshold, dtype=np.float64),
        default_left=np.array(layout.default_left, dtype=np.bool_),
        missing_zero=np.array(layout.missing_zero, np.bool_) if has_lightgbm_rules else None,
        nan_as_zero=np.array(layout.nan_as_zero, np.bool_) if has_lightgbm_rules else None,
        node=np.array(layout.split_node, dtype=np.intp),
    )
    return PathTables(
        n_features=ensemble.n_features,
        n_outputs=n_outputs,
        expected_value=products @ values + ensemble.base,
        table_bytes=int(table.nbytes),
        split_rule=ensemble.split_rule,
        float32=ensemble.float32,
        base=ensemble.base,
        n_roots=len(ensemble.trees),
        n_nodes=layout.n_nodes,
        splits=splits,
        level_splits=tuple(np.array(level, dtype=np.intp) for level in layout.parents),
        level_bits=tuple(np.array(level, dtype=np.int32) for level in layout.bits),
        leaf_nodes=np.array([leaf.node for leaf in layout.leaves], dtype=np.intp),
        leaf_width=widths,
        leaf_values=values,
        element_leaf=element_leaf,
        element_offset=offsets[element_leaf] + element_position,
        element_feature=element_feature,
        element_zero=np.array([zero for leaf in layout.leaves for zero in leaf.zeros]),
        table=table,
        combine=combine,
    )
