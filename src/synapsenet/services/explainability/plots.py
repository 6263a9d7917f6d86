"""Explanation plots as PNG or SVG bytes (matplotlib, no pyplot, no display).

Each plot has a ``*_figure`` builder returning the :class:`~matplotlib.figure.Figure` (tests
inspect its artists) and a function rendering it to bytes. Figures are built with the
object-oriented API on the Agg canvas, so plotting is thread-safe inside the server.
"""

from __future__ import annotations

import io
from typing import Final, Literal

import matplotlib

matplotlib.use("Agg")

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.models import Explanation, FloatArray, GlobalImportance

ImageFormat = Literal["png", "svg"]

MEDIA_TYPES: Final[dict[str, str]] = {"png": "image/png", "svg": "image/svg+xml"}
POSITIVE: Final = "#d62728"
NEGATIVE: Final = "#1f77b4"
DPI: Final = 100

__all__ = [
    "MEDIA_TYPES",
    "beeswarm",
    "beeswarm_figure",
    "importance_bar",
    "importance_figure",
    "lime_image_overlay",
    "lime_image_overlay_figure",
    "render",
    "waterfall",
    "waterfall_figure",
]


def render(figure: Figure, fmt: ImageFormat = "png") -> bytes:
    """The figure as PNG or SVG bytes.

    Raises:
        InvalidError: Naming ``format`` if it is neither png nor svg.
    """
    if fmt not in MEDIA_TYPES:
        raise InvalidError(f"plots are png or svg. Got {fmt!r} instead.", field="format")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=DPI)
    return buffer.getvalue()


def _height(n_rows: int) -> float:
    return max(2.5, 0.4 * n_rows + 1.2)


def _check_output(explanation: Explanation, output: int) -> None:
    if not 0 <= output < explanation.n_outputs:
        raise InvalidError(
            f"output must be in [0, {explanation.n_outputs}). Got {output} instead.",
            field="output",
        )


# ---------------------------------------------------------------------- global importance


def importance_figure(
    importance: GlobalImportance, *, max_features: int = 20, width: float = 7.0
) -> Figure:
    """Horizontal bars of global importance, most important on top, with CI whiskers.

    Args:
        importance: The aggregated importance.
        max_features: Bars shown (the most important ones).
        width: Figure width in inches (100 px each).
    """
    order = np.argsort(-importance.importance, kind="stable")[:max_features]
    shown = order[::-1]  # barh draws bottom-up; the most important goes on top
    values = importance.importance[shown]
    lower = np.maximum(values - importance.ci_lower[shown], 0.0)
    upper = np.maximum(importance.ci_upper[shown] - values, 0.0)
    figure = Figure(figsize=(width, _height(len(shown))))
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    axes.barh(
        positions,
        values,
        xerr=np.vstack([lower, upper]),
        color=NEGATIVE,
        capsize=3,
        ecolor="#444444",
    )
    axes.set_yticks(positions, [importance.feature_names[i] for i in shown])
    level = round(importance.confidence_level * 100)
    axes.set_xlabel(f"{importance.method.value} importance ({level}% bootstrap CI)")
    axes.set_title(f"Global importance over {importance.n_explanations} explanations")
    figure.tight_layout()
    return figure


def importance_bar(
    importance: GlobalImportance, fmt: ImageFormat = "png", *, max_features: int = 20
) -> bytes:
    """:func:`importance_figure` rendered to bytes."""
    return render(importance_figure(importance, max_features=max_features), fmt)


# ---------------------------------------------------------------------- waterfall


def waterfall_figure(
    explanation: Explanation,
    *,
    instance: int = 0,
    output: int = 0,
    max_features: int = 10,
    width: float = 7.0,
) -> Figure:
    """How one prediction is built from the base value, largest contributions on top.

    Features beyond ``max_features`` are summed into one "other features" bar.

    Raises:
        InvalidError: Naming ``instance`` or ``output`` when out of range.
    """
    if not 0 <= instance < explanation.n_instances:
        raise InvalidError(
            f"instance must be in [0, {explanation.n_instances}). Got {instance} instead.",
            field="instance",
        )
    _check_output(explanation, output)
    values = explanation.values[instance, :, output]
    base = float(explanation.base_values[instance, output])
    order = np.argsort(-np.abs(values), kind="stable")
    labels = [explanation.feature_names[i] for i in order[:max_features]]
    contributions = [float(values[i]) for i in order[:max_features]]
    if len(order) > max_features:
        labels.append(f"{len(order) - max_features} other features")
        contributions.append(float(values[order[max_features:]].sum()))
    # Drawn bottom-up from the base value: the smallest contribution first.
    labels, contributions = labels[::-1], contributions[::-1]
    starts = base + np.concatenate([[0.0], np.cumsum(contributions)[:-1]])
    figure = Figure(figsize=(width, _height(len(labels))))
    axes = figure.add_subplot()
    positions = np.arange(len(labels))
    colors = [POSITIVE if c >= 0 else NEGATIVE for c in contributions]
    axes.barh(positions, contributions, left=starts, color=colors)
    axes.set_yticks(positions, labels)
    final = base + float(np.sum(contributions))
    axes.axvline(base, color="#888888", linestyle="--", linewidth=1)
    axes.axvline(final, color="#222222", linewidth=1)
    axes.set_xlabel(f"model output: base {base:.4g} -> {final:.4g}")
    axes.set_title(
        f"{explanation.type.value}, instance {instance}, {explanation.output_names[output]}"
    )
    figure.tight_layout()
    return figure


def waterfall(
    explanation: Explanation,
    fmt: ImageFormat = "png",
    *,
    instance: int = 0,
    output: int = 0,
    max_features: int = 10,
) -> bytes:
    """:func:`waterfall_figure` rendered to bytes."""
    figure = waterfall_figure(
        explanation, instance=instance, output=output, max_features=max_features
    )
    return render(figure, fmt)


# ---------------------------------------------------------------------- beeswarm


def beeswarm_figure(
    explanation: Explanation,
    features: FloatArray | None = None,
    *,
    output: int = 0,
    max_features: int = 20,
    seed: int = 0,
    width: float = 7.0,
) -> Figure:
    """One dot per row and feature at its attribution, features by mean |value| (top first).

    Args:
        explanation: Many rows' explanations.
        features: The explained rows ``(n, M)``; dots are coloured by feature value
            (low blue, high red) when given, grey otherwise.
        output: Which output (class).
        max_features: Features shown.
        seed: Seed of the vertical jitter (same seed, same picture).
        width: Figure width in inches.

    Raises:
        InvalidError: A feature matrix of the wrong shape, or an output out of range.
    """
    _check_output(explanation, output)
    values = explanation.values[:, :, output]
    if features is not None and features.shape != values.shape:
        raise InvalidError(
            f"features must have shape {values.shape}. Got {features.shape} instead.",
            field="features",
        )
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:max_features]
    shown = order[::-1]
    rng = np.random.default_rng(seed)
    figure = Figure(figsize=(width, _height(len(shown))))
    axes = figure.add_subplot()
    for position, feature in enumerate(shown):
        column = values[:, feature]
        jitter = rng.uniform(-0.3, 0.3, size=column.shape[0])
        if features is None:
            axes.scatter(column, position + jitter, s=8, color="#777777")
            continue
        raw = features[:, feature]
        low, high = np.nanpercentile(raw, [5, 95]) if np.isfinite(raw).any() else (0.0, 1.0)
        scaled = np.clip((raw - low) / (high - low if high > low else 1.0), 0.0, 1.0)
        axes.scatter(
            column,
            position + jitter,
            s=8,
            c=np.nan_to_num(scaled, nan=0.5),
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
        )
    axes.axvline(0.0, color="#888888", linewidth=1)
    axes.set_yticks(np.arange(len(shown)), [explanation.feature_names[i] for i in shown])
    axes.set_xlabel(f"attribution ({explanation.type.value}, {explanation.output_names[output]})")
    axes.set_title(f"Attributions of {explanation.n_instances} rows")
    figure.tight_layout()
    return figure


def beeswarm(
    explanation: Explanation,
    features: FloatArray | None = None,
    fmt: ImageFormat = "png",
    *,
    output: int = 0,
    max_features: int = 20,
) -> bytes:
    """:func:`beeswarm_figure` rendered to bytes."""
    figure = beeswarm_figure(explanation, features, output=output, max_features=max_features)
    return render(figure, fmt)


# ---------------------------------------------------------------------- LIME image


def lime_image_overlay_figure(
    image: npt.ArrayLike, mask: npt.ArrayLike, *, alpha: float = 0.45, width: float = 5.0
) -> Figure:
    """An image with the regions LIME found most important tinted.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``; integers 0-255 or floats in [0, 1].
        mask: ``(H, W)``; positive where a region supports the prediction, negative where
            it speaks against it, zero elsewhere (LIME image's mask of the top regions).
        alpha: Opacity of the tint.
        width: Figure width in inches (height follows the image's aspect ratio).

    Raises:
        InvalidError: When the mask does not cover the image.
    """
    pixels = np.asarray(image)
    regions = np.asarray(mask, dtype=np.float64)
    if pixels.ndim not in (2, 3) or regions.shape != pixels.shape[:2]:
        raise InvalidError(
            f"mask must have the image's height and width {pixels.shape[:2]}. "
            f"Got {regions.shape} instead.",
            field="mask",
        )
    if pixels.dtype.kind in "iu":
        pixels = pixels.astype(np.float64) / 255.0
    height, width_px = regions.shape
    figure = Figure(figsize=(width, width * height / max(width_px, 1)))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.imshow(np.clip(pixels, 0.0, 1.0), cmap="gray" if pixels.ndim == 2 else None)
    tint = np.zeros((height, width_px, 4))
    tint[regions > 0] = (0.0, 0.8, 0.0, alpha)
    tint[regions < 0] = (0.85, 0.0, 0.0, alpha)
    axes.imshow(tint)
    axes.set_axis_off()
    return figure


def lime_image_overlay(
    image: npt.ArrayLike, mask: npt.ArrayLike, fmt: ImageFormat = "png", *, alpha: float = 0.45
) -> bytes:
    """:func:`lime_image_overlay_figure` rendered to bytes."""
    return render(lime_image_overlay_figure(image, mask, alpha=alpha), fmt)
