"""Global importance from many local explanations: aggregation, stability, interactions, drift.

:class:`FeatureImportanceAggregator` turns the attributions of many predictions into one
importance per feature (by any :class:`AggregationMethod`), with percentile bootstrap
confidence intervals; measures how stable the resulting ranking is; finds the strongest
feature interactions; and tests which features' importance changed between two sets of
explanations (two model versions, two time windows).

Every computation works on an ``(n, M)`` matrix of attributions of one output. Each method
first maps it to a per-instance matrix ``T`` and then reduces ``T`` over instances:

==============  =====================================  ==================================
method          ``T`` (per instance and feature)        reduction over instances
==============  =====================================  ==================================
``MEAN_ABS``    ``|phi|``                               mean
``MEAN``        ``phi`` (signed; effects can cancel)    mean
``RMS``         ``phi ** 2``                            square root of the mean
``MEAN_RANK``   rank of ``|phi|`` among the instance's  mean
                features: 1 = smallest, ``M`` =
                largest, ties averaged (higher = more
                important)
``MEDIAN_ABS``  ``|phi|``                               median
``MAX_ABS``     ``|phi|``                               max
==============  =====================================  ==================================

Resampling is vectorised: a resample is a row of an index matrix, and for the mean-based
methods the statistic of a whole block of resamples is one matrix product (``counts @ T``).
Blocks are sized to stay under ``chunk_bytes``. The percentile bootstrap of ``MAX_ABS`` is
not consistent (a resample's maximum never exceeds the sample's), so its intervals are
descriptive only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._attributions import (
    INTERACTION_VALUES_EXTRA,
    check_int,
    check_open_unit,
    coerce_method,
    feature_matrix,
    gather,
    interaction_array,
    invalid,
    names_for,
)
from synapsenet.services.explainability._ranking import (
    abs_ranks,
    adjust_p_values,
    mean_pairwise_kendall_tau,
    mean_pairwise_top_k_overlap,
)
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    FloatArray,
    GlobalImportance,
    InteractionReport,
    StabilityReport,
)

__all__ = [
    "INTERACTION_VALUES_EXTRA",
    "ExplanationSource",
    "FeatureImportanceAggregator",
    "ImportanceComparison",
    "stability_from_scores",
]

BoolArray = npt.NDArray[np.bool_]
ExplanationSource = Explanation | Sequence[Explanation] | npt.NDArray[Any]
"""One explanation, several (stacked along instances), or a raw ``(n, M)`` or ``(n, M, K)``
array of attributions."""

_MEAN_BASED: Final = frozenset(
    {
        AggregationMethod.MEAN_ABS,
        AggregationMethod.MEAN,
        AggregationMethod.RMS,
        AggregationMethod.MEAN_RANK,
    }
)
_MIN_BIN_SIZE: Final = 20
_MAX_BINS: Final = 50
# Relative slack when comparing permuted statistics with the observed one: sums taken in a
# different order differ in the last bits, and a tie must count as "at least as extreme".
_TIE_TOLERANCE: Final = 1e-9


def _transform(matrix: FloatArray, method: AggregationMethod) -> FloatArray:
    """The per-instance matrix ``T`` that ``method`` reduces over instances."""
    if method is AggregationMethod.MEAN:
        return matrix
    if method is AggregationMethod.RMS:
        return matrix * matrix
    if method is AggregationMethod.MEAN_RANK:
        return abs_ranks(matrix)
    return np.abs(matrix)


def _reduce(transformed: FloatArray, method: AggregationMethod) -> FloatArray:
    """Reduce ``T`` over its instance axis (the second to last)."""
    if method is AggregationMethod.MEDIAN_ABS:
        return np.asarray(np.median(transformed, axis=-2), dtype=np.float64)
    if method is AggregationMethod.MAX_ABS:
        return np.asarray(np.max(transformed, axis=-2), dtype=np.float64)
    return _finish(np.mean(transformed, axis=-2), method)


def _finish(means: FloatArray, method: AggregationMethod) -> FloatArray:
    """Turn means of ``T`` into the statistic (only RMS needs a step)."""
    return np.sqrt(means) if method is AggregationMethod.RMS else means


def stability_from_scores(
    scores: FloatArray, feature_names: Sequence[str], *, k: int = 10
) -> StabilityReport:
    """Summarise how much several importance vectors agree.

    Args:
        scores: ``(R, M)`` importances, one row per run (bootstrap resample, seed), ``R >= 2``.
        feature_names: One name per column.
        k: Size of the top sets compared by ``top_k_overlap``; clipped to ``M``.

    Returns:
        Mean and standard deviation (``ddof=1``) per feature, their coefficient of variation
        (``std / |mean|``; 0 where both are 0, ``inf`` where only the mean is), the mean
        pairwise Kendall tau-b of the rankings and the mean pairwise top-k overlap.

    Raises:
        InvalidError: If ``scores`` is not a finite ``(R, M)`` matrix with ``R >= 2``, or the
            names do not match its columns.
    """
    owner = "stability_from_scores"
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise invalid("scores", "an (R, M) array with R >= 2 and M >= 1", matrix.shape, owner)
    if not np.all(np.isfinite(matrix)):
        raise InvalidError("Scores must be finite; found NaN or infinity.", field="scores")
    names = tuple(feature_names)
    if len(names) != matrix.shape[1]:
        raise invalid("feature_names", f"{matrix.shape[1]} names", len(names), owner)
    k = min(check_int(k, "k", 1, owner), matrix.shape[1])
    mean = matrix.mean(axis=0)
    std = matrix.std(axis=0, ddof=1)
    magnitude = np.abs(mean)
    cv = np.divide(std, magnitude, out=np.zeros_like(std), where=magnitude > 0)
    cv[(magnitude == 0) & (std > 0)] = math.inf
    return StabilityReport(
        feature_names=names,
        mean=mean,
        std=std,
        coefficient_of_variation=cv,
        kendall_tau=mean_pairwise_kendall_tau(matrix),
        top_k_overlap=mean_pairwise_top_k_overlap(matrix, k),
        k=k,
        n_runs=int(matrix.shape[0]),
    )


@dataclass(frozen=True)
class ImportanceComparison:
    """Which features' global importance changed between two sets of explanations.

    ``a`` is the reference (the current model version, the earlier window) and ``b`` the
    candidate; differences are ``b - a``. Each p-value comes from a two-sided permutation
    test of "both sets come from the same distribution of attributions": instances are
    pooled, set labels permuted, and the difference recomputed. The p-value is
    ``(1 + #{|permuted| >= |observed|}) / (1 + n_permutations)``, which is valid (never
    below the nominal level under the null) for any number of permutations.

    Attributes:
        method: How attributions were aggregated on both sides.
        feature_names: The features, in input order.
        importance_a: Importance in set ``a``, per feature.
        importance_b: Importance in set ``b``, per feature.
        difference: ``importance_b - importance_a``.
        p_values: Unadjusted permutation p-values.
        adjusted_p_values: p-values adjusted for testing every feature (``correction``).
        significant: ``adjusted_p_values <= alpha``.
        alpha: The significance level.
        correction: ``"holm"`` (family-wise error) or ``"bh"`` (false discovery rate).
        n_permutations: Permutations drawn.
        n_a: Instances in ``a``.
        n_b: Instances in ``b``.
        output: Which output (class) was compared.
    """

    method: AggregationMethod
    feature_names: tuple[str, ...]
    importance_a: FloatArray
    importance_b: FloatArray
    difference: FloatArray
    p_values: FloatArray
    adjusted_p_values: FloatArray
    significant: BoolArray
    alpha: float
    correction: str
    n_permutations: int
    n_a: int
    n_b: int
    output: int = 0

    def changed(self) -> tuple[str, ...]:
        """Names of the significantly changed features, largest absolute change first."""
        order = np.argsort(-np.abs(self.difference), kind="stable")
        return tuple(self.feature_names[i] for i in order if self.significant[i])


class FeatureImportanceAggregator:
    """Global feature importance, its stability, interactions and changes over many explanations.

    Configure in the constructor, compute in the methods. Every method that resamples starts
    from a fresh generator seeded with ``seed``, so the same call returns the same result
    whatever was computed before it.

    Args:
        n_bootstrap: Bootstrap resamples for intervals and stability (>= 2).
        confidence_level: Level of the percentile bootstrap intervals, in (0, 1).
        seed: Seed of every random draw (>= 0).
        chunk_bytes: Upper bound, in bytes, of the resampling blocks built at once.

    Raises:
        InvalidError: Naming the parameter, if one is out of range.

    Example:
        >>> aggregator = FeatureImportanceAggregator(n_bootstrap=200, seed=7)
        >>> values = np.array([[1.0, -0.1], [2.0, 0.2], [-1.5, 0.1]])
        >>> aggregator.global_importance(values, "mean_abs").ranking()
        ('feature_0', 'feature_1')
    """

    def __init__(
        self,
        *,
        n_bootstrap: int = 1000,
        confidence_level: float = 0.95,
        seed: int = 0,
        chunk_bytes: int = 64 * 2**20,
    ) -> None:
        self.n_bootstrap = check_int(n_bootstrap, "n_bootstrap", 2)
        self.confidence_level = check_open_unit(confidence_level, "confidence_level")
        self.seed = check_int(seed, "seed", 0)
        self.chunk_bytes = check_int(chunk_bytes, "chunk_bytes", 1)

    def __repr__(self) -> str:
        return (
            f"FeatureImportanceAggregator(n_bootstrap={self.n_bootstrap}, "
            f"confidence_level={self.confidence_level}, seed={self.seed})"
        )

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def _rows_per_block(self, bytes_per_row: int) -> int:
        return max(1, self.chunk_bytes // max(1, bytes_per_row))

    def global_importance(
        self,
        explanations: ExplanationSource,
        method: AggregationMethod | str = AggregationMethod.MEAN_ABS,
        *,
        output: int = 0,
        feature_names: Sequence[str] | None = None,
    ) -> GlobalImportance:
        """Aggregate local attributions into one importance per feature, with bootstrap CIs.

        Args:
            explanations: One or more explanations (stacked along instances), or a raw
                ``(n, M)`` / ``(n, M, K)`` attribution array.
            method: How to aggregate; see the module docstring for each method's formula.
            output: Which output (class) to aggregate.
            feature_names: Names for a raw array (default ``feature_0``...); must be None
                for explanations, which carry their own.

        Returns:
            The importance, with percentile bootstrap intervals at ``confidence_level``.

        Raises:
            InvalidError: On an unknown method, an output out of range, empty or non-finite
                attributions, or explanations that disagree on features or outputs.
        """
        method = coerce_method(method)
        attributions = gather(explanations, feature_names)
        matrix = attributions.output(output)
        transformed = _transform(matrix, method)
        resampled = self._bootstrap(transformed, method, self._rng())
        tail = (1.0 - self.confidence_level) / 2.0
        lower, upper = np.quantile(resampled, [tail, 1.0 - tail], axis=0)
        return GlobalImportance(
            method=method,
            feature_names=attributions.feature_names,
            importance=_reduce(transformed, method),
            ci_lower=np.asarray(lower, dtype=np.float64),
            ci_upper=np.asarray(upper, dtype=np.float64),
            confidence_level=self.confidence_level,
            n_explanations=int(matrix.shape[0]),
            output=int(output),
        )

    def bootstrap(
        self,
        explanations: ExplanationSource,
        method: AggregationMethod | str = AggregationMethod.MEAN_ABS,
        *,
        output: int = 0,
        feature_names: Sequence[str] | None = None,
    ) -> FloatArray:
        """The bootstrap distribution of the importance: one row per resample.

        The resamples are the ones :meth:`global_importance` and :meth:`stability` use.

        Args:
            explanations: As for :meth:`global_importance`.
            method: As for :meth:`global_importance`.
            output: As for :meth:`global_importance`.
            feature_names: As for :meth:`global_importance`.

        Returns:
            ``(n_bootstrap, M)`` importances.
        """
        method = coerce_method(method)
        matrix = gather(explanations, feature_names).output(output)
        return self._bootstrap(_transform(matrix, method), method, self._rng())

    def _bootstrap(
        self, transformed: FloatArray, method: AggregationMethod, rng: np.random.Generator
    ) -> FloatArray:
        n, n_features = transformed.shape
        out = np.empty((self.n_bootstrap, n_features))
        mean_based = method in _MEAN_BASED
        # Index and count rows for a mean; index rows plus the gathered block otherwise.
        bytes_per_row = 8 * n * (2 if mean_based else n_features + 1)
        block = self._rows_per_block(bytes_per_row)
        for start in range(0, self.n_bootstrap, block):
            size = min(block, self.n_bootstrap - start)
            indices = rng.integers(0, n, size=(size, n))
            if mean_based:
                flat = (indices + (np.arange(size) * n)[:, None]).ravel()
                counts = np.bincount(flat, minlength=size * n).reshape(size, n)
                out[start : start + size] = _finish(counts @ transformed / n, method)
            else:
                out[start : start + size] = _reduce(transformed[indices], method)
        return out

    def stability(
        self,
        explanations: ExplanationSource,
        method: AggregationMethod | str = AggregationMethod.MEAN_ABS,
        *,
        output: int = 0,
        k: int = 10,
        feature_names: Sequence[str] | None = None,
    ) -> StabilityReport:
        """How stable the importance ranking is under bootstrap resampling of the instances.

        Args:
            explanations: As for :meth:`global_importance`.
            method: As for :meth:`global_importance`.
            output: As for :meth:`global_importance`.
            k: Size of the top sets compared (clipped to the number of features).
            feature_names: As for :meth:`global_importance`.

        Returns:
            Over the ``n_bootstrap`` resampled importances: mean, std and coefficient of
            variation per feature, the mean pairwise Kendall tau-b of their rankings and the
            mean pairwise top-k overlap (see :func:`stability_from_scores`).
        """
        method = coerce_method(method)
        attributions = gather(explanations, feature_names)
        matrix = attributions.output(output)
        resampled = self._bootstrap(_transform(matrix, method), method, self._rng())
        return stability_from_scores(resampled, attributions.feature_names, k=k)

    def interactions(
        self,
        explanations: ExplanationSource | None = None,
        *,
        interaction_values: npt.ArrayLike | None = None,
        X: npt.ArrayLike | None = None,  # noqa: N803 - the field's name for feature values
        output: int = 0,
        top: int = 10,
        feature_names: Sequence[str] | None = None,
    ) -> InteractionReport:
        """The strongest feature interactions, from interaction values or SHAP dependence.

        With interaction values (``interaction_values``, a 4-D array passed as
        ``explanations``, or ``Explanation.extras["interaction_values"]``), the strength of
        a pair is ``mean_n |Phi_ij + Phi_ji|``: the whole interaction effect, which SHAP
        splits equally between the two off-diagonal cells.

        Without them, a dependence heuristic in the spirit of shap's
        ``approximate_interactions`` needs the feature values ``X``: for feature ``i``,
        instances are sorted by ``x_i`` and cut into equal-count bins (at least 20
        instances, at most 50 bins); inside a bin ``x_i`` is nearly constant, so whatever
        part of ``phi_i`` still moves linearly with ``x_j`` comes from an interaction. Its
        size is the spread of that linear fit, ``|cov(phi_i, x_j)| / std(x_j)`` (= ``|corr|
        * std(phi_i)``), averaged over bins weighted by their size; the pair's strength is
        the sum of both directions. A pure ``x1 * x2`` term gives each direction about
        ``E|x_i| std(x_j) / 2``. It is in attribution units but only a heuristic: compare
        pairs with each other, not with interaction-value strengths.

        Args:
            explanations: Explanations or a raw attribution array (``(n, M)``, ``(n, M, K)``),
                or a 4-D ``(n, M, M, K)`` array of interaction values.
            interaction_values: ``(n, M, M)`` or ``(n, M, M, K)`` interaction values; used
                instead of any found in ``explanations``.
            X: ``(n, M)`` feature values (array or DataFrame), needed by the dependence
                heuristic.
            output: Which output (class) to analyse.
            top: How many pairs to report, strongest first.
            feature_names: Names for raw arrays (default ``feature_0``...).

        Returns:
            The ``top`` strongest pairs, the full symmetric strength matrix and the source.

        Raises:
            InvalidError: If neither interaction values nor attributions with ``X`` are
                given, or shapes disagree.
        """
        top = check_int(top, "top", 1)
        if (
            interaction_values is None
            and isinstance(explanations, np.ndarray)
            and explanations.ndim == 4
        ):
            interaction_values, explanations = explanations, None
        attributions = None if explanations is None else gather(explanations, feature_names)
        if interaction_values is not None:
            array = interaction_array(interaction_values)
            names = names_for(array.shape[1], feature_names, attributions)
            if attributions is not None and attributions.values.shape[:2] != array.shape[:2]:
                raise InvalidError(
                    f"Interaction values of shape {array.shape} do not match attributions of "
                    f"shape {attributions.values.shape}.",
                    field="interaction_values",
                )
            strength, source = _interaction_strength(array, output), "interaction_values"
        elif attributions is None:
            raise InvalidError(
                "interactions() needs explanations, attributions or interaction values.",
                field="explanations",
            )
        elif attributions.interaction_values is not None:
            names = attributions.feature_names
            strength = _interaction_strength(attributions.interaction_values, output)
            source = "interaction_values"
        else:
            names = attributions.feature_names
            features = feature_matrix(X, attributions.values.shape)
            strength = _dependence_strength(attributions.output(output), features)
            source = "shap_dependence"
        upper_i, upper_j = np.triu_indices(len(names), k=1)
        pair_strength = strength[upper_i, upper_j]
        order = np.argsort(-pair_strength, kind="stable")[:top]
        pairs = tuple(
            (names[upper_i[p]], names[upper_j[p]], float(pair_strength[p])) for p in order
        )
        return InteractionReport(pairs=pairs, source=source, matrix=strength, feature_names=names)

    def compare(
        self,
        a: ExplanationSource,
        b: ExplanationSource,
        *,
        method: AggregationMethod | str = AggregationMethod.MEAN_ABS,
        output: int = 0,
        n_permutations: int = 2000,
        alpha: float = 0.05,
        correction: Literal["holm", "bh"] = "holm",
        feature_names: Sequence[str] | None = None,
    ) -> ImportanceComparison:
        """Test, feature by feature, whether importance changed between two sets.

        Args:
            a: The reference set (explanations or raw attributions).
            b: The candidate set, with the same features and outputs.
            method: How to aggregate on both sides.
            output: Which output (class) to compare.
            n_permutations: Random relabellings drawn (>= 1).
            alpha: Significance level for ``significant``.
            correction: ``"holm"`` controls the family-wise error rate over features;
                ``"bh"`` (Benjamini-Hochberg) the false discovery rate.
            feature_names: Names for raw arrays.

        Returns:
            Importances on both sides, their difference, permutation p-values, adjusted
            p-values and which features changed significantly.

        Raises:
            InvalidError: On bad parameters, or sets whose features differ.
        """
        method = coerce_method(method)
        n_permutations = check_int(n_permutations, "n_permutations", 1)
        alpha = check_open_unit(alpha, "alpha")
        if correction not in ("holm", "bh"):
            raise invalid("correction", "one of 'holm', 'bh'", correction)
        side_a = gather(a, feature_names)
        side_b = gather(b, feature_names)
        if side_a.feature_names != side_b.feature_names:
            raise InvalidError(
                f"Sets compared must have the same features; got {side_a.feature_names} and "
                f"{side_b.feature_names}.",
                field="b",
            )
        matrix_a = side_a.output(output)
        matrix_b = side_b.output(output)
        n_a, n_b = matrix_a.shape[0], matrix_b.shape[0]
        pooled = _transform(np.concatenate([matrix_a, matrix_b]), method)
        importance_a = _reduce(pooled[:n_a], method)
        importance_b = _reduce(pooled[n_a:], method)
        observed = importance_b - importance_a
        permuted = self._permuted_differences(pooled, n_a, method, n_permutations)
        slack = _TIE_TOLERANCE * np.maximum(np.abs(observed), 1.0)
        extreme = np.sum(np.abs(permuted) >= np.abs(observed) - slack, axis=0)
        p_values = (1.0 + extreme) / (1.0 + n_permutations)
        adjusted = adjust_p_values(p_values, correction)
        return ImportanceComparison(
            method=method,
            feature_names=side_a.feature_names,
            importance_a=importance_a,
            importance_b=importance_b,
            difference=observed,
            p_values=p_values,
            adjusted_p_values=adjusted,
            significant=adjusted <= alpha,
            alpha=alpha,
            correction=correction,
            n_permutations=n_permutations,
            n_a=int(n_a),
            n_b=int(n_b),
            output=int(output),
        )

    def _permuted_differences(
        self, pooled: FloatArray, n_a: int, method: AggregationMethod, n_permutations: int
    ) -> FloatArray:
        """``statistic(b) - statistic(a)`` under ``n_permutations`` random relabellings."""
        rng = self._rng()
        total, n_features = pooled.shape
        n_b = total - n_a
        out = np.empty((n_permutations, n_features))
        mean_based = method in _MEAN_BASED
        bytes_per_row = 8 * total * (2 if mean_based else n_features + 1)
        block = self._rows_per_block(bytes_per_row)
        column_sums = pooled.sum(axis=0)
        for start in range(0, n_permutations, block):
            size = min(block, n_permutations - start)
            order = rng.permuted(np.tile(np.arange(total), (size, 1)), axis=1)
            if mean_based:
                in_a = np.zeros((size, total))
                np.put_along_axis(in_a, order[:, :n_a], 1.0, axis=1)
                sums_a = in_a @ pooled
                stat_a = _finish(sums_a / n_a, method)
                stat_b = _finish((column_sums - sums_a) / n_b, method)
            else:
                gathered = pooled[order]
                stat_a = _reduce(gathered[:, :n_a], method)
                stat_b = _reduce(gathered[:, n_a:], method)
            out[start : start + size] = stat_b - stat_a
        return out


def _interaction_strength(array: FloatArray, output: object) -> FloatArray:
    """``mean_n |Phi_ij + Phi_ji|`` of one output, with a zero diagonal."""
    index = check_int(output, "output", 0)
    if index >= array.shape[3]:
        raise invalid("output", f"an int < {array.shape[3]} (n_outputs)", output)
    cells = array[..., index]
    strength = np.mean(np.abs(cells + np.swapaxes(cells, 1, 2)), axis=0)
    np.fill_diagonal(strength, 0.0)
    return np.asarray(strength, dtype=np.float64)


def _dependence_strength(attributions: FloatArray, features: FloatArray) -> FloatArray:
    """Symmetric pair strengths of the dependence heuristic (see ``interactions``)."""
    n, n_features = attributions.shape
    n_bins = max(1, min(_MAX_BINS, n // _MIN_BIN_SIZE))
    bounds = np.linspace(0, n, n_bins + 1).round().astype(np.intp)
    starts, sizes = bounds[:-1], np.diff(bounds)
    directed = np.zeros((n_features, n_features))
    column_variance = features.var(axis=0) + np.finfo(np.float64).tiny
    for i in range(n_features):
        order = np.argsort(features[:, i], kind="stable")
        phi = attributions[order, i]
        x = features[order]
        phi_centred = phi - np.repeat(np.add.reduceat(phi, starts) / sizes, sizes)
        x_centred = x - np.repeat(np.add.reduceat(x, starts, axis=0) / sizes[:, None], sizes, 0)
        covariance = np.add.reduceat(phi_centred[:, None] * x_centred, starts, axis=0)
        x_sum_squares = np.add.reduceat(x_centred * x_centred, starts, axis=0)
        # |cov| / std(x) per bin, both from sums over the bin: |S_xy| / sqrt(size * S_xx).
        # A bin where x_j is (numerically) constant says nothing about x_j: spread 0.
        fitted_spread = np.divide(
            np.abs(covariance),
            np.sqrt(sizes[:, None] * x_sum_squares),
            out=np.zeros_like(covariance),
            where=x_sum_squares > 1e-12 * sizes[:, None] * column_variance,
        )
        directed[i] = sizes @ fitted_spread / n
    np.fill_diagonal(directed, 0.0)
    return directed + directed.T
