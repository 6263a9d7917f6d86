"""LimeImage on synthetic images whose class is decided by one region."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.lime_image import LimeImage
from synapsenet.services.explainability.models import Explanation, ExplanationType

FloatArray = npt.NDArray[np.float64]
Image = npt.NDArray[Any]


def quadrants() -> Image:
    """48x48 RGB: green top-left, red top-right, blue bottom-left, yellow bottom-right."""
    image = np.zeros((48, 48, 3), dtype=np.uint8)
    image[:24, :24] = (30, 200, 30)
    image[:24, 24:] = (200, 30, 30)
    image[24:, :24] = (30, 30, 200)
    image[24:, 24:] = (200, 200, 30)
    noise = np.random.default_rng(0).integers(0, 8, image.shape)
    return np.asarray(image + noise, dtype=np.uint8)


def green_top_left(batch: Image) -> FloatArray:
    """P(class 1) rises with the green of the top-left quadrant."""
    green = batch[:, 4:20, 4:20, 1].astype(float).mean(axis=(1, 2)) / 255.0
    positive = 1.0 / (1.0 + np.exp(-12.0 * (green - 0.4)))
    return np.column_stack([1.0 - positive, positive])


def grid(shape: tuple[int, int], cells: int) -> npt.NDArray[np.intp]:
    rows = np.arange(shape[0]) * cells // shape[0]
    columns = np.arange(shape[1]) * cells // shape[1]
    return np.asarray(rows[:, None] * cells + columns[None, :], dtype=np.intp)


@pytest.mark.parametrize("segmentation", ["quickshift", "slic"])
def test_region_deciding_the_class_gets_the_top_weight(segmentation: str) -> None:
    explainer = LimeImage(segmentation=segmentation, n_segments=8, hide_color=0, n_samples=400)
    explanation = explainer.explain(green_top_left, quadrants())
    segments = explanation.extras["segments"]
    weights = explanation.values[0, :, explanation.extras["labels"].index(1)]
    assert int(np.argmax(weights)) == segments[12, 12]
    mask = explainer.mask(explanation, 1, num_features=1)
    assert mask[12, 12] == 1
    assert mask[36, 36] == 0
    assert explanation.type is ExplanationType.LIME_IMAGE
    assert explanation.feature_names == tuple(f"segment_{i}" for i in range(segments.max() + 1))


def test_textured_region_hidden_by_its_mean_colour_loses_its_class() -> None:
    # The class depends on a texture; mean-colour filling erases texture, not colour.
    image = np.full((40, 40, 3), 90, dtype=np.uint8)
    stripes = np.where(np.arange(10) % 2 == 0, 250, 10).astype(np.uint8)
    image[0:10, 10:20, :] = stripes[None, :, None]

    def textured(batch: Image) -> FloatArray:
        contrast = batch[:, 0:10, 10:20, :].astype(float).std(axis=(1, 2, 3)) / 120.0
        return np.column_stack([1.0 - contrast, contrast])

    explainer = LimeImage(n_samples=300)
    explanation = explainer.explain(textured, image, segments=grid((40, 40), 4), labels=(1,))
    weights = explanation.values[0, :, 0]
    assert int(np.argmax(weights)) == 1  # the cell of rows 0-9, columns 10-19
    assert weights[1] == pytest.approx(textured(image[None])[0, 1], rel=0.1)
    np.testing.assert_allclose(np.delete(weights, 1), 0.0, atol=0.01 * weights[1])


def test_hidden_segments_use_their_mean_colour() -> None:
    image = quadrants()
    segments = grid(image.shape[:2], 3)
    means = np.stack(
        [image[segments == s].astype(float).mean(axis=0) for s in range(segments.max() + 1)]
    )
    batches: list[Image] = []

    def recorder(batch: Image) -> FloatArray:
        batches.append(batch.copy())
        return green_top_left(batch)

    LimeImage(n_samples=120, batch_size=50).explain(recorder, image, segments=segments)
    assert [len(b) for b in batches] == [50, 50, 20]
    everything = np.concatenate(batches)
    assert np.array_equal(everything[0], image)
    assert everything.dtype == image.dtype
    hidden_seen = 0
    for perturbed in everything[1:]:
        for s in range(segments.max() + 1):
            region = perturbed[segments == s]
            if np.array_equal(region, image[segments == s]):
                continue
            hidden_seen += 1
            np.testing.assert_array_equal(region, np.broadcast_to(np.rint(means[s]), region.shape))
    assert hidden_seen > 100


def test_hide_color_fills_with_a_constant() -> None:
    image = quadrants()
    explainer = LimeImage(hide_color=(1, 2, 3), n_samples=10)
    fill = explainer.fill_image(image, grid(image.shape[:2], 2))
    assert np.all(fill == np.array([1, 2, 3], dtype=np.uint8))


def test_grayscale_images_are_supported() -> None:
    image = quadrants()[..., 1]

    def bright_top_left(batch: Image) -> FloatArray:
        return np.asarray(batch[:, 4:20, 4:20].astype(float).mean(axis=(1, 2)) / 255.0)

    explainer = LimeImage(mode="regression", hide_color=0, n_samples=200)
    explanation = explainer.explain(bright_top_left, image, segments=grid(image.shape, 2))
    assert int(np.argmax(explanation.values[0, :, 0])) == 0
    assert explanation.output_names == ("output",)
    labels = LimeImage().segment(image)
    assert labels.shape == image.shape
    assert labels.min() == 0


def test_segments_are_consecutive_labels() -> None:
    for segmentation in ("quickshift", "slic"):
        labels = LimeImage(segmentation=segmentation, n_segments=6).segment(quadrants())
        assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))


def test_same_seed_same_explanation_other_seed_differs() -> None:
    image = quadrants()
    first = LimeImage(n_samples=150, seed=1).explain(green_top_left, image)
    again = LimeImage(n_samples=150, seed=1).explain(green_top_left, image)
    other = LimeImage(n_samples=150, seed=2).explain(green_top_left, image)
    assert np.array_equal(first.values, again.values)
    assert np.array_equal(first.extras["segments"], other.extras["segments"])
    assert not np.array_equal(first.values, other.values)


def _explanation(weights: list[float]) -> Explanation:
    segments = np.arange(len(weights)).reshape(1, -1)
    values = np.array(weights, dtype=float).reshape(1, -1, 1)
    return Explanation(
        type=ExplanationType.LIME_IMAGE,
        values=values,
        base_values=np.zeros((1, 1)),
        predictions=np.zeros((1, 1)),
        feature_names=tuple(f"segment_{i}" for i in range(len(weights))),
        extras={"segments": segments, "labels": (3,)},
    )


def test_mask_follows_lime_semantics() -> None:
    explanation = _explanation([0.5, -0.9, 0.1, -0.2, 0.3])
    explainer = LimeImage()
    assert explainer.mask(explanation, 3, num_features=2).tolist() == [[1, 0, 0, 0, 1]]
    assert explainer.mask(explanation, 3, positive_only=False, negative_only=True).tolist() == [
        [0, 1, 0, 1, 0]
    ]
    both = explainer.mask(explanation, 3, positive_only=False, num_features=3)
    assert both.tolist() == [[1, -1, 0, 0, 1]]
    weighty = explainer.mask(explanation, 3, positive_only=False, num_features=5, min_weight=0.25)
    assert weighty.tolist() == [[1, -1, 0, 0, 1]]


def test_mask_rejects_bad_requests() -> None:
    explainer = LimeImage()
    explanation = _explanation([0.5, -0.9])
    with pytest.raises(InvalidError, match="explained labels"):
        explainer.mask(explanation, 0)
    with pytest.raises(InvalidError, match="positive_only"):
        explainer.mask(explanation, 3, negative_only=True)
    tabular = Explanation(
        type=ExplanationType.LIME_TABULAR,
        values=np.zeros((1, 2, 1)),
        base_values=np.zeros((1, 1)),
        predictions=np.zeros((1, 1)),
        feature_names=("a", "b"),
    )
    with pytest.raises(InvalidError, match="LIME image explanation"):
        explainer.mask(tabular, 0)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"segmentation": "felzenszwalb"}, "segmentation"),
        ({"n_samples": 0}, "n_samples"),
        ({"kernel_width": -0.1}, "kernel_width"),
        ({"ratio": 2.0}, "ratio"),
        ({"hide_color": "black"}, "hide_color"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_segments": 0}, "n_segments"),
    ],
)
def test_bad_parameters_are_rejected(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        LimeImage(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_bad_images_are_rejected() -> None:
    explainer = LimeImage(n_samples=10)
    with pytest.raises(InvalidError, match=r"\(H, W\) or \(H, W, C\)"):
        explainer.explain(green_top_left, np.zeros(5))
    with pytest.raises(InvalidError, match="NaN"):
        explainer.explain(green_top_left, np.full((8, 8, 3), np.nan))
    with pytest.raises(InvalidError, match="integer array of shape"):
        explainer.explain(green_top_left, quadrants(), segments=np.zeros((3, 3), dtype=int))
