"""``LIMEExplainer``: one entry point for LIME on tables, text and images, and its stability mode.

The facade picks the explainer by the kind of data: a string is text, an ``(H, W)`` or
``(H, W, C)`` array is an image unless training data was given (then rows are tabular), a
1-D row or a matrix of rows is tabular. Options are passed through to
:class:`~.lime_tabular.LimeTabular`, :class:`~.lime_text.LimeText` or
:class:`~.lime_image.LimeImage`, and checked against what that explainer accepts.

Stability mode explains the same instance under several seeds and reports, per feature, the
mean weight, its spread and coefficient of variation, and how well the runs agree on the
ranking (mean pairwise Kendall tau-b of ``|weight|``) and on the top-k features.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence, Sized
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError

from ._ranking import mean_pairwise_kendall_tau, mean_pairwise_top_k_overlap
from ._surrogate import MODES
from .contract import check_choice, check_int, invalid_parameter
from .lime_image import LimeImage
from .lime_tabular import LimeTabular
from .lime_text import LimeText
from .models import Explanation, StabilityReport

Kind = Literal["auto", "tabular", "text", "image"]
KINDS: Final = ("auto", "tabular", "text", "image")
DEFAULT_SEEDS: Final = tuple(range(10))

_OWNER: Final = "LIMEExplainer"

T = TypeVar("T")


class _Seeded(Protocol):
    def with_seed(self, seed: int) -> Any: ...


def stability(
    explain_fn: Callable[[T, int], Explanation],
    instance: T,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    k: int = 5,
    output: int = 0,
) -> StabilityReport:
    """Explain one instance under several seeds and measure how much the runs agree.

    Args:
        explain_fn: ``explain_fn(instance, seed)`` returns one explanation.
        instance: What to explain.
        seeds: At least two distinct seeds.
        k: Size of the top sets compared (clipped to the feature count).
        output: Which explained output (column of ``values``) to compare.

    Returns:
        Mean and standard deviation (``ddof=1``) of each feature's weight across runs, their
        coefficient of variation (``std / |mean|``; 0 where both are 0, inf where only the
        mean is), the mean pairwise Kendall tau-b between the rankings by ``|weight|`` and
        the mean pairwise overlap of the top-``k`` features.

    Raises:
        InvalidError: On fewer than two seeds, repeated seeds, or runs that explain
            different features.
    """
    owner = "stability"
    chosen = tuple(seeds)
    for seed in chosen:
        check_int(seed, "seeds", owner, minimum=0)
    if len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise invalid_parameter("seeds", owner, "at least two distinct seeds", list(chosen))
    check_int(k, "k", owner, minimum=1)
    check_int(output, "output", owner, minimum=0)
    runs = [explain_fn(instance, seed) for seed in chosen]
    names = runs[0].feature_names
    if any(run.feature_names != names for run in runs):
        raise InvalidError(
            "Every run of the stability check must explain the same features; the seeds "
            "produced different feature sets (e.g. a segmentation that depends on the seed).",
            field="explain_fn",
        )
    if output >= runs[0].n_outputs:
        raise invalid_parameter("output", owner, f"an int in [0, {runs[0].n_outputs - 1}]", output)
    weights = np.stack([run.values[0, :, output] for run in runs])
    return stability_report(weights, names, k=k)


def stability_report(
    weights: np.ndarray[Any, np.dtype[np.float64]], feature_names: Sequence[str], *, k: int
) -> StabilityReport:
    """Summarise ``(R, M)`` weights of ``R`` runs: spread of values, agreement of rankings.

    Args:
        weights: One row of signed weights per run, ``R >= 2``.
        feature_names: One name per column.
        k: Size of the top sets compared (clipped to ``M``).
    """
    mean = weights.mean(axis=0)
    std = weights.std(axis=0, ddof=1)
    magnitude = np.abs(mean)
    cv = np.divide(std, magnitude, out=np.zeros_like(std), where=magnitude > 0)
    cv[(magnitude == 0) & (std > 0)] = np.inf
    importance = np.abs(weights)
    k = min(k, weights.shape[1])
    return StabilityReport(
        feature_names=tuple(feature_names),
        mean=mean,
        std=std,
        coefficient_of_variation=cv,
        kendall_tau=mean_pairwise_kendall_tau(importance),
        top_k_overlap=mean_pairwise_top_k_overlap(importance, k),
        k=k,
        n_runs=int(weights.shape[0]),
    )


_EXPLAINERS: Final[dict[str, type[LimeTabular] | type[LimeText] | type[LimeImage]]] = {
    "tabular": LimeTabular,
    "text": LimeText,
    "image": LimeImage,
}


def _accepted(cls: type[Any]) -> frozenset[str]:
    parameters = inspect.signature(cls.__init__).parameters
    return frozenset(name for name in parameters if name not in ("self", "training_data"))


class LIMEExplainer:
    """LIME for tabular data, text and images behind one scikit-learn-style interface.

    Args:
        training_data: Rows the model was trained on; required for tabular data.
        kind: ``"auto"`` (decide from each instance), ``"tabular"``, ``"text"`` or
            ``"image"``.
        mode: ``"classification"`` (class probabilities) or ``"regression"``.
        seed: Seed of the sampling.
        **options: Further parameters of the chosen explainer (``n_samples``,
            ``kernel_width``, ``feature_selection``, ``n_features``, ``discretize``,
            ``segmentation``...).

    Raises:
        InvalidError: On an unknown kind or an option no LIME explainer accepts.

    Example:
        >>> explainer = LIMEExplainer(X_train, mode="regression", n_features=5)
        >>> explanation = explainer.explain(model.predict, X_test[0])
    """

    def __init__(
        self,
        training_data: object | None = None,
        *,
        kind: str = "auto",
        mode: str = "classification",
        seed: int = 0,
        **options: Any,
    ) -> None:
        self.kind = check_choice(kind, "kind", _OWNER, KINDS)
        self.training_data = training_data
        self.mode = check_choice(mode, "mode", _OWNER, MODES)
        self.seed = check_int(seed, "seed", _OWNER, minimum=0)
        self.options = dict(options)
        allowed = (
            _accepted(_EXPLAINERS[self.kind])
            if self.kind != "auto"
            else frozenset().union(*(_accepted(cls) for cls in _EXPLAINERS.values()))
        )
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise InvalidError(
                f"{_OWNER} got options that no LIME {self.kind} explainer accepts: "
                f"{', '.join(unknown)}.",
                field=unknown[0],
            )
        if self.kind == "tabular" and training_data is None:
            raise invalid_parameter(
                "training_data", _OWNER, "given for tabular data", training_data
            )
        self._explainers: dict[str, LimeTabular | LimeText | LimeImage] = {}

    def kind_of(self, instance: object) -> str:
        """Which explainer an instance goes to: ``"tabular"``, ``"text"`` or ``"image"``."""
        if self.kind != "auto":
            return self.kind
        if isinstance(instance, str):
            return "text"
        if self.training_data is not None:
            return "tabular"
        array = np.asarray(instance) if isinstance(instance, np.ndarray | list) else None
        if array is not None and array.ndim in (2, 3):
            return "image"
        raise InvalidError(
            f"{_OWNER} cannot tell what kind of data {type(instance).__name__} is: give "
            "training_data for tabular rows, a str for text, an (H, W[, C]) array for an "
            "image, or set kind explicitly.",
            field="instance",
        )

    def explainer(self, kind: str) -> LimeTabular | LimeText | LimeImage:
        """The configured explainer for ``kind`` (built on first use)."""
        check_choice(kind, "kind", "LIMEExplainer.explainer", KINDS[1:])
        if kind not in self._explainers:
            cls = _EXPLAINERS[kind]
            accepted = _accepted(cls)
            options = {key: value for key, value in self.options.items() if key in accepted}
            if kind == "tabular":
                if self.training_data is None:
                    raise invalid_parameter("training_data", _OWNER, "given for tabular data", None)
                self._explainers[kind] = LimeTabular(
                    self.training_data, mode=self.mode, seed=self.seed, **options
                )
            elif kind == "text":
                self._explainers[kind] = LimeText(mode=self.mode, seed=self.seed, **options)
            else:
                self._explainers[kind] = LimeImage(mode=self.mode, seed=self.seed, **options)
        return self._explainers[kind]

    def explain(
        self,
        predict_fn: Callable[[Any], Any],
        instance: object,
        *,
        labels: Sequence[int] | None = None,
        top_labels: int | None = None,
    ) -> Explanation:
        """Explain one instance (or, for tabular data, a matrix of rows).

        Args:
            predict_fn: The model: a function of a matrix (tabular), of a list of strings
                (text) or of a batch of images (image).
            instance: A row or rows, a string, or an image.
            labels: Outputs (classes) to explain; all of them when None.
            top_labels: Explain the most probable classes instead (not for several rows).

        Returns:
            The explanation (see the explainers' ``explain``).
        """
        explainer = self.explainer(self.kind_of(instance))
        if isinstance(explainer, LimeTabular):
            rows = cast("npt.ArrayLike", instance)
            if np.ndim(rows) == 2 and len(cast("Sized", rows)) != 1:
                if top_labels is not None:
                    raise invalid_parameter(
                        "top_labels", "LIMEExplainer.explain", "None for several rows", top_labels
                    )
                return explainer.explain_many(predict_fn, rows, labels=labels)
            return explainer.explain(predict_fn, rows, labels=labels, top_labels=top_labels)
        if isinstance(explainer, LimeText):
            return explainer.explain(
                predict_fn, cast("str", instance), labels=labels, top_labels=top_labels
            )
        return explainer.explain(
            predict_fn, cast("npt.ArrayLike", instance), labels=labels, top_labels=top_labels
        )

    def stability(
        self,
        predict_fn: Callable[[Any], Any],
        instance: object,
        seeds: Sequence[int] = DEFAULT_SEEDS,
        *,
        k: int = 5,
        output: int = 0,
        labels: Sequence[int] | None = None,
    ) -> StabilityReport:
        """Explain one instance under each seed and report how stable the weights are.

        Args:
            predict_fn: The model, as for :meth:`explain`.
            instance: One row, string or image.
            seeds: At least two distinct seeds.
            k: Size of the top sets compared.
            output: Which explained output to compare (an index into ``labels``).
            labels: Outputs (classes) to explain; all of them when None.

        Returns:
            The stability report (see :func:`stability`).
        """
        base: _Seeded = self.explainer(self.kind_of(instance))

        def explain_with(item: object, seed: int) -> Explanation:
            explainer = base.with_seed(seed)
            result: Explanation = explainer.explain(predict_fn, item, labels=labels)
            return result

        return stability(explain_with, instance, seeds, k=k, output=output)
