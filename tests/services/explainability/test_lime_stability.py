"""LIMEExplainer: choosing the explainer by data kind, stability across seeds, shared contract."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import kendalltau
from sklearn.datasets import make_regression
from sklearn.ensemble import GradientBoostingRegressor

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.lime_explainer import (
    LIMEExplainer,
    stability,
    stability_report,
)
from synapsenet.services.explainability.lime_image import LimeImage
from synapsenet.services.explainability.lime_tabular import LimeTabular
from synapsenet.services.explainability.lime_text import LimeText
from synapsenet.services.explainability.models import Explanation, ExplanationType

FloatArray = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def boosted() -> tuple[FloatArray, GradientBoostingRegressor]:
    """A realistic tabular setup: boosted trees on 20 informative features."""
    features, y = make_regression(
        n_samples=1000, n_features=20, n_informative=20, noise=10.0, random_state=0
    )
    return features, GradientBoostingRegressor(random_state=0).fit(features, y)


def keyword(texts: list[str]) -> FloatArray:
    positive = np.array([0.8 if "good" in t.split() else 0.3 for t in texts])
    return np.column_stack([1.0 - positive, positive])


def bright_corner(batch: npt.NDArray[Any]) -> FloatArray:
    level = batch[:, :8, :8].astype(float).mean(axis=tuple(range(1, batch.ndim))) / 255.0
    return np.column_stack([1.0 - level, level])


def small_image() -> npt.NDArray[np.uint8]:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:8, :8] = 220
    image[8:, 8:] = (40, 120, 200)
    return image


# ---------------------------------------------------------------------- stability


def test_seeds_agree_on_the_ranking_of_a_boosted_model(
    boosted: tuple[FloatArray, GradientBoostingRegressor],
) -> None:
    features, model = boosted
    explainer = LIMEExplainer(features, mode="regression", n_features=20)
    reports = [explainer.stability(model.predict, features[i], k=5) for i in range(3)]
    taus = [report.kendall_tau for report in reports]
    assert np.mean(taus) >= 0.9
    assert min(report.top_k_overlap for report in reports) >= 0.9
    assert all(report.n_runs == 10 and report.k == 5 for report in reports)


def test_sobol_sampling_is_more_stable_than_independent_draws(
    boosted: tuple[FloatArray, GradientBoostingRegressor],
) -> None:
    features, model = boosted
    taus = {}
    for sampling in ("sobol", "random"):
        explainer = LIMEExplainer(features, mode="regression", n_features=20, sampling=sampling)
        taus[sampling] = np.mean(
            [explainer.stability(model.predict, features[i]).kendall_tau for i in range(3)]
        )
    assert taus["sobol"] > taus["random"] + 0.05


def test_report_summarises_the_runs(boosted: tuple[FloatArray, GradientBoostingRegressor]) -> None:
    features, model = boosted
    explainer = LimeTabular(features, mode="regression", n_samples=800, n_features=20)
    seeds = (3, 5, 8, 13)
    runs = np.stack(
        [explainer.with_seed(s).explain(model.predict, features[0]).values[0, :, 0] for s in seeds]
    )
    report = stability(
        lambda row, seed: explainer.with_seed(seed).explain(model.predict, row),
        features[0],
        seeds,
        k=4,
    )
    np.testing.assert_allclose(report.mean, runs.mean(axis=0))
    np.testing.assert_allclose(report.std, runs.std(axis=0, ddof=1))
    np.testing.assert_allclose(report.coefficient_of_variation, report.std / np.abs(report.mean))
    pairwise = [
        kendalltau(np.abs(a), np.abs(b)).statistic for a, b in itertools.combinations(runs, 2)
    ]
    assert report.kendall_tau == pytest.approx(np.mean(pairwise))
    tops = [set(np.argsort(-np.abs(run))[:4]) for run in runs]
    overlap = np.mean([len(a & b) / 4 for a, b in itertools.combinations(tops, 2)])
    assert report.top_k_overlap == pytest.approx(overlap)
    assert report.feature_names == tuple(f"x{i}" for i in range(20))


def test_zero_mean_features_get_zero_or_infinite_variation() -> None:
    weights = np.array([[0.0, 1.0, -1.0], [0.0, 2.0, 1.0]])
    report = stability_report(weights, ("a", "b", "c"), k=5)
    assert report.coefficient_of_variation[0] == 0.0
    assert np.isinf(report.coefficient_of_variation[2])
    assert report.k == 3


def test_stability_rejects_bad_seeds() -> None:
    def never(instance: object, seed: int) -> Explanation:
        raise AssertionError("not called")

    with pytest.raises(InvalidError, match="at least two distinct seeds"):
        stability(never, "x", seeds=(1,))
    with pytest.raises(InvalidError, match="at least two distinct seeds"):
        stability(never, "x", seeds=(1, 1, 2))
    with pytest.raises(InvalidError, match="'seeds'"):
        stability(never, "x", seeds=(1, -2))


def test_stability_of_text_and_images_through_the_facade() -> None:
    text_report = LIMEExplainer(n_samples=300).stability(
        keyword, "a good day out", seeds=(0, 1, 2), output=1
    )
    assert text_report.feature_names == ("a", "good", "day", "out")
    assert int(np.argmax(np.abs(text_report.mean))) == 1
    image_report = LIMEExplainer(kind="image", n_samples=200, hide_color=0).stability(
        bright_corner, small_image(), seeds=(0, 1), output=1
    )
    assert image_report.n_runs == 2
    with pytest.raises(InvalidError, match="'output'"):
        LIMEExplainer(n_samples=50).stability(keyword, "good", seeds=(0, 1), output=5)


# ---------------------------------------------------------------------- the facade


def test_facade_chooses_the_explainer_by_data_kind(
    boosted: tuple[FloatArray, GradientBoostingRegressor],
) -> None:
    features, model = boosted
    tabular = LIMEExplainer(features, mode="regression", n_samples=300)
    assert tabular.explain(model.predict, features[0]).type is ExplanationType.LIME_TABULAR
    many = tabular.explain(model.predict, features[:3])
    assert many.values.shape == (3, 20, 1)
    assert isinstance(tabular.explainer("tabular"), LimeTabular)
    media = LIMEExplainer(n_samples=100)
    assert media.explain(keyword, "good film").type is ExplanationType.LIME_TEXT
    assert media.explain(bright_corner, small_image()).type is ExplanationType.LIME_IMAGE
    assert isinstance(media.explainer("text"), LimeText)
    assert isinstance(media.explainer("image"), LimeImage)
    assert media.kind_of([[1, 2], [3, 4]]) == "image"


def test_facade_passes_options_and_seed_through(
    boosted: tuple[FloatArray, GradientBoostingRegressor],
) -> None:
    features, model = boosted
    facade = LIMEExplainer(
        features, mode="regression", seed=4, n_samples=400, discretize="decile", n_features=3
    )
    explanation = facade.explain(model.predict, features[1])
    direct = LimeTabular(
        features, mode="regression", seed=4, n_samples=400, discretize="decile", n_features=3
    ).explain(model.predict, features[1])
    assert np.array_equal(explanation.values, direct.values)
    assert explanation.parameters["discretize"] == "decile"
    assert np.count_nonzero(explanation.values) == 3


def test_facade_rejects_what_it_cannot_handle() -> None:
    with pytest.raises(InvalidError, match="nsamples") as caught:
        LIMEExplainer(nsamples=10)
    assert caught.value.field == "nsamples"
    with pytest.raises(InvalidError, match="segmentation"):
        LIMEExplainer(np.ones((5, 2)), kind="tabular", segmentation="slic")
    with pytest.raises(InvalidError, match="'kind'"):
        LIMEExplainer(kind="audio")
    with pytest.raises(InvalidError, match="'mode'"):
        LIMEExplainer(mode="ranking")
    with pytest.raises(InvalidError, match="training_data"):
        LIMEExplainer(kind="tabular")
    with pytest.raises(InvalidError, match="cannot tell"):
        LIMEExplainer().explain(keyword, 3.5)
    with pytest.raises(InvalidError, match="None for several rows"):
        LIMEExplainer(np.random.default_rng(0).random((20, 2)), n_samples=20).explain(
            lambda rows: np.column_stack([rows[:, 0], 1 - rows[:, 0]]),
            np.random.default_rng(1).random((3, 2)),
            top_labels=1,
        )


# ---------------------------------------------------------------------- shared contract

Case = tuple[Callable[[int], Any], Callable[[Any], Explanation], int]


def _tabular_case(seed: int) -> Explanation:
    data = np.random.default_rng(0).standard_normal((200, 4))
    explainer = LimeTabular(data, mode="regression", n_samples=300, seed=seed)
    return explainer.explain(lambda rows: rows[:, 0] - 2 * rows[:, 3], data[0])


def _text_case(seed: int) -> Explanation:
    return LimeText(n_samples=300, seed=seed).explain(keyword, "good and bad and good")


def _image_case(seed: int) -> Explanation:
    return LimeImage(n_samples=100, seed=seed, hide_color=0).explain(bright_corner, small_image())


CASES: dict[str, Callable[[int], Explanation]] = {
    "tabular": _tabular_case,
    "text": _text_case,
    "image": _image_case,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_explainer_is_deterministic_under_a_seed(name: str) -> None:
    explain = CASES[name]
    first, again, other = explain(11), explain(11), explain(12)
    assert np.array_equal(first.values, again.values)
    assert np.array_equal(first.base_values, again.base_values)
    assert not np.array_equal(first.values, other.values)
    assert first.seed == 11


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_explainer_reports_consistent_shapes(name: str) -> None:
    explanation = CASES[name](0)
    n_instances, n_features, n_outputs = explanation.values.shape
    assert n_instances == 1
    assert len(explanation.feature_names) == n_features
    assert len(explanation.output_names) == n_outputs
    assert explanation.base_values.shape == (1, n_outputs)
    assert explanation.predictions.shape == (1, n_outputs)
    for key in ("score", "intercept", "local_prediction"):
        assert explanation.extras[key].shape == (1, n_outputs)
    assert np.all(explanation.extras["score"] <= 1.0)
    assert len(explanation.extras["selected_features"][0]) == n_outputs
    assert explanation.local_accuracy_error is None
