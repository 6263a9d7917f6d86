"""The local surrogate every LIME explainer fits, and the model-output handling they share.

LIME explains a prediction with a linear model fitted, by weighted ridge regression, to the
model's outputs on perturbed samples, each weighted by its proximity to the instance. This
module fits that model exactly as the lime library does (its ``LimeBase``):

* weights come from lime's exponential kernel ``sqrt(exp(-d^2 / width^2))``;
* features are selected per output by ``"forward"`` selection (greedy, by the weighted R2 of
  an unpenalised fit), ``"highest_weights"`` (largest ``|coef * instance|`` of a ridge fit with
  ``alpha=0.01``), ``"none"``, or ``"auto"`` (forward selection when at most 6 features are
  asked for, highest weights otherwise, lime's rule);
* the explanation is scikit-learn's ``Ridge(alpha=1, fit_intercept=True)`` fitted with
  ``sample_weight`` on the selected features, and its weighted R2 (``Ridge.score``) is
  reported with its intercept and its prediction at the instance.

Nothing here calls scikit-learn: the ridge solution of weighted, centred data is
``(Xc' W Xc + alpha I)^-1 Xc' W yc``, so one weighted Gram matrix serves every output, every
candidate subset of forward selection (solved as one batch) and the final fit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import qmc

from .adapters import ModelOutputError
from .contract import check_choice, check_int, invalid_parameter
from .models import Explanation, ExplanationType, FloatArray

Mode = Literal["classification", "regression"]
FeatureSelection = Literal["auto", "forward", "highest_weights", "none"]

MODES: tuple[str, ...] = ("classification", "regression")
FEATURE_SELECTIONS: tuple[str, ...] = ("auto", "forward", "highest_weights", "none")
SAMPLINGS: tuple[str, ...] = ("sobol", "random")

RIDGE_ALPHA = 1.0
"""Penalty of the explanation's ridge fit (lime's ``Ridge(alpha=1)``)."""

SELECTION_ALPHA = 0.01
"""Penalty of the full fit that ranks features for ``"highest_weights"`` (lime's)."""

FORWARD_LIMIT = 6
"""``"auto"`` selects forward when at most this many features are asked for (lime's rule)."""


def exponential_kernel(distances: FloatArray, width: float) -> FloatArray:
    """Lime's proximity weights: ``sqrt(exp(-d^2 / width^2))``, 1 at the instance itself.

    Args:
        distances: Distance of every sample to the instance.
        width: The kernel width.

    Returns:
        One weight in (0, 1] per sample.
    """
    return np.asarray(np.sqrt(np.exp(-(distances**2) / width**2)), dtype=np.float64)


@dataclass(frozen=True)
class SurrogateFit:
    """The weighted linear model that explains one instance, one column per output.

    Attributes:
        coef: ``(M, K)`` weights; 0 for features the selection left out.
        intercept: ``(K,)`` intercepts.
        score: ``(K,)`` weighted R2 of the fit on the samples (``Ridge.score``).
        local_prediction: ``(K,)`` the surrogate's prediction at the instance.
        selected: Per output, the selected feature indices, most important first.
    """

    coef: FloatArray
    intercept: FloatArray
    score: FloatArray
    local_prediction: FloatArray
    selected: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class _Moments:
    """Weighted, centred sufficient statistics of a regression on ``data``."""

    data_mean: FloatArray  # (M,)
    target_mean: FloatArray  # (K,)
    gram: FloatArray  # (M, M): Xc' W Xc
    cross: FloatArray  # (M, K): Xc' W yc
    total: FloatArray  # (K,): yc' W yc

    @classmethod
    def of(cls, data: FloatArray, targets: FloatArray, weights: FloatArray) -> _Moments:
        weight_sum = float(weights.sum())
        data_mean = weights @ data / weight_sum
        target_mean = weights @ targets / weight_sum
        root = np.sqrt(weights)[:, None]
        scaled = (data - data_mean) * root
        scaled_targets = (targets - target_mean) * root
        return cls(
            data_mean=data_mean,
            target_mean=target_mean,
            # ``a.T @ a`` on one buffer runs as a symmetric rank-k update; a general product
            # of two operands is threaded by BLAS and collapses on a busy machine.
            gram=scaled.T @ scaled,
            cross=scaled.T @ scaled_targets,
            total=(scaled_targets**2).sum(axis=0),
        )


def _r2(residual: float, total: float) -> float:
    # sklearn's r2_score: a constant target scores 1 when fitted exactly, else 0.
    if total <= 0.0:
        return 1.0 if residual <= 0.0 else 0.0
    return 1.0 - residual / total


def _forward(moments: _Moments, output: int, n_features: int) -> list[int]:
    """Lime's forward selection: add, one at a time, the feature that most raises R2."""
    n_total = moments.gram.shape[0]
    used: list[int] = []
    for _ in range(min(n_features, n_total)):
        candidates = np.array([j for j in range(n_total) if j not in used], dtype=np.intp)
        subsets = np.column_stack([np.tile(used, (candidates.size, 1)), candidates])
        subsets = subsets.astype(np.intp)
        grams = moments.gram[subsets[:, :, None], subsets[:, None, :]]
        cross = moments.cross[subsets, output]
        # Lime fits these with alpha=0; the pseudo-inverse is its least-squares fallback
        # when a subset is collinear.
        coef = np.einsum("cij,cj->ci", np.linalg.pinv(grams), cross)
        residual = (
            moments.total[output]
            - 2.0 * np.einsum("ci,ci->c", coef, cross)
            + np.einsum("ci,cij,cj->c", coef, grams, coef)
        )
        used.append(int(candidates[int(np.argmin(residual))]))
    return used


def _highest_weights(moments: _Moments, reference: FloatArray, n_features: int) -> list[list[int]]:
    """Per output, the features with the largest ``|coef * instance|`` of a full ridge fit."""
    n_total = moments.gram.shape[0]
    coef = np.linalg.solve(moments.gram + SELECTION_ALPHA * np.eye(n_total), moments.cross)
    contribution = np.abs(coef * reference[:, None])
    order = np.argsort(-contribution, axis=0, kind="stable")[:n_features]
    return [order[:, k].tolist() for k in range(order.shape[1])]


def _selections(
    moments: _Moments, reference: FloatArray, n_features: int, method: str
) -> list[list[int]]:
    n_total, n_outputs = moments.cross.shape
    if method == "auto":
        method = "forward" if n_features <= FORWARD_LIMIT else "highest_weights"
    if method == "none":
        return [list(range(n_total)) for _ in range(n_outputs)]
    if method == "forward":
        return [_forward(moments, k, n_features) for k in range(n_outputs)]
    return _highest_weights(moments, reference, n_features)


def fit_surrogate(
    data: FloatArray,
    targets: FloatArray,
    weights: FloatArray,
    *,
    n_features: int,
    feature_selection: str,
    alpha: float = RIDGE_ALPHA,
) -> SurrogateFit:
    """Fit lime's explanation model for every output at once.

    Args:
        data: ``(N, M)`` interpretable representation of the samples; row 0 is the instance.
        targets: ``(N, K)`` model outputs on the samples.
        weights: ``(N,)`` kernel weights.
        n_features: How many features the explanation may use (clipped to ``M``).
        feature_selection: ``"auto"``, ``"forward"``, ``"highest_weights"`` or ``"none"``.
        alpha: Ridge penalty of the explanation.

    Returns:
        The fit: weights per feature and output, intercepts, weighted R2 and the
        surrogate's prediction at the instance.
    """
    n_total = data.shape[1]
    n_features = min(n_features, n_total)
    moments = _Moments.of(data, targets, weights)
    reference = data[0]
    selections = _selections(moments, reference, n_features, feature_selection)
    n_outputs = targets.shape[1]
    coef = np.zeros((n_total, n_outputs))
    intercept = np.empty(n_outputs)
    score = np.empty(n_outputs)
    local = np.empty(n_outputs)
    ordered: list[tuple[int, ...]] = []
    for k, selected in enumerate(selections):
        index = np.asarray(selected, dtype=np.intp)
        gram = moments.gram[np.ix_(index, index)] + alpha * np.eye(index.size)
        beta = np.linalg.solve(gram, moments.cross[index, k])
        coef[index, k] = beta
        intercept[k] = moments.target_mean[k] - moments.data_mean[index] @ beta
        fitted = intercept[k] + data[:, index] @ beta
        residual = float(weights @ (targets[:, k] - fitted) ** 2)
        score[k] = _r2(residual, float(moments.total[k]))
        local[k] = fitted[0]
        # Most important first, as lime lists its explanation.
        ordered.append(tuple(int(i) for i in index[np.argsort(-np.abs(beta), kind="stable")]))
    return SurrogateFit(coef, intercept, score, local, tuple(ordered))


def build_explanation(
    kind: ExplanationType,
    fits: Sequence[SurrogateFit],
    predictions: FloatArray,
    *,
    feature_names: tuple[str, ...],
    outputs: tuple[str, ...],
    labels: tuple[int, ...],
    parameters: dict[str, Any],
    seed: int,
    started: float,
    extras: dict[str, Any],
) -> Explanation:
    """Assemble a LIME explanation from one surrogate fit per instance.

    ``values`` are the surrogate weights and ``base_values`` its intercepts; ``extras`` gets
    ``score`` (weighted R2), ``intercept``, ``local_prediction`` (all ``(n, K)``),
    ``selected_features`` (per instance and output, most important first) and ``labels``
    (the explained output indices), besides the explainer's own entries.

    Args:
        kind: The LIME variant.
        fits: One fit per instance.
        predictions: ``(n, K)`` model outputs at the instances.
        feature_names: One name per interpretable feature.
        outputs: One name per explained output.
        labels: The explained output indices.
        parameters: The explainer's parameters.
        seed: The sampling seed.
        started: ``time.perf_counter()`` when the work began.
        extras: Explainer-specific extras.
    """
    intercept = np.stack([fit.intercept for fit in fits])
    return Explanation(
        type=kind,
        values=np.stack([fit.coef for fit in fits]),
        base_values=intercept,
        predictions=predictions,
        feature_names=feature_names,
        output_names=outputs,
        parameters=parameters,
        seed=seed,
        runtime_seconds=time.perf_counter() - started,
        extras={
            "score": np.stack([fit.score for fit in fits]),
            "intercept": intercept,
            "local_prediction": np.stack([fit.local_prediction for fit in fits]),
            "selected_features": tuple(fit.selected for fit in fits),
            "labels": labels,
            **extras,
        },
    )


# ---------------------------------------------------------------------- model outputs


def model_outputs(raw: object, n_rows: int, mode: str, owner: str) -> FloatArray:
    """Check what a prediction function returned and shape it ``(n_rows, K)``.

    Args:
        raw: The prediction function's return value.
        n_rows: How many inputs it was given.
        mode: ``"classification"`` (class probabilities, 2-D) or ``"regression"`` (1-D, or
            2-D for several outputs).
        owner: The explainer, for messages.

    Returns:
        The outputs as float64, one column per output.

    Raises:
        ModelOutputError: On the wrong shape or non-finite values.
    """
    try:
        outputs = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ModelOutputError(
            f"The prediction function given to {owner} must return numbers. "
            f"Got {type(raw).__name__} instead.",
            field="predict_fn",
        ) from error
    if mode == "regression" and outputs.ndim == 1:
        outputs = outputs[:, None]
    if outputs.ndim != 2 or outputs.shape[0] != n_rows or outputs.shape[1] < 1:
        expected = "(n, n_classes) class probabilities" if mode == "classification" else "(n,)"
        raise ModelOutputError(
            f"The prediction function given to {owner} must return an array of shape "
            f"{expected} for n={n_rows} inputs. Got shape {outputs.shape} instead."
            + (
                " In classification mode it must return probabilities (predict_proba)."
                if mode == "classification"
                else ""
            ),
            field="predict_fn",
        )
    if not np.all(np.isfinite(outputs)):
        raise ModelOutputError(
            f"The prediction function given to {owner} returned NaN or infinite values.",
            field="predict_fn",
        )
    return outputs


def choose_outputs(
    first: FloatArray,
    labels: Sequence[int] | None,
    top_labels: int | None,
    owner: str,
) -> tuple[int, ...]:
    """Which outputs to explain: given labels, the top-k of the instance, or all of them.

    Args:
        first: ``(K,)`` the model's outputs at the instance.
        labels: Output (class) indices to explain, or None.
        top_labels: Explain the this many highest outputs of the instance instead, or None.
        owner: The explainer's method, for messages.

    Returns:
        Output indices, in the order they will appear in the explanation.

    Raises:
        InvalidError: If a label is out of range, or both arguments are given.
    """
    n_outputs = first.shape[0]
    if labels is not None and top_labels is not None:
        raise invalid_parameter("top_labels", owner, "None when 'labels' is given", top_labels)
    if top_labels is not None:
        count = min(check_int(top_labels, "top_labels", owner, minimum=1), n_outputs)
        return tuple(int(i) for i in np.argsort(-first, kind="stable")[:count])
    if labels is None:
        return tuple(range(n_outputs))
    chosen = tuple(labels)
    if not chosen or any(
        isinstance(label, bool) or not isinstance(label, int | np.integer) for label in chosen
    ):
        raise invalid_parameter("labels", owner, "a non-empty sequence of ints", labels)
    if any(not 0 <= label < n_outputs for label in chosen):
        raise invalid_parameter(
            "labels", owner, f"output indices in [0, {n_outputs - 1}]", list(chosen)
        )
    return tuple(int(label) for label in chosen)


def output_names(mode: str, outputs: tuple[int, ...], n_outputs: int) -> tuple[str, ...]:
    """Names of the explained outputs: the class index, or ``output`` for one regression."""
    if mode == "classification":
        return tuple(str(k) for k in outputs)
    if n_outputs == 1:
        return ("output",)
    return tuple(f"output_{k}" for k in outputs)


# ---------------------------------------------------------------------- shared parameters


@dataclass(frozen=True)
class SurrogateSettings:
    """The parameters every LIME explainer validates the same way.

    Attributes:
        n_samples: Perturbed samples per explanation (the instance is the first).
        n_features: Features the explanation may use.
        feature_selection: How they are chosen.
        mode: ``"classification"`` or ``"regression"``.
        sampling: ``"sobol"`` (randomised Sobol' points) or ``"random"`` (i.i.d. draws).
        seed: Seed of the sampling.
    """

    n_samples: int
    n_features: int
    feature_selection: str
    mode: str
    sampling: str
    seed: int

    @classmethod
    def check(
        cls,
        owner: str,
        *,
        n_samples: object,
        n_features: object,
        feature_selection: object,
        mode: object,
        sampling: object,
        seed: object,
    ) -> SurrogateSettings:
        """Validate the shared parameters of ``owner``.

        Raises:
            InvalidError: Naming the first parameter that breaks its contract.
        """
        return cls(
            n_samples=check_int(n_samples, "n_samples", owner, minimum=2),
            n_features=check_int(n_features, "n_features", owner, minimum=1),
            feature_selection=check_choice(
                feature_selection, "feature_selection", owner, FEATURE_SELECTIONS
            ),
            mode=check_choice(mode, "mode", owner, MODES),
            sampling=check_choice(sampling, "sampling", owner, SAMPLINGS),
            seed=check_int(seed, "seed", owner, minimum=0),
        )

    def as_parameters(self) -> dict[str, Any]:
        """The settings as an explanation's ``parameters``."""
        return {
            "n_samples": self.n_samples,
            "n_features": self.n_features,
            "feature_selection": self.feature_selection,
            "mode": self.mode,
            "sampling": self.sampling,
        }


def uniform_points(n_points: int, dimension: int, seed: int, sampling: str) -> FloatArray:
    """``(n_points, dimension)`` uniforms in [0, 1): randomised Sobol' points or i.i.d. draws.

    ``"sobol"`` takes the Sobol' sequence and applies a random digital shift (an XOR of each
    coordinate's 30 bits with a random mask) plus a random offset inside the finest cell.
    Each point is then exactly uniform on the cube, like an i.i.d. draw, so samples built
    from it follow the same distribution; the shift keeps the sequence's net structure (every
    dyadic box holds its share of points), so the points cover the cube far more evenly than
    independent draws, which is what lowers the variance of the surrogate's weights. The
    unshifted sequence is computed once per shape and cached.

    Args:
        n_points: How many points.
        dimension: Coordinates per point.
        seed: Seed of the shift (or of the draws).
        sampling: ``"sobol"`` or ``"random"``.
    """
    rng = np.random.default_rng(seed)
    if sampling == "random" or dimension > _SOBOL_MAX_DIMENSION or n_points == 0:
        return rng.random((n_points, dimension))
    digits = _sobol_digits(n_points, dimension)
    mask = rng.integers(0, 2**_SOBOL_BITS, size=dimension, dtype=np.int64)
    offset = rng.random(dimension)
    return ((digits ^ mask) + offset) * 2.0**-_SOBOL_BITS


_SOBOL_BITS: Final = 30
"""Bits per coordinate of scipy's Sobol' points."""

_SOBOL_MAX_DIMENSION: Final = 21_201
"""The direction numbers scipy ships cover this many dimensions."""


@functools.lru_cache(maxsize=16)
def _sobol_digits(n_points: int, dimension: int) -> npt.NDArray[np.int64]:
    """The first ``n_points`` unscrambled Sobol' points as 30-bit integers (read-only)."""
    engine = qmc.Sobol(dimension, scramble=False, bits=_SOBOL_BITS)
    # Drawing a power of two first keeps scipy from warning about the sequence's balance;
    # the rest simply continues the sequence.
    head = engine.random_base2(n_points.bit_length() - 1)
    points = np.vstack([head, engine.random(n_points - head.shape[0])])
    digits = np.rint(points * 2.0**_SOBOL_BITS).astype(np.int64)
    digits.flags.writeable = False
    return digits
