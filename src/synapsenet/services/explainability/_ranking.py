"""Rank statistics over many importance vectors, computed without a loop over pairs.

Every function here takes a matrix of scores, one row per run (a bootstrap resample, a seed)
and one column per feature, and summarises how much the runs agree on the ordering.

Kendall's tau-b between two rows ``a`` and ``b`` equals the cosine similarity of their
pair-sign vectors ``s_a[p] = sign(a[i] - a[j])`` over all feature pairs ``p = (i, j)``,
``i < j``: the numerator ``s_a . s_b`` is concordant minus discordant pairs, and
``|s_a|^2`` is the number of pairs not tied in ``a``, exactly the terms of tau-b's
denominator. The mean over all pairs of rows of a cosine similarity needs only the sum of
the normalised vectors (``|sum u|^2 = sum |u|^2 + 2 sum_{a<b} u_a . u_b``), so the mean
pairwise tau of ``R`` runs costs ``O(R M^2)`` rather than ``O(R^2 M^2)``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]

_DEFAULT_CHUNK_BYTES: Final = 32 * 2**20


def abs_ranks(values: FloatArray) -> FloatArray:
    """Rank of ``|value|`` within each row: 1 for the smallest, ``M`` for the largest.

    Ties share the average of the ranks they span, so every row sums to ``M (M + 1) / 2``.

    Args:
        values: ``(n, M)`` attributions, one row per instance.

    Returns:
        ``(n, M)`` float ranks; higher means more important.
    """
    return np.asarray(rankdata(np.abs(values), axis=1), dtype=np.float64)


def _pair_signs(scores: FloatArray) -> FloatArray:
    """``sign(scores[:, i] - scores[:, j])`` for every feature pair ``i < j``."""
    upper_i, upper_j = np.triu_indices(scores.shape[1], k=1)
    return np.sign(scores[:, upper_i] - scores[:, upper_j])


def mean_pairwise_kendall_tau(
    scores: FloatArray, *, chunk_bytes: int = _DEFAULT_CHUNK_BYTES
) -> float:
    """Mean Kendall tau-b over every pair of rows of ``scores``.

    Equal to averaging ``scipy.stats.kendalltau(scores[a], scores[b])`` over all ``a < b``,
    except that a row whose scores are all tied (tau undefined) counts as tau 0 against every
    other row instead of NaN. With a single feature there is nothing to disagree on and the
    result is 1.

    Args:
        scores: ``(R, M)`` scores, one row per run, ``R >= 2``.
        chunk_bytes: Memory bound for the pair-sign block built at once.

    Returns:
        The mean pairwise tau-b, in [-1, 1].
    """
    n_runs, n_features = scores.shape
    if n_features < 2:
        return 1.0
    n_pairs = n_features * (n_features - 1) // 2
    rows_per_chunk = max(1, chunk_bytes // (8 * n_pairs))
    total = np.zeros(n_pairs)
    sum_of_squares = 0.0
    for start in range(0, n_runs, rows_per_chunk):
        signs = _pair_signs(scores[start : start + rows_per_chunk])
        norms = np.sqrt(np.einsum("rp,rp->r", signs, signs))
        unit = np.divide(signs, norms[:, None], out=np.zeros_like(signs), where=norms[:, None] > 0)
        total += unit.sum(axis=0)
        sum_of_squares += float(np.einsum("rp,rp->", unit, unit))
    cross = float(total @ total) - sum_of_squares
    return float(np.clip(cross / (n_runs * (n_runs - 1)), -1.0, 1.0))


def top_k_indicator(scores: FloatArray, k: int) -> FloatArray:
    """1.0 where a feature is among the ``k`` highest scores of its row, else 0.0.

    Ties at the boundary go to the feature that comes first, so every row has exactly ``k``
    ones.
    """
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    indicator = np.zeros_like(scores, dtype=np.float64)
    np.put_along_axis(indicator, order, 1.0, axis=1)
    return indicator


def mean_pairwise_top_k_overlap(scores: FloatArray, k: int) -> float:
    """Mean over every pair of rows of ``|top_k(a) & top_k(b)| / k``.

    Args:
        scores: ``(R, M)`` scores, one row per run, ``R >= 2``.
        k: Size of the top sets, ``1 <= k <= M``.

    Returns:
        The mean overlap fraction, in [0, 1].
    """
    n_runs = scores.shape[0]
    indicator = top_k_indicator(scores, k)
    total = indicator.sum(axis=0)
    # Each row contributes |row|^2 = k to |total|^2; the rest are cross terms, twice each.
    cross = float(total @ total) - n_runs * k
    return float(cross / (n_runs * (n_runs - 1) * k))


def adjust_p_values(p_values: FloatArray, correction: str) -> FloatArray:
    """Adjusted p-values for many simultaneous tests.

    Args:
        p_values: One p-value per test.
        correction: ``"holm"`` (Holm-Bonferroni step-down, controls the family-wise error
            rate) or ``"bh"`` (Benjamini-Hochberg step-up, controls the false discovery
            rate).

    Returns:
        Adjusted p-values in the input order, each in [0, 1]; a test is significant at
        level ``alpha`` when its adjusted p-value is at most ``alpha``.
    """
    m = p_values.size
    if m == 0:
        return p_values.copy()
    adjusted = np.empty(m)
    if correction == "holm":
        order = np.argsort(p_values, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
        adjusted[order] = np.minimum(stepped, 1.0)
        return adjusted
    order = np.argsort(-p_values, kind="stable")
    ranks = m - np.arange(m)
    stepped = np.minimum.accumulate(m / ranks * p_values[order])
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
