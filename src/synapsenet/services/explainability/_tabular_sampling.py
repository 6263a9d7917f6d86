"""LIME's perturbation distribution for tabular data: training statistics and sampling.

:class:`TabularStatistics` holds what lime keeps of the training data, as per-feature
tables padded to a common number of levels so that sampling is a handful of array
operations over all samples and features at once. :func:`draw` maps uniforms to samples
through each feature's inverse CDF: one uniform coordinate per feature picks the bin (bins
laid end to end with widths equal to their frequencies) and, by where it falls inside the
bin's interval, the quantile of the value drawn from the bin's truncated normal. Fed with
randomised Sobol' points (:func:`._surrogate.uniform_points`) this gives lime's distribution
with far less seed-to-seed variation than independent draws.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from .models import FloatArray

IntArray = npt.NDArray[np.intp]
LevelArray = npt.NDArray[np.signedinteger[Any]]

PERCENTILES: Final[dict[str, tuple[float, ...]]] = {
    "quartile": (25.0, 50.0, 75.0),
    "decile": (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0),
}

CONTINUOUS: Final = 0
DISCRETIZED: Final = 1
CATEGORICAL: Final = 2

_BIN_STD_FLOOR: Final = 1e-11
"""Added to every bin's standard deviation, as lime does, so single-valued bins work."""

_UNIFORM_EPS: Final = 1e-12
"""Uniforms are kept in [eps, 1 - eps] so the normal quantile stays finite."""


@dataclass(frozen=True)
class TabularStatistics:
    """What LIME keeps of the training data, as per-feature tables padded to ``L`` levels.

    A level is a bin of a discretised feature or a category of a categorical one; padded
    levels have frequency 0 and are never drawn.

    Attributes:
        kinds: ``(M,)`` ``CONTINUOUS``, ``DISCRETIZED`` or ``CATEGORICAL`` per feature.
        means: ``(M,)`` training means.
        stds: ``(M,)`` training standard deviations (``ddof=0``; 1 where constant).
        n_levels: ``(M,)`` levels per feature (0 for continuous features).
        frequencies: ``(M, L)`` share of the training rows in each level.
        cumulative: ``(M, L + 1)`` running sums of the frequencies, from 0 to exactly 1.
        thresholds: ``(M, L - 1)`` bin edges of discretised features, padded with +inf.
        categories: ``(M, L)`` category values of categorical features.
        bin_mean: ``(M, L)`` mean of the training values in each bin.
        bin_std: ``(M, L)`` their standard deviation (plus lime's 1e-11).
        bin_low: ``(M, L)`` lower bound of each bin (the training minimum for the first).
        bin_high: ``(M, L)`` upper bound of each bin (the training maximum for the last).
        quantile_slope: ``(M, L)`` and
        quantile_offset: ``(M, L)`` map a uniform ``u`` that falls in a bin's interval of
            ``cumulative`` to the normal CDF level of the value drawn for it,
            ``offset + slope * u``, which runs from ``Phi(a)`` to ``Phi(b)`` for the bin's
            standardised bounds ``a`` and ``b`` (inverse-CDF sampling of lime's truncated
            normal, :func:`_fill_discrete`).
    """

    kinds: npt.NDArray[np.int8]
    means: FloatArray
    stds: FloatArray
    n_levels: IntArray
    frequencies: FloatArray
    cumulative: FloatArray
    thresholds: FloatArray
    categories: FloatArray
    bin_mean: FloatArray
    bin_std: FloatArray
    bin_low: FloatArray
    bin_high: FloatArray
    quantile_slope: FloatArray
    quantile_offset: FloatArray

    @classmethod
    def fit(
        cls, data: FloatArray, categorical: Collection[int], percentiles: Sequence[float] | None
    ) -> TabularStatistics:
        """Compute the statistics lime's explainer computes from its training data.

        Args:
            data: ``(n, M)`` training rows, finite.
            categorical: Indices of categorical features.
            percentiles: Bin edges as percentiles (quartiles, deciles), or None to keep
                continuous features continuous.
        """
        n_total = data.shape[1]
        kinds = np.full(n_total, CONTINUOUS, dtype=np.int8)
        if percentiles is not None:
            kinds[:] = DISCRETIZED
        kinds[list(categorical)] = CATEGORICAL
        stds = data.std(axis=0)
        stds[stds == 0.0] = 1.0
        tables = [_feature_table(data[:, j], int(kinds[j]), percentiles) for j in range(n_total)]
        width = max([1, *(len(table.frequencies) for table in tables)])

        def padded(field: str, fill: float, size: int = width) -> FloatArray:
            out = np.full((n_total, size), fill)
            for j, table in enumerate(tables):
                values = getattr(table, field)
                out[j, : len(values)] = values
            return out

        n_levels = np.array([len(table.frequencies) for table in tables], dtype=np.intp)
        frequencies = padded("frequencies", 0.0)
        cumulative = np.zeros((n_total, width + 1))
        cumulative[:, 1:] = np.cumsum(frequencies, axis=1)
        for j, count in enumerate(n_levels):
            cumulative[j, count:] = 1.0  # exactly 1: no draw may land in a padded level
        bin_mean, bin_std = padded("bin_mean", 0.0), padded("bin_std", 1.0)
        bin_low, bin_high = padded("bin_low", 0.0), padded("bin_high", 0.0)
        cdf_low = ndtr((bin_low - bin_mean) / bin_std)
        cdf_high = ndtr((bin_high - bin_mean) / bin_std)
        slope = np.divide(
            cdf_high - cdf_low, frequencies, out=np.zeros_like(frequencies), where=frequencies > 0
        )
        return cls(
            kinds=kinds,
            means=data.mean(axis=0),
            stds=stds,
            n_levels=n_levels,
            frequencies=frequencies,
            cumulative=cumulative,
            thresholds=padded("thresholds", np.inf, max(width - 1, 1)),
            categories=padded("categories", np.nan),
            bin_mean=bin_mean,
            bin_std=bin_std,
            bin_low=bin_low,
            bin_high=bin_high,
            quantile_slope=slope,
            quantile_offset=cdf_low - cumulative[:, :-1] * slope,
        )

    def levels_of(self, row: FloatArray) -> IntArray:
        """The instance's level per feature: its bin, its category's index (-1 if unseen)."""
        bins = (self.thresholds < row[:, None]).sum(axis=1)
        matches = self.categories == row[:, None]
        category = np.where(matches.any(axis=1), matches.argmax(axis=1), -1)
        level = np.where(self.kinds == CATEGORICAL, category, bins)
        return np.asarray(np.where(self.kinds == CONTINUOUS, 0, level), dtype=np.intp)


@dataclass(frozen=True)
class _FeatureTable:
    frequencies: FloatArray
    thresholds: FloatArray
    categories: FloatArray
    bin_mean: FloatArray
    bin_std: FloatArray
    bin_low: FloatArray
    bin_high: FloatArray


_EMPTY: Final = np.empty(0)


def _feature_table(
    column: FloatArray, kind: int, percentiles: Sequence[float] | None
) -> _FeatureTable:
    if kind == CONTINUOUS:
        return _FeatureTable(_EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY)
    if kind == CATEGORICAL:
        categories, counts = np.unique(column, return_counts=True)
        return _FeatureTable(
            counts / column.size, _EMPTY, categories, _EMPTY, _EMPTY, _EMPTY, _EMPTY
        )
    assert percentiles is not None
    edges = np.unique(np.percentile(column, percentiles))
    bins = np.searchsorted(edges, column)
    n_bins = edges.size + 1
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    sums = np.bincount(bins, weights=column, minlength=n_bins)
    mean = np.divide(sums, counts, out=np.zeros(n_bins), where=counts > 0)
    squares = np.bincount(bins, weights=(column - mean[bins]) ** 2, minlength=n_bins)
    std = np.sqrt(np.divide(squares, counts, out=np.zeros(n_bins), where=counts > 0))
    return _FeatureTable(
        frequencies=counts / column.size,
        thresholds=edges,
        categories=_EMPTY,
        bin_mean=mean,
        bin_std=std + _BIN_STD_FLOOR,
        bin_low=np.concatenate([[column.min()], edges]),
        bin_high=np.concatenate([edges, [column.max()]]),
    )


@dataclass(frozen=True)
class Neighbourhood:
    """Perturbed samples (without the instance): model inputs and what the representation needs.

    Attributes:
        values: ``(N, M)`` model inputs.
        levels: ``(N, M)`` bin or category drawn (0 for continuous features), in the
            smallest integer type that holds them.
        standardised: ``(N, n_continuous)`` standard normal draws of the continuous features.
    """

    values: FloatArray
    levels: LevelArray
    standardised: FloatArray


def draw(stats: TabularStatistics, uniforms: FloatArray) -> Neighbourhood:
    """Map uniforms to samples through each feature's inverse CDF (``uniforms`` is reused).

    Temporaries are few and reused (``out=``): at 5,000 x 20 every fresh array is a fresh
    mapping of memory the kernel must fault in, which costs more than the arithmetic.
    """
    u = np.clip(uniforms, _UNIFORM_EPS, 1.0 - _UNIFORM_EPS, out=uniforms)
    values = np.empty_like(u)
    continuous = np.flatnonzero(stats.kinds == CONTINUOUS)
    discrete = np.flatnonzero(stats.kinds != CONTINUOUS)
    standardised = ndtri(u[:, continuous])
    if continuous.size:
        values[:, continuous] = stats.means[continuous] + stats.stds[continuous] * standardised
    level_type = _level_type(stats.frequencies.shape[1])
    if discrete.size == u.shape[1]:
        levels = _levels(stats.cumulative, u, level_type)
        _fill_discrete(stats, u, levels, values, discrete)
    else:
        levels = np.zeros(u.shape, dtype=level_type)
        if discrete.size:
            part = u[:, discrete]
            levels[:, discrete] = _levels(stats.cumulative[discrete], part, level_type)
            _fill_discrete(stats, part, levels[:, discrete], values, discrete)
    return Neighbourhood(values, levels, standardised)


def _level_type(width: int) -> type[np.signedinteger[Any]]:
    """The smallest integer type that holds every level index."""
    if width <= np.iinfo(np.int8).max:
        return np.int8
    if width <= np.iinfo(np.int16).max:
        return np.int16
    return np.int32


def _levels(
    cumulative: FloatArray, u: FloatArray, level_type: type[np.signedinteger[Any]]
) -> LevelArray:
    """Level of each uniform: how many interior cumulative edges of its feature are <= it."""
    n_features, width = cumulative.shape[0], cumulative.shape[1] - 2
    level = np.zeros(u.shape, dtype=level_type)
    if width == 0:
        return level
    edges = cumulative[:, 1:-1]
    if width <= _COMPARE_LEVELS:
        for edge in edges.T:
            level += u >= edge
        return level
    # Many levels (categories): one searchsorted for all features, feature j's edges (all
    # in [0, 1]) shifted by 2j so the flattened table stays sorted.
    offsets = 2.0 * np.arange(n_features)
    found = np.searchsorted((edges + offsets[:, None]).ravel(), u + offsets, side="right")
    level[...] = found - np.arange(n_features) * width
    return level


_COMPARE_LEVELS: Final = 16
"""Up to this many edges per feature, levels are found by comparison rather than search."""


def _fill_discrete(
    stats: TabularStatistics,
    u: FloatArray,
    level: LevelArray,
    values: FloatArray,
    discrete: IntArray,
) -> None:
    """Fill ``values`` for the ``discrete`` columns; ``u`` and ``level`` hold only those."""
    flat = level.astype(np.intp)
    flat += stats.frequencies.shape[1] * discrete
    categorical = stats.kinds[discrete] == CATEGORICAL
    if categorical.any():
        values[:, discrete[categorical]] = stats.categories.take(flat[:, categorical])
    if categorical.all():
        return
    binned = ~categorical
    every = bool(binned.all())
    if not every:
        flat, u = flat[:, binned], u[:, binned]
    # Where the uniform falls inside its bin's interval is itself uniform and independent of
    # the bin, so it serves as the quantile of the value drawn from the bin's truncated
    # normal: one coordinate decides both, and the inverse CDF stays monotone in it.
    drawn = stats.quantile_slope.take(flat)
    drawn *= u
    scratch = stats.quantile_offset.take(flat)
    drawn += scratch
    np.clip(drawn, _UNIFORM_EPS, 1.0 - _UNIFORM_EPS, out=drawn)
    ndtri(drawn, out=drawn)
    drawn *= stats.bin_std.take(flat, out=scratch)
    drawn += stats.bin_mean.take(flat, out=scratch)
    if every and discrete.size == values.shape[1]:
        values[...] = drawn
    else:
        values[:, discrete[binned]] = drawn


def describe(stats: TabularStatistics, names: Sequence[str], row: FloatArray) -> tuple[str, ...]:
    """Lime's names of the instance's interpretable features (``"x2 <= 0.31"``, ``"c=3"``)."""
    levels = stats.levels_of(row)
    described: list[str] = []
    for j, name in enumerate(names):
        kind = stats.kinds[j]
        if kind == CONTINUOUS:
            described.append(name)
        elif kind == CATEGORICAL:
            value = float(row[j])
            shown = str(int(value)) if value.is_integer() else repr(value)
            described.append(f"{name}={shown}")
        else:
            edges = stats.thresholds[j, : stats.n_levels[j] - 1]
            level = int(levels[j])
            if level == 0:
                described.append(f"{name} <= {edges[0]:.2f}")
            elif level == edges.size:
                described.append(f"{name} > {edges[-1]:.2f}")
            else:
                described.append(f"{edges[level - 1]:.2f} < {name} <= {edges[level]:.2f}")
    return tuple(described)
