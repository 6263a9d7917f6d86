"""Plots render valid PNG and SVG of the expected size, and draw what they claim."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread
from matplotlib.patches import Rectangle

from synapsenet.errors import InvalidError
from synapsenet.services.explainability import plots
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    ExplanationType,
    GlobalImportance,
)

NAMES = ("a", "b", "c", "d")


def importance() -> GlobalImportance:
    values = np.array([0.2, 1.5, 0.05, 0.7])
    return GlobalImportance(
        method=AggregationMethod.MEAN_ABS,
        feature_names=NAMES,
        importance=values,
        ci_lower=values * 0.8,
        ci_upper=values * 1.2,
        confidence_level=0.95,
        n_explanations=50,
    )


def explanation(n: int = 30) -> Explanation:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n, 4, 1)) * np.array([0.1, 2.0, 0.5, 1.0])[None, :, None]
    base = np.full((n, 1), 0.5)
    return Explanation(
        type=ExplanationType.SHAP_TREE,
        values=values,
        base_values=base,
        predictions=base + values.sum(axis=1),
        feature_names=NAMES,
    )


def test_importance_bars_are_ordered_most_important_on_top() -> None:
    figure = plots.importance_figure(importance())
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    # barh draws bottom-up: the last label is the top bar.
    assert labels == ["c", "a", "d", "b"]
    widths = [patch.get_width() for patch in axes.patches if isinstance(patch, Rectangle)]
    assert widths == sorted(widths)
    assert widths[-1] == pytest.approx(1.5)


def test_importance_png_has_the_figure_size() -> None:
    data = plots.importance_bar(importance(), "png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    height, width = imread(io.BytesIO(data)).shape[:2]
    assert width == 700
    assert height == pytest.approx(100 * max(2.5, 0.4 * 4 + 1.2), abs=1)


def test_max_features_keeps_the_most_important() -> None:
    axes = plots.importance_figure(importance(), max_features=2).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["d", "b"]


def test_svg_is_svg() -> None:
    data = plots.importance_bar(importance(), "svg")
    assert b"<svg" in data[:500]


def test_waterfall_ends_at_the_prediction() -> None:
    explained = explanation()
    figure = plots.waterfall_figure(explained, instance=3, max_features=2)
    axes = figure.axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert labels[0] == "2 other features"
    ends = [p.get_x() + p.get_width() for p in axes.patches if isinstance(p, Rectangle)]
    assert ends[-1] == pytest.approx(float(explained.predictions[3, 0]))
    assert plots.waterfall(explained, "png").startswith(b"\x89PNG")


def test_waterfall_rejects_a_missing_instance() -> None:
    with pytest.raises(InvalidError, match="instance"):
        plots.waterfall_figure(explanation(5), instance=5)


def test_beeswarm_has_one_dot_per_row_and_feature_in_importance_order() -> None:
    explained = explanation(30)
    features = np.random.default_rng(1).normal(size=(30, 4))
    axes = plots.beeswarm_figure(explained, features).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["a", "c", "d", "b"]
    assert [np.asarray(c.get_offsets()).shape[0] for c in axes.collections] == [30] * 4
    assert plots.beeswarm(explained, features, "svg").lstrip().startswith(b"<?xml")


def test_beeswarm_rejects_features_of_another_shape() -> None:
    with pytest.raises(InvalidError, match="features"):
        plots.beeswarm_figure(explanation(5), np.zeros((4, 4)))


def test_lime_image_overlay_tints_the_masked_regions() -> None:
    image = np.full((40, 60, 3), 200, dtype=np.uint8)
    mask = np.zeros((40, 60))
    mask[:20, :30] = 1
    figure = plots.lime_image_overlay_figure(image, mask)
    tint = np.asarray(figure.axes[0].images[1].get_array())
    assert tint[5, 5, 3] > 0
    assert tint[30, 50, 3] == 0
    data = plots.lime_image_overlay(image, mask, "png")
    height, width = imread(io.BytesIO(data)).shape[:2]
    assert (width, height) == (500, round(500 * 40 / 60))


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(InvalidError, match="png or svg"):
        plots.render(plots.importance_figure(importance()), "gif")  # type: ignore[arg-type]
