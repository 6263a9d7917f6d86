"""LIME for images: which superpixels drive a prediction (lime's ``LimeImageExplainer``).

The image is cut into superpixels by scikit-image (quickshift with lime's settings, or
SLIC). A perturbed image keeps each superpixel with probability 1/2 and fills the hidden ones
with their own mean colour (or a fixed ``hide_color``); its weight is lime's exponential
kernel (width 0.25) of the cosine distance between its on/off vector and the all-on vector,
``1 - sqrt(on / n_segments)``. Perturbed images are built a batch at a time with one
vectorised ``where`` over the segment map and handed to the model in batches.

With ``sampling="sobol"`` the on/off pattern is the leading bit of randomised Sobol' points
(see :func:`._surrogate.uniform_points`): each segment is still on with probability 1/2,
independently of the others within a sample, but across samples the patterns are balanced
like a fractional factorial design, so the segment weights vary less with the seed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError

from ._surrogate import (
    SurrogateFit,
    SurrogateSettings,
    build_explanation,
    choose_outputs,
    exponential_kernel,
    fit_surrogate,
    model_outputs,
    output_names,
    uniform_points,
)
from .contract import check_choice, check_int, invalid_parameter
from .models import Explanation, ExplanationType, FloatArray

ImagePredictFn = Callable[[npt.NDArray[Any]], npt.ArrayLike]
SegmentMap = npt.NDArray[np.intp]

_OWNER: Final = "LimeImage"
SEGMENTATIONS: Final = ("quickshift", "slic")


def _positive(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise invalid_parameter(name, _OWNER, "a finite float > 0", value)
    return float(value)


def _as_image(image: object, owner: str) -> npt.NDArray[Any]:
    array = np.asarray(image)
    if array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
        raise InvalidError(
            f"The 'image' parameter of {owner} must be an (H, W) or (H, W, C) array. "
            f"Got shape {array.shape} instead.",
            field="image",
        )
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        raise InvalidError(
            f"The 'image' parameter of {owner} must hold numbers. Got dtype {array.dtype}.",
            field="image",
        )
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise InvalidError(
            f"The 'image' parameter of {owner} must not contain NaN or infinite values.",
            field="image",
        )
    return array


class LimeImage:
    """LIME explanations of an image model: a weight per superpixel.

    Args:
        segmentation: ``"quickshift"`` (lime's default) or ``"slic"``.
        n_segments: Approximate number of superpixels for SLIC.
        compactness: SLIC's balance of colour and space proximity.
        kernel_size: Quickshift's Gaussian kernel width (lime: 4).
        max_dist: Quickshift's cut-off distance (lime: 200).
        ratio: Quickshift's balance of colour and space proximity (lime: 0.2).
        n_samples: Perturbed images per explanation, the original included (lime: 1000).
        hide_color: Fill of hidden superpixels: None for each superpixel's mean colour, or
            a constant (a number, or one value per channel).
        kernel_width: Width of the exponential kernel on cosine distance (lime: 0.25).
        feature_selection: ``"auto"``, ``"forward"``, ``"highest_weights"`` or ``"none"``.
        n_features: Superpixels an explanation may use; all of them when None (lime's
            100000).
        batch_size: Perturbed images per call of the model.
        seed: Seed of the sampling.
        segmentation_seed: Seed of quickshift's tie-breaking noise, apart from ``seed`` so
            that explanations under different seeds share their superpixels.
        mode: ``"classification"`` (the model returns class probabilities) or
            ``"regression"``.
        sampling: ``"sobol"`` (randomised Sobol' points) or ``"random"`` (as lime).

    Raises:
        InvalidError: On a bad parameter.
    """

    def __init__(
        self,
        *,
        segmentation: str = "quickshift",
        n_segments: int = 100,
        compactness: float = 10.0,
        kernel_size: float = 4.0,
        max_dist: float = 200.0,
        ratio: float = 0.2,
        n_samples: int = 1000,
        hide_color: float | Sequence[float] | None = None,
        kernel_width: float = 0.25,
        feature_selection: str = "auto",
        n_features: int | None = None,
        batch_size: int = 100,
        seed: int = 0,
        segmentation_seed: int = 0,
        mode: str = "classification",
        sampling: str = "sobol",
    ) -> None:
        self.settings = SurrogateSettings.check(
            _OWNER,
            n_samples=n_samples,
            n_features=100_000 if n_features is None else n_features,
            feature_selection=feature_selection,
            mode=mode,
            sampling=sampling,
            seed=seed,
        )
        self.segmentation = check_choice(segmentation, "segmentation", _OWNER, SEGMENTATIONS)
        self.n_segments = check_int(n_segments, "n_segments", _OWNER, minimum=1)
        self.compactness = _positive(compactness, "compactness")
        self.kernel_size = _positive(kernel_size, "kernel_size")
        self.max_dist = _positive(max_dist, "max_dist")
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise invalid_parameter("ratio", _OWNER, "a float in [0, 1]", ratio)
        self.ratio = float(ratio)
        self.hide_color = self._check_hide_color(hide_color)
        self.kernel_width = _positive(kernel_width, "kernel_width")
        self.batch_size = check_int(batch_size, "batch_size", _OWNER, minimum=1)
        self.segmentation_seed = check_int(
            segmentation_seed, "segmentation_seed", _OWNER, minimum=0
        )

    @staticmethod
    def _check_hide_color(value: object) -> FloatArray | None:
        if value is None:
            return None
        try:
            colour = np.atleast_1d(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            colour = np.array([np.nan])
        if colour.ndim != 1 or colour.size == 0 or not np.all(np.isfinite(colour)):
            raise invalid_parameter(
                "hide_color", _OWNER, "None, a number, or one number per channel", value
            )
        return colour

    def with_seed(self, seed: int) -> LimeImage:
        """The same explainer with another seed."""
        clone = copy.copy(self)
        clone.settings = SurrogateSettings.check(_OWNER, **{**self.settings.__dict__, "seed": seed})
        return clone

    def segment(self, image: npt.ArrayLike) -> SegmentMap:
        """Superpixels of ``image``, labelled ``0..n_segments - 1``.

        Args:
            image: ``(H, W)`` or ``(H, W, C)``.

        Returns:
            ``(H, W)`` segment labels.
        """
        from skimage import color, segmentation

        # scikit-image's functions are untyped; call them through plain callables.
        gray2rgb: Callable[..., npt.NDArray[Any]] = color.gray2rgb
        quickshift: Callable[..., npt.NDArray[Any]] = segmentation.quickshift
        slic: Callable[..., npt.NDArray[Any]] = segmentation.slic
        array = _as_image(image, "LimeImage.segment")
        if self.segmentation == "quickshift":
            rgb = (
                array[..., :3]
                if array.ndim == 3 and array.shape[2] >= 3
                else gray2rgb(_gray(array))
            )
            labels = quickshift(
                rgb,
                kernel_size=self.kernel_size,
                max_dist=self.max_dist,
                ratio=self.ratio,
                rng=self.segmentation_seed,
            )
        else:
            labels = slic(
                array,
                n_segments=self.n_segments,
                compactness=self.compactness,
                start_label=0,
                channel_axis=-1 if array.ndim == 3 else None,
            )
        # Consecutive labels, whatever the algorithm returned.
        _, consecutive = np.unique(labels, return_inverse=True)
        return np.asarray(consecutive.reshape(labels.shape), dtype=np.intp)

    def fill_image(self, image: npt.ArrayLike, segments: SegmentMap) -> npt.NDArray[Any]:
        """The image hidden superpixels are taken from: mean colours, or ``hide_color``.

        Args:
            image: ``(H, W)`` or ``(H, W, C)``.
            segments: Its segment map.

        Returns:
            An array of the image's shape and dtype.
        """
        array = _as_image(image, "LimeImage.fill_image")
        if self.hide_color is not None:
            filled = np.empty(array.shape, dtype=np.float64)
            filled[...] = self.hide_color if array.ndim == 3 else self.hide_color[0]
            return _cast_like(filled, array)
        pixels = array.reshape(segments.size, -1).astype(np.float64)
        flat = segments.ravel()
        counts = np.bincount(flat)
        sums = np.stack(
            [np.bincount(flat, weights=pixels[:, c]) for c in range(pixels.shape[1])], axis=1
        )
        means = sums / counts[:, None]
        return _cast_like(means[flat].reshape(array.shape), array)

    def explain(
        self,
        predict_fn: ImagePredictFn,
        image: npt.ArrayLike,
        *,
        labels: Sequence[int] | None = None,
        top_labels: int | None = None,
        segments: SegmentMap | None = None,
    ) -> Explanation:
        """Explain the model's prediction for one image.

        Args:
            predict_fn: Takes a batch ``(n, H, W[, C])`` of images (the input's dtype);
                returns ``(n, n_classes)`` probabilities in classification mode, ``(n,)``
                or ``(n, K)`` otherwise.
            image: ``(H, W)`` or ``(H, W, C)``.
            labels: Outputs (classes) to explain; all of them when None.
            top_labels: Explain the ``top_labels`` most probable classes instead.
            segments: A precomputed segment map to use instead of :meth:`segment`.

        Returns:
            An explanation with ``values`` of shape ``(1, n_segments, n_outputs)``;
            ``extras["segments"]`` holds the segment map, plus the surrogate's ``score``,
            ``intercept``, ``local_prediction``, ``selected_features`` and ``labels``.
        """
        start = time.perf_counter()
        owner = "LimeImage.explain"
        array = _as_image(image, owner)
        segment_map = (
            self.segment(array) if segments is None else self._check_segments(segments, array)
        )
        n_segments = int(segment_map.max()) + 1
        fill = self.fill_image(array, segment_map)
        settings = self.settings
        uniforms = uniform_points(
            settings.n_samples - 1, n_segments, settings.seed, settings.sampling
        )
        on = np.vstack([np.ones((1, n_segments), dtype=bool), uniforms < 0.5])
        outputs = self._predict(predict_fn, array, fill, segment_map, on, owner)
        chosen = choose_outputs(outputs[0], labels, top_labels, owner)
        data = on.astype(np.float64)
        distances = 1.0 - np.sqrt(data.sum(axis=1) / n_segments)
        fit: SurrogateFit = fit_surrogate(
            data,
            outputs[:, chosen],
            exponential_kernel(distances, self.kernel_width),
            n_features=settings.n_features,
            feature_selection=settings.feature_selection,
        )
        return build_explanation(
            ExplanationType.LIME_IMAGE,
            [fit],
            outputs[:1, chosen],
            feature_names=tuple(f"segment_{i}" for i in range(n_segments)),
            outputs=output_names(settings.mode, chosen, outputs.shape[1]),
            labels=chosen,
            parameters=self._parameters(),
            seed=settings.seed,
            started=start,
            extras={"segments": segment_map},
        )

    def mask(
        self,
        explanation: Explanation,
        label: int,
        *,
        positive_only: bool = True,
        negative_only: bool = False,
        num_features: int = 5,
        min_weight: float = 0.0,
    ) -> npt.NDArray[np.int8]:
        """The top superpixels of an explanation as a pixel mask (lime's ``get_image_and_mask``).

        Args:
            explanation: An image explanation from :meth:`explain`.
            label: The output (class index) whose weights to use.
            positive_only: Only superpixels that push the output up.
            negative_only: Only superpixels that push it down.
            num_features: How many superpixels at most, strongest first.
            min_weight: Ignore superpixels whose ``|weight|`` is not above this.

        Returns:
            ``(H, W)`` int8: 1 on the chosen superpixels (with neither flag: 1 for positive
            and -1 for negative weights), 0 elsewhere.

        Raises:
            InvalidError: If the explanation is not an image one, does not cover ``label``,
                or both flags are set.
        """
        owner = "LimeImage.mask"
        segments = explanation.extras.get("segments")
        if explanation.type is not ExplanationType.LIME_IMAGE or segments is None:
            raise invalid_parameter(
                "explanation", owner, "a LIME image explanation", explanation.type
            )
        explained = tuple(explanation.extras.get("labels", ()))
        if label not in explained:
            raise invalid_parameter(
                "label", owner, f"one of the explained labels {explained}", label
            )
        if positive_only and negative_only:
            raise invalid_parameter(
                "negative_only", owner, "False when 'positive_only' is True", negative_only
            )
        count = check_int(num_features, "num_features", owner, minimum=1)
        weights = explanation.values[0, :, explained.index(label)]
        order = np.argsort(-np.abs(weights), kind="stable")
        signs = np.zeros(weights.size, dtype=np.int8)
        if positive_only:
            chosen = order[weights[order] > max(min_weight, 0.0)][:count]
            signs[chosen] = 1
        elif negative_only:
            chosen = order[(weights[order] < 0) & (np.abs(weights[order]) > min_weight)][:count]
            signs[chosen] = 1
        else:
            # Lime takes the strongest first, then drops the ones under min_weight.
            chosen = order[:count]
            chosen = chosen[np.abs(weights[chosen]) >= min_weight]
            signs[chosen] = np.where(weights[chosen] < 0, -1, 1)
        return np.asarray(signs[np.asarray(segments)], dtype=np.int8)

    # ------------------------------------------------------------------ internals

    def _check_segments(self, segments: object, image: npt.NDArray[Any]) -> SegmentMap:
        array = np.asarray(segments)
        if array.shape != image.shape[:2] or not np.issubdtype(array.dtype, np.integer):
            raise invalid_parameter(
                "segments",
                "LimeImage.explain",
                f"an integer array of shape {image.shape[:2]}",
                f"array of shape {array.shape} and dtype {array.dtype}",
            )
        _, consecutive = np.unique(array, return_inverse=True)
        return np.asarray(consecutive.reshape(array.shape), dtype=np.intp)

    def _predict(
        self,
        predict_fn: ImagePredictFn,
        image: npt.NDArray[Any],
        fill: npt.NDArray[Any],
        segments: SegmentMap,
        on: npt.NDArray[np.bool_],
        owner: str,
    ) -> FloatArray:
        """The model's outputs on every perturbed image, built and evaluated in batches."""
        chunks: list[FloatArray] = []
        channel = (...,) if image.ndim == 2 else (..., None)
        for begin in range(0, on.shape[0], self.batch_size):
            keep = on[begin : begin + self.batch_size][:, segments]
            batch = np.where(keep[channel], image, fill)
            chunks.append(
                model_outputs(predict_fn(batch), batch.shape[0], self.settings.mode, owner)
            )
        widths = {chunk.shape[1] for chunk in chunks}
        if len(widths) != 1:
            raise InvalidError(
                f"The prediction function given to {owner} returned a different number of "
                f"outputs across batches: {sorted(widths)}.",
                field="predict_fn",
            )
        return np.vstack(chunks)

    def _parameters(self) -> dict[str, Any]:
        return {
            **self.settings.as_parameters(),
            "segmentation": self.segmentation,
            "n_segments": self.n_segments,
            "compactness": self.compactness,
            "kernel_size": self.kernel_size,
            "max_dist": self.max_dist,
            "ratio": self.ratio,
            "hide_color": None if self.hide_color is None else self.hide_color.tolist(),
            "kernel_width": self.kernel_width,
            "batch_size": self.batch_size,
            "segmentation_seed": self.segmentation_seed,
        }


def _gray(image: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return image if image.ndim == 2 else image[..., 0]


def _cast_like(values: FloatArray, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if np.issubdtype(like.dtype, np.integer) or np.issubdtype(like.dtype, np.bool_):
        return np.rint(values).astype(like.dtype)
    return values.astype(like.dtype)
