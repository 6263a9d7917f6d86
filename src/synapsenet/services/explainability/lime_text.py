"""LIME for text: which words drive a classifier over raw strings (lime's ``LimeTextExplainer``).

The text is split into words and separators with lime's rule (``re.split`` on
``split_expression``, keeping the separators). Each interpretable feature is a distinct word
(``bow=True``: removing it removes every occurrence) or one occurrence (``bow=False``: it is
replaced by ``mask_string``, so word order survives). A perturbed sample removes between 1
and all of the features, the count uniform and the features chosen uniformly, as lime does;
its weight is lime's exponential kernel (width 25) of the cosine distance between its binary
vector and the all-ones vector, times 100. That distance depends only on how many words are
kept, ``100 * (1 - sqrt(kept / d))``, so it is computed from the counts.

With ``sampling="sobol"`` the removal counts and the choice of words come from randomised
Sobol' points (see :func:`._surrogate.uniform_points`): every sample keeps lime's
distribution, and the counts, hence the kernel weights, appear in their exact proportions.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError

from ._surrogate import (
    SurrogateSettings,
    build_explanation,
    choose_outputs,
    exponential_kernel,
    fit_surrogate,
    model_outputs,
    output_names,
    uniform_points,
)
from .contract import invalid_parameter
from .models import Explanation, ExplanationType

TextPredictFn = Callable[[list[str]], npt.ArrayLike]

_OWNER: Final = "LimeText"


@dataclass(frozen=True)
class IndexedText:
    """A text cut into tokens (words and the separators between them), lime-style.

    Attributes:
        text: The raw text.
        tokens: Words and separators, in order; joined they give back ``text``.
        features: The interpretable features: distinct words (bag of words) or occurrences.
        token_feature: ``(n_tokens,)`` feature of each token, -1 for separators.
        positions: Per feature, the character offsets of its occurrences.
    """

    text: str
    tokens: tuple[str, ...]
    features: tuple[str, ...]
    token_feature: npt.NDArray[np.intp]
    positions: tuple[tuple[int, ...], ...]

    @classmethod
    def split(cls, text: str, split_expression: str, *, bow: bool) -> IndexedText:
        """Tokenise ``text`` as lime's ``IndexedString`` does.

        Args:
            text: The raw text.
            split_expression: Regex of separators.
            bow: One feature per distinct word (True) or per occurrence (False).
        """
        splitter = re.compile(rf"({split_expression})|$")
        tokens = tuple(token for token in splitter.split(text) if token)
        starts = np.concatenate([[0], np.cumsum([len(token) for token in tokens])[:-1]])
        vocabulary: dict[str, int] = {}
        features: list[str] = []
        positions: list[list[int]] = []
        token_feature = np.full(len(tokens), -1, dtype=np.intp)
        for index, token in enumerate(tokens):
            if splitter.match(token):
                continue
            feature = vocabulary.setdefault(token, len(features)) if bow else len(features)
            if feature == len(features):
                features.append(token)
                positions.append([])
            token_feature[index] = feature
            positions[feature].append(int(starts[index]))
        return cls(
            text=text,
            tokens=tokens,
            features=tuple(features),
            token_feature=token_feature,
            positions=tuple(tuple(p) for p in positions),
        )

    def perturbed(self, removed: npt.NDArray[np.bool_], mask_string: str) -> list[str]:
        """The texts with each row's removed features taken out (or masked).

        Args:
            removed: ``(N, n_features)`` True where a feature is removed.
            mask_string: Replacement for a removed occurrence ("" removes it).
        """
        tokens = np.array(self.tokens, dtype=object)
        word = self.token_feature >= 0
        hidden = np.zeros((removed.shape[0], tokens.size), dtype=bool)
        hidden[:, word] = removed[:, self.token_feature[word]]
        pieces = np.where(hidden, mask_string, tokens[None, :])
        return ["".join(row) for row in pieces.tolist()]


def removal_masks(n_rows: int, n_features: int, seed: int, sampling: str) -> npt.NDArray[np.bool_]:
    """Lime's word removals: a count uniform in ``1..n_features``, then that many words.

    Args:
        n_rows: Perturbed samples to draw.
        n_features: Words (or occurrences) in the text.
        seed: Seed of the draws.
        sampling: ``"sobol"`` or ``"random"``.

    Returns:
        ``(n_rows, n_features)``, True where a word is removed; every row removes >= 1.
    """
    u = uniform_points(n_rows, n_features + 1, seed, sampling)
    counts = 1 + np.minimum((u[:, 0] * n_features).astype(np.intp), n_features - 1)
    # Uniform keys, ranked: the ``count`` smallest are a uniform subset of that size.
    order = np.argsort(u[:, 1:], axis=1)
    removed = np.zeros((n_rows, n_features), dtype=bool)
    np.put_along_axis(removed, order, np.arange(n_features) < counts[:, None], axis=1)
    return removed


class LimeText:
    """LIME explanations of a model over raw text: a weight per word.

    Args:
        n_samples: Perturbed texts per explanation, the original included.
        kernel_width: Width of the exponential kernel on cosine distance x 100 (lime's 25).
        bow: Bag of words: one feature per distinct word. When False, one per occurrence,
            masked with ``mask_string`` rather than removed.
        split_expression: Regex of the separators between words.
        mask_string: What replaces a removed occurrence when ``bow=False``.
        feature_selection: ``"auto"``, ``"forward"``, ``"highest_weights"`` or ``"none"``.
        n_features: Words an explanation may use.
        seed: Seed of the sampling.
        mode: ``"classification"`` (the function returns class probabilities) or
            ``"regression"``.
        sampling: ``"sobol"`` (randomised Sobol' points) or ``"random"`` (as lime).

    Raises:
        InvalidError: On a bad parameter.
    """

    def __init__(
        self,
        *,
        n_samples: int = 5000,
        kernel_width: float = 25.0,
        bow: bool = True,
        split_expression: str = r"\W+",
        mask_string: str = "UNKWORDZ",
        feature_selection: str = "auto",
        n_features: int = 10,
        seed: int = 0,
        mode: str = "classification",
        sampling: str = "sobol",
    ) -> None:
        self.settings = SurrogateSettings.check(
            _OWNER,
            n_samples=n_samples,
            n_features=n_features,
            feature_selection=feature_selection,
            mode=mode,
            sampling=sampling,
            seed=seed,
        )
        if (
            isinstance(kernel_width, bool)
            or not isinstance(kernel_width, int | float)
            or not np.isfinite(kernel_width)
            or kernel_width <= 0
        ):
            raise invalid_parameter("kernel_width", _OWNER, "a finite float > 0", kernel_width)
        self.kernel_width = float(kernel_width)
        if not isinstance(bow, bool):
            raise invalid_parameter("bow", _OWNER, "a bool", bow)
        self.bow = bow
        if not isinstance(split_expression, str) or not split_expression:
            raise invalid_parameter(
                "split_expression", _OWNER, "a non-empty regular expression", split_expression
            )
        try:
            re.compile(split_expression)
        except re.error as error:
            raise invalid_parameter(
                "split_expression", _OWNER, "a valid regular expression", split_expression
            ) from error
        self.split_expression = split_expression
        if not isinstance(mask_string, str):
            raise invalid_parameter("mask_string", _OWNER, "a str", mask_string)
        self.mask_string = mask_string

    def with_seed(self, seed: int) -> LimeText:
        """The same explainer with another seed."""
        clone = copy.copy(self)
        clone.settings = SurrogateSettings.check(_OWNER, **{**self.settings.__dict__, "seed": seed})
        return clone

    def explain(
        self,
        predict_fn: TextPredictFn,
        text: str,
        *,
        labels: Sequence[int] | None = None,
        top_labels: int | None = None,
    ) -> Explanation:
        """Explain the model's prediction for one text.

        Args:
            predict_fn: Takes a list of strings; returns ``(n, n_classes)`` probabilities in
                classification mode, ``(n,)`` or ``(n, K)`` otherwise.
            text: The text to explain.
            labels: Outputs (classes) to explain; all of them when None.
            top_labels: Explain the ``top_labels`` most probable classes instead.

        Returns:
            An explanation with ``values`` of shape ``(1, n_words, n_explained_outputs)``;
            ``feature_names`` are the words, ``extras["positions"]`` their character
            offsets, plus the surrogate's ``score``, ``intercept``, ``local_prediction``,
            ``selected_features`` and ``labels``.

        Raises:
            InvalidError: If ``text`` is not a string or has no words.
        """
        start = time.perf_counter()
        owner = "LimeText.explain"
        if not isinstance(text, str):
            raise InvalidError(
                f"The 'text' parameter of {owner} must be a str. "
                f"Got {type(text).__name__} instead.",
                field="text",
            )
        indexed = IndexedText.split(text, self.split_expression, bow=self.bow)
        n_words = len(indexed.features)
        if n_words == 0:
            raise InvalidError(
                f"The 'text' parameter of {owner} must contain at least one word "
                f"(split on {self.split_expression!r}). Got {text!r} instead.",
                field="text",
            )
        settings = self.settings
        removed = removal_masks(settings.n_samples - 1, n_words, settings.seed, settings.sampling)
        texts = [text, *indexed.perturbed(removed, "" if self.bow else self.mask_string)]
        outputs = model_outputs(predict_fn(texts), len(texts), settings.mode, owner)
        chosen = choose_outputs(outputs[0], labels, top_labels, owner)
        data = np.vstack([np.ones(n_words), ~removed]).astype(np.float64)
        kept = data.sum(axis=1)
        distances = 100.0 * (1.0 - np.sqrt(kept / n_words))
        fit = fit_surrogate(
            data,
            outputs[:, chosen],
            exponential_kernel(distances, self.kernel_width),
            n_features=settings.n_features,
            feature_selection=settings.feature_selection,
        )
        return build_explanation(
            ExplanationType.LIME_TEXT,
            [fit],
            outputs[:1, chosen],
            feature_names=indexed.features,
            outputs=output_names(settings.mode, chosen, outputs.shape[1]),
            labels=chosen,
            parameters=self._parameters(),
            seed=settings.seed,
            started=start,
            extras={"positions": indexed.positions},
        )

    def _parameters(self) -> dict[str, Any]:
        return {
            **self.settings.as_parameters(),
            "kernel_width": self.kernel_width,
            "bow": self.bow,
            "split_expression": self.split_expression,
            "mask_string": self.mask_string,
        }
