"""Sufficient statistics of one arm of an experiment.

Every test in this package needs only counts, sums and sums of squares (and cross-products
for CUPED), so metric collection stores these and analysis never sees raw rows. The
dataclasses are frozen, pool with ``+`` (adding a batch, or merging shards, is addition)
and expose derived values as properties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synapsenet.errors import InvalidError

# Sums of many floats carry rounding error of order n * eps relative to their size, so the
# identity sum_squares >= sum**2 / n can fail by that much on perfectly good data.
_RELATIVE_TOLERANCE = 1e-7


def _check_moments(
    owner: str, n: int, total: float, total_squares: float, names: tuple[str, str]
) -> None:
    """Reject moments that no real sample could have produced (beyond rounding error)."""
    for name, value in zip(names, (total, total_squares), strict=True):
        if not math.isfinite(value):
            raise InvalidError(
                f"The '{name}' field of {owner} must be finite. Got {value!r} instead.",
                field=name,
            )
    if n == 0:
        if total != 0.0 or total_squares != 0.0:
            raise InvalidError(
                f"{owner} with n=0 must have {names[0]}=0 and {names[1]}=0. "
                f"Got {total!r} and {total_squares!r} instead.",
                field=names[1],
            )
        return
    floor = total * total / n
    if total_squares < floor - _RELATIVE_TOLERANCE * max(abs(total_squares), floor, 1.0):
        raise InvalidError(
            f"The '{names[1]}' field of {owner} must be at least {names[0]}**2 / n "
            f"(= {floor!r}) for n={n}. Got {total_squares!r} instead.",
            field=names[1],
        )


def _check_n(owner: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidError(
            f"The 'n' field of {owner} must be an int >= 0. Got {n!r} instead.", field="n"
        )
    return int(n)


def _as_vector(values: ArrayLike, name: str, owner: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must be a 1-D array. "
            f"Got an array of shape {array.shape} instead.",
            field=name,
        )
    if not np.all(np.isfinite(array)):
        raise InvalidError(
            f"The '{name}' parameter of {owner} must contain only finite values.", field=name
        )
    return array


@dataclass(frozen=True, slots=True)
class SampleStats:
    """Count, sum and sum of squares of one arm's outcomes.

    Works for continuous outcomes and for binary ones: with 0/1 values ``sum`` is the
    number of successes and ``sum_squares == sum``.

    Attributes:
        n: Number of units.
        sum: Sum of the outcomes.
        sum_squares: Sum of the squared outcomes.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = _check_n("SampleStats", self.n)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", float(self.sum))
        object.__setattr__(self, "sum_squares", float(self.sum_squares))
        _check_moments("SampleStats", n, self.sum, self.sum_squares, ("sum", "sum_squares"))

    @classmethod
    def from_values(cls, values: ArrayLike) -> Self:
        """Summarise raw outcomes.

        Args:
            values: One-dimensional array of finite outcomes.

        Returns:
            The sufficient statistics of ``values``.

        Raises:
            InvalidError: If ``values`` is not 1-D or holds NaN or infinity.
        """
        array = _as_vector(values, "values", "SampleStats.from_values")
        return cls(array.size, float(array.sum()), float(np.dot(array, array)))

    @classmethod
    def from_successes(cls, n: int, successes: int) -> Self:
        """Summarise a binary outcome from its number of successes.

        Args:
            n: Number of units.
            successes: Number of units whose outcome is 1.

        Returns:
            The sufficient statistics of ``successes`` ones and ``n - successes`` zeros.

        Raises:
            InvalidError: If ``successes`` is not between 0 and ``n``.
        """
        if not 0 <= successes <= n:
            raise InvalidError(
                "The 'successes' parameter of SampleStats.from_successes must be an int in "
                f"[0, n={n}]. Got {successes!r} instead.",
                field="successes",
            )
        return cls(n, float(successes), float(successes))

    def __add__(self, other: SampleStats) -> SampleStats:
        """Pool two samples (a new batch, or another shard of the same arm)."""
        if not isinstance(other, SampleStats):
            return NotImplemented
        return SampleStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    @property
    def mean(self) -> float:
        """Sample mean; 0.0 for an empty sample (callers check ``n`` first)."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (denominator n - 1); 0.0 when n < 2."""
        if self.n < 2:
            return 0.0
        # Rounding can push the centred sum of squares a hair below zero for constant data.
        return max(self.sum_squares - self.sum * self.sum / self.n, 0.0) / (self.n - 1)

    @property
    def std(self) -> float:
        """Unbiased sample standard deviation; 0.0 when n < 2."""
        return math.sqrt(self.variance)

    @property
    def standard_error(self) -> float:
        """Standard error of the mean; 0.0 when n < 2."""
        return math.sqrt(self.variance / self.n) if self.n >= 2 else 0.0

    @property
    def is_binary(self) -> bool:
        """Whether these statistics can come from 0/1 outcomes (``sum == sum_squares``)."""
        return (
            0.0 <= self.sum <= self.n
            and abs(self.sum - self.sum_squares) <= 1e-9 * max(1.0, self.sum)
            and abs(self.sum - round(self.sum)) <= 1e-6
        )


@dataclass(frozen=True, slots=True)
class CovariateStats:
    """Sufficient statistics of an outcome ``y`` and its pre-period covariate ``x``.

    Everything CUPED needs: the moments of each variable and their cross-product.

    Attributes:
        n: Number of units (each has both ``y`` and ``x``).
        sum_y: Sum of the outcomes.
        sum_y2: Sum of the squared outcomes.
        sum_x: Sum of the covariate.
        sum_x2: Sum of the squared covariate.
        sum_xy: Sum of the products ``x * y``.
    """

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float
    sum_x2: float
    sum_xy: float

    def __post_init__(self) -> None:
        n = _check_n("CovariateStats", self.n)
        object.__setattr__(self, "n", n)
        for name in ("sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        _check_moments("CovariateStats", n, self.sum_y, self.sum_y2, ("sum_y", "sum_y2"))
        _check_moments("CovariateStats", n, self.sum_x, self.sum_x2, ("sum_x", "sum_x2"))
        if not math.isfinite(self.sum_xy) or (n == 0 and self.sum_xy != 0.0):
            raise InvalidError(
                "The 'sum_xy' field of CovariateStats must be finite (and 0 when n=0). "
                f"Got {self.sum_xy!r} instead.",
                field="sum_xy",
            )

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike) -> Self:
        """Summarise paired outcomes and covariates.

        Args:
            y: One-dimensional array of outcomes.
            x: One-dimensional array of pre-period covariates, aligned with ``y``.

        Returns:
            The sufficient statistics of the pairs.

        Raises:
            InvalidError: If the arrays are not 1-D, differ in length or hold non-finite values.
        """
        ys = _as_vector(y, "y", "CovariateStats.from_values")
        xs = _as_vector(x, "x", "CovariateStats.from_values")
        if ys.size != xs.size:
            raise InvalidError(
                "The 'x' parameter of CovariateStats.from_values must have the same length "
                f"as 'y' ({ys.size}). Got length {xs.size} instead.",
                field="x",
            )
        return cls(
            ys.size,
            float(ys.sum()),
            float(np.dot(ys, ys)),
            float(xs.sum()),
            float(np.dot(xs, xs)),
            float(np.dot(xs, ys)),
        )

    def __add__(self, other: CovariateStats) -> CovariateStats:
        """Pool two samples of the same arm."""
        if not isinstance(other, CovariateStats):
            return NotImplemented
        return CovariateStats(
            self.n + other.n,
            self.sum_y + other.sum_y,
            self.sum_y2 + other.sum_y2,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_xy + other.sum_xy,
        )

    @property
    def outcome(self) -> SampleStats:
        """The outcome's own sufficient statistics."""
        return SampleStats(self.n, self.sum_y, self.sum_y2)

    @property
    def covariate(self) -> SampleStats:
        """The covariate's own sufficient statistics."""
        return SampleStats(self.n, self.sum_x, self.sum_x2)

    @property
    def centred_cross_product(self) -> float:
        """Sum of ``(x - mean x) * (y - mean y)``; 0.0 for an empty sample."""
        return self.sum_xy - self.sum_x * self.sum_y / self.n if self.n else 0.0

    @property
    def covariance(self) -> float:
        """Unbiased sample covariance of ``x`` and ``y``; 0.0 when n < 2."""
        return self.centred_cross_product / (self.n - 1) if self.n >= 2 else 0.0
