"""LimeText against a keyword classifier, lime's tokeniser and the lime library."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lime.lime_text import IndexedString, LimeTextExplainer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.adapters import ModelOutputError
from synapsenet.services.explainability.lime_text import IndexedText, LimeText, removal_masks
from synapsenet.services.explainability.models import ExplanationType

FloatArray = npt.NDArray[np.float64]

REVIEW = "The acting was great but the plot was boring, and the ending awful; still great fun."

CORPUS = [
    "the movie was great and fun",
    "terrible plot and awful acting",
    "great acting, great fun",
    "awful movie, boring and terrible",
    "fun fun fun, loved it",
    "boring boring plot",
    "I loved it, great cast",
    "I hated it, awful script",
    "a wonderful, moving story",
    "dull, slow and boring",
]
SENTIMENT = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]


@pytest.fixture(scope="module")
def sentiment() -> Pipeline:
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0)).fit(CORPUS, SENTIMENT)


def keyword_classifier(texts: list[str]) -> FloatArray:
    """P(positive) is high exactly when the word 'excellent' is present."""
    positive = np.array([0.9 if re.search(r"\bexcellent\b", t) else 0.2 for t in texts])
    return np.column_stack([1.0 - positive, positive])


def test_word_the_classifier_keys_on_gets_the_top_weight() -> None:
    text = "An excellent film with a clever plot and fine music"
    explanation = LimeText().explain(keyword_classifier, text, labels=(1,))
    weights = explanation.values[0, :, 0]
    top = int(np.argmax(np.abs(weights)))
    assert explanation.feature_names[top] == "excellent"
    assert weights[top] == pytest.approx(0.7, rel=0.05)
    assert explanation.extras["positions"][top] == (3,)
    assert explanation.type is ExplanationType.LIME_TEXT
    assert explanation.predictions[0, 0] == pytest.approx(0.9)


@pytest.mark.parametrize("bow", [True, False])
def test_tokenisation_matches_lime(bow: bool) -> None:
    text = "Great, great acting!  And a great ending... (really)"
    ours = IndexedText.split(text, r"\W+", bow=bow)
    reference = IndexedString(text, bow=bow)
    assert ours.features == tuple(reference.inverse_vocab)
    assert "".join(ours.tokens) == text
    for i in range(reference.num_words()):
        assert list(ours.positions[i]) == list(reference.string_position(i))


def test_top_words_agree_with_lime(sentiment: Pipeline) -> None:
    texts = [
        REVIEW,
        "I loved the wonderful cast but the script was dull",
        "Boring, slow and awful, though the music was great",
        "fun and moving, a great story with terrible pacing",
    ]
    overlaps = []
    for i, text in enumerate(texts):
        ours = LimeText(n_features=6).explain(sentiment.predict_proba, text, labels=(1,))
        mine = dict(zip(ours.feature_names, ours.values[0, :, 0], strict=True))
        reference = LimeTextExplainer(random_state=i).explain_instance(
            text, sentiment.predict_proba, num_features=6, labels=(1,)
        )
        theirs = dict(reference.as_list(label=1))
        top_mine = {w for w, _ in sorted(mine.items(), key=lambda kv: -abs(kv[1]))[:3]}
        top_theirs = {w for w, _ in sorted(theirs.items(), key=lambda kv: -abs(kv[1]))[:3]}
        overlaps.append(len(top_mine & top_theirs) / 3)
        for word in top_theirs & top_mine:
            assert mine[word] == pytest.approx(theirs[word], abs=0.03)
    assert np.mean(overlaps) >= 2 / 3


def test_bag_of_words_removes_every_occurrence_and_positions_mask_one() -> None:
    seen: list[str] = []

    def recorder(texts: list[str]) -> FloatArray:
        seen.extend(texts)
        return keyword_classifier(texts)

    text = "good good bad"
    LimeText(n_samples=200).explain(recorder, text)
    assert seen[0] == text
    assert "good bad" not in seen[1:]  # "good" goes entirely or not at all
    assert set(seen[1:]) <= {"  bad", "good good ", "  "}
    seen.clear()
    LimeText(n_samples=200, bow=False, mask_string="_").explain(recorder, text)
    assert "_ good bad" in seen
    assert "good _ bad" in seen
    assert all(len(t.split(" ")) == 3 for t in seen)


def test_same_seed_same_explanation_other_seed_differs(sentiment: Pipeline) -> None:
    first = LimeText(n_samples=500, seed=3).explain(sentiment.predict_proba, REVIEW)
    again = LimeText(n_samples=500, seed=3).explain(sentiment.predict_proba, REVIEW)
    other = LimeText(n_samples=500, seed=4).explain(sentiment.predict_proba, REVIEW)
    assert np.array_equal(first.values, again.values)
    assert not np.array_equal(first.values, other.values)
    assert first.values.shape == (1, len(first.feature_names), 2)
    assert first.extras["score"].shape == (1, 2)


def test_regression_mode_over_strings() -> None:
    def length(texts: list[str]) -> FloatArray:
        return np.array([float(len(t.split())) for t in texts])

    explanation = LimeText(mode="regression", n_samples=800).explain(length, "one two three")
    assert explanation.output_names == ("output",)
    # Every word adds one to the length: equal weights, 1 shrunk a little by the ridge.
    weights = explanation.values[0, :, 0]
    np.testing.assert_allclose(weights, weights.mean(), rtol=0.01)
    assert 0.9 < weights.mean() <= 1.0


@settings(max_examples=30, deadline=None)
@given(
    n_rows=st.integers(1, 300),
    n_words=st.integers(1, 40),
    seed=st.integers(0, 2**20),
    sampling=st.sampled_from(["sobol", "random"]),
)
def test_every_sample_removes_between_one_and_all_words(
    n_rows: int, n_words: int, seed: int, sampling: str
) -> None:
    removed = removal_masks(n_rows, n_words, seed, sampling)
    counts = removed.sum(axis=1)
    assert removed.shape == (n_rows, n_words)
    assert counts.min() >= 1
    assert counts.max() <= n_words


def test_removal_counts_are_uniform() -> None:
    counts = removal_masks(4000, 8, 0, "sobol").sum(axis=1)
    frequencies = np.bincount(counts, minlength=9)[1:] / counts.size
    np.testing.assert_allclose(frequencies, 1 / 8, atol=0.005)
    positions = removal_masks(4000, 8, 0, "sobol").mean(axis=0)
    # Each word is removed with probability E[count] / 8 = 4.5 / 8.
    np.testing.assert_allclose(positions, 4.5 / 8, atol=0.03)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"kernel_width": 0}, "kernel_width"),
        ({"bow": "yes"}, "bow"),
        ({"split_expression": "("}, "split_expression"),
        ({"split_expression": ""}, "split_expression"),
        ({"mask_string": 3}, "mask_string"),
        ({"feature_selection": "lasso_path"}, "feature_selection"),
    ],
)
def test_bad_parameters_are_rejected(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        LimeText(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_bad_inputs_are_rejected() -> None:
    explainer = LimeText(n_samples=20)
    with pytest.raises(InvalidError, match="at least one word"):
        explainer.explain(keyword_classifier, " ,;! ")
    with pytest.raises(InvalidError, match="must be a str"):
        explainer.explain(keyword_classifier, ["a list"])  # type: ignore[arg-type]
    with pytest.raises(ModelOutputError, match="predict_proba"):
        explainer.explain(lambda texts: np.zeros(len(texts)), "some words")
