"""Multiple-testing corrections across metrics and variants: Holm and Benjamini-Hochberg.

Both return adjusted p-values equal to statsmodels' ``multipletests(method="holm")`` and
``multipletests(method="fdr_bh")``: a hypothesis is rejected when its adjusted p-value is at
most alpha. Holm controls the family-wise error rate under any dependence; BH controls the
false discovery rate under independence or positive dependence, and rejects more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics.results import CorrectionMethod, CorrectionResult


def _as_p_values(p_values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(p_values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidError(
            "The 'p_values' parameter of adjust_p_values must be a 1-D sequence. "
            f"Got an array of shape {array.shape} instead.",
            field="p_values",
        )
    bad = ~((array >= 0.0) & (array <= 1.0))  # also catches NaN
    if np.any(bad):
        raise InvalidError(
            "The 'p_values' parameter of adjust_p_values must contain floats in [0, 1]. "
            f"Got {array[bad][0]!r} instead.",
            field="p_values",
        )
    return array


def holm(p_values: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values.

    The i-th smallest p-value is multiplied by ``m - i + 1``; a running maximum keeps the
    order, and values are capped at 1.

    Args:
        p_values: Raw p-values, in any order.

    Returns:
        Adjusted p-values, in the input order.
    """
    array = _as_p_values(p_values)
    m = array.size
    order = np.argsort(array, kind="stable")
    stepped = np.maximum.accumulate(array[order] * np.arange(m, 0, -1))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def benjamini_hochberg(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate).

    The i-th smallest p-value is multiplied by ``m / i``; a running minimum from the largest
    down keeps the order, and values are capped at 1.

    Args:
        p_values: Raw p-values, in any order.

    Returns:
        Adjusted p-values, in the input order.
    """
    array = _as_p_values(p_values)
    m = array.size
    order = np.argsort(array, kind="stable")
    scaled = array[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


_ADJUSTERS = {
    CorrectionMethod.HOLM: holm,
    CorrectionMethod.BENJAMINI_HOCHBERG: benjamini_hochberg,
}


def adjust_p_values(
    p_values: Sequence[float] | NDArray[np.float64],
    *,
    method: CorrectionMethod = CorrectionMethod.HOLM,
    alpha: float = 0.05,
) -> CorrectionResult:
    """Adjust a family of p-values and decide which hypotheses to reject.

    Args:
        p_values: Raw p-values (e.g. one per metric and variant); may be empty.
        method: Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).
        alpha: The error rate to control.

    Returns:
        Raw and adjusted p-values and rejections, in the input order.

    Raises:
        InvalidError: If a p-value is outside [0, 1] or NaN.
    """
    raw = _as_p_values(p_values)
    adjusted = _ADJUSTERS[method](raw)
    return CorrectionResult(
        method=method,
        alpha=alpha,
        p_values=tuple(float(p) for p in raw),
        adjusted=tuple(float(p) for p in adjusted),
        rejected=tuple(bool(p <= alpha) for p in adjusted),
    )
