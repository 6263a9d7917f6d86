"""The explainability domain: explanation types, aggregation methods and result records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class ExplanationType(StrEnum):
    """How an explanation was computed."""

    SHAP_TREE = "shap_tree"
    SHAP_KERNEL = "shap_kernel"
    SHAP_EXACT = "shap_exact"
    SHAP_INTERACTION = "shap_interaction"
    LIME_TABULAR = "lime_tabular"
    LIME_TEXT = "lime_text"
    LIME_IMAGE = "lime_image"


class AggregationMethod(StrEnum):
    """How many local explanations become one global importance per feature."""

    MEAN_ABS = "mean_abs"
    MEAN = "mean"
    MEDIAN_ABS = "median_abs"
    MAX_ABS = "max_abs"
    RMS = "rms"
    MEAN_RANK = "mean_rank"


@dataclass(frozen=True)
class Explanation:
    """Attributions of one or more predictions.

    Shapes: ``values`` is ``(n_instances, n_features, n_outputs)``; ``base_values`` and
    ``predictions`` are ``(n_instances, n_outputs)`` (a single-output model has
    ``n_outputs == 1``). For SHAP, ``values.sum(axis=1) + base_values == predictions`` (local
    accuracy) within ``local_accuracy_error``; LIME weights carry no such guarantee.

    Attributes:
        type: The method.
        values: Attribution per instance, feature and output.
        base_values: The expected model output the attributions start from.
        predictions: The model output being explained (on the link scale for a logit link).
        feature_names: One name per feature (or per word / superpixel for text and images).
        output_names: One name per output (class names for classifiers).
        parameters: The method's parameters (sample counts, kernel width, link...).
        seed: The seed of a randomized method, None for deterministic ones.
        runtime_seconds: Wall time of the computation.
        standard_errors: Per-value standard errors where the method estimates them
            (KernelSHAP), same shape as ``values``.
        local_accuracy_error: Largest ``|sum(values) + base - prediction|`` observed.
        extras: Method-specific results (LIME's surrogate R2 and intercept, image masks...).
    """

    type: ExplanationType
    values: FloatArray
    base_values: FloatArray
    predictions: FloatArray
    feature_names: tuple[str, ...]
    output_names: tuple[str, ...] = ("output",)
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    runtime_seconds: float = 0.0
    standard_errors: FloatArray | None = None
    local_accuracy_error: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        """How many predictions are explained."""
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        """How many features (words, segments) carry attributions."""
        return int(self.values.shape[1])

    @property
    def n_outputs(self) -> int:
        """How many model outputs are explained."""
        return int(self.values.shape[2])


@dataclass(frozen=True)
class GlobalImportance:
    """Importance of each feature over many explanations, with bootstrap intervals.

    Attributes:
        method: How local attributions were aggregated.
        feature_names: The features, in input order.
        importance: One value per feature.
        ci_lower: Lower bound of the bootstrap confidence interval, per feature.
        ci_upper: Upper bound, per feature.
        confidence_level: Level of the intervals.
        n_explanations: Instances aggregated.
        output: Which output (class) this importance is for.
    """

    method: AggregationMethod
    feature_names: tuple[str, ...]
    importance: FloatArray
    ci_lower: FloatArray
    ci_upper: FloatArray
    confidence_level: float
    n_explanations: int
    output: int = 0

    def ranking(self) -> tuple[str, ...]:
        """Feature names, most important first."""
        order = np.argsort(-self.importance, kind="stable")
        return tuple(self.feature_names[i] for i in order)


@dataclass(frozen=True)
class StabilityReport:
    """How stable an importance ranking or a set of explanations is.

    Attributes:
        feature_names: The features.
        mean: Mean attribution (or importance) per feature across runs or resamples.
        std: Standard deviation per feature.
        coefficient_of_variation: ``std / |mean|`` per feature (None-like NaN avoided: inf
            is reported as a large number where the mean is 0).
        kendall_tau: Mean pairwise Kendall tau between the rankings of the runs.
        top_k_overlap: Mean pairwise overlap of the top-k features (fraction in [0, 1]).
        k: The k of ``top_k_overlap``.
        n_runs: Number of runs (seeds or bootstrap resamples).
    """

    feature_names: tuple[str, ...]
    mean: FloatArray
    std: FloatArray
    coefficient_of_variation: FloatArray
    kendall_tau: float
    top_k_overlap: float
    k: int
    n_runs: int


@dataclass(frozen=True)
class InteractionReport:
    """The strongest feature interactions.

    Attributes:
        pairs: ``(feature_a, feature_b, strength)``, strongest first.
        source: ``"interaction_values"`` or ``"shap_dependence"`` (how they were found).
        matrix: Mean absolute interaction strength for every pair (symmetric, zero diagonal).
        feature_names: Order of the matrix rows and columns.
    """

    pairs: tuple[tuple[str, str, float], ...]
    source: str
    matrix: FloatArray
    feature_names: tuple[str, ...]
