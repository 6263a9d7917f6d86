"""SHAPExplainer: one front door to TreeSHAP, exact enumeration and KernelSHAP.

Configure in the constructor, compute in a method, as in scikit-learn::

    explainer = SHAPExplainer(model, background=X_train)
    explanation = explainer.explain(X_test)          # SHAP values
    interactions = explainer.explain_interactions(X_test[:10])

``algorithm="auto"`` picks, in order:

1. ``"tree"`` for tree ensembles TreeSHAP explains exactly (scikit-learn trees, forests and
   gradient boosting, XGBoost, LightGBM), explaining their raw output (log-odds for boosted
   classifiers, probabilities for forests), path-dependent without a background and
   interventional with one, like ``shap.TreeExplainer``;
2. ``"exact"`` enumeration of all ``2^M`` coalitions when ``M <= max_exact_features``;
3. ``"kernel"``: KernelSHAP otherwise.

Asking for probabilities (``output="probability"``) or a logit link sends tree models to
the model-agnostic algorithms, since TreeSHAP is exact only for the trees' raw output.

Every explanation is checked for local accuracy: the largest
``|sum(values) + base - prediction|`` is stored in ``local_accuracy_error``, with the
prediction computed independently from the model (on the link scale), and a
:class:`~.contract.LocalAccuracyError` is raised above the algorithm's tolerance
``atol + rtol * scale``, ``scale`` the largest ``|base| + sum |values|`` (at least 1):

=========  ====================  =====================================================
algorithm  atol, rtol            why
=========  ====================  =====================================================
tree       1e-6, 1e-8            exact on float64 trees (scikit-learn, LightGBM)
tree       1e-6, 1e-5            XGBoost evaluates its trees in float32
exact      1e-8, 1e-8            exact; float64 rounding over 2^M terms
kernel     1e-6, 1e-6            the constrained solve enforces efficiency exactly
=========  ====================  =====================================================

Interaction values of model-agnostic explanations use the same tolerances (exact
enumeration, or the sampled estimator whose rows sum to KernelSHAP values exactly).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from synapsenet.errors import InvalidError

from ._shapley_inputs import Link, apply_link
from .adapters import OUTPUTS, ModelFunction, adapt
from .background import summarize_background
from .contract import (
    AccuracyTolerance,
    align_columns,
    check_choice,
    check_int,
    check_local_accuracy,
    check_optional_positive,
    feature_names_of,
    invalid_parameter,
    resolve_feature_names,
    validate_background,
    validate_instances,
)
from .exact import EXACT_AUTO_MAX_FEATURES, EXACT_MAX_FEATURES, exact_shapley
from .interactions import exact_interactions, sampled_interactions
from .kernel_shap import KernelSHAP
from .models import Explanation, ExplanationType, FloatArray
from .tree import ACCURACY_CHECKS, NATIVE_CHECKS, TreeSHAP, is_tree_model, require_tree_model

ALGORITHMS: tuple[str, ...] = ("auto", "tree", "exact", "kernel")
LINKS: tuple[str, ...] = ("auto", "identity", "logit")
FEATURE_PERTURBATIONS: tuple[str, ...] = ("auto", "tree_path_dependent", "interventional")

EXACT_TOLERANCE = AccuracyTolerance(atol=1e-8, rtol=1e-8)
"""Local accuracy of exact enumeration: efficiency holds exactly, up to float64 rounding."""

KERNEL_TOLERANCE = AccuracyTolerance(atol=1e-6, rtol=1e-6)
"""Local accuracy of KernelSHAP: the constrained solve enforces efficiency exactly."""

_OWNER = "SHAPExplainer"


def _as_link(name: str) -> Link:
    return "logit" if name == "logit" else "identity"


class SHAPExplainer:
    """Shapley-value explanations of any model, by the fastest exact-enough algorithm.

    Args:
        model: A fitted scikit-learn, XGBoost or LightGBM model, or a callable
            ``(n, M) -> (n,)`` or ``(n, K)``.
        background: Reference rows the model-agnostic algorithms integrate features out
            over (required for them); for tree models it switches TreeSHAP to the
            interventional mode (``feature_perturbation="auto"``).
        algorithm: ``"auto"``, ``"tree"``, ``"exact"`` or ``"kernel"``.
        link: ``"auto"`` (logit for probabilities, identity otherwise), ``"identity"`` or
            ``"logit"``: the scale the attributions add up on.
        n_samples: KernelSHAP's coalition budget per background row (see
            :class:`~.kernel_shap.KernelSHAP`), or ``"auto"`` (``2M + 2048``, like shap).
        max_exact_features: The largest feature count ``"auto"`` enumerates exactly (at most
            16: exact enumeration costs ``2^M`` model calls per background row).
        background_size: Backgrounds with more rows are summarised: by weighted k-means
            centres for exact and KernelSHAP, by a seeded random sample for interventional
            TreeSHAP (shap's TreeExplainer cannot weight rows).
        seed: Seed of every random choice (KernelSHAP sampling, k-means, subsampling).
        tol: KernelSHAP stops once every standard error is below ``tol`` (None: never early).
        feature_names: Names of the features; else taken from a DataFrame or the model.
        output: ``"auto"``, ``"probability"`` or ``"raw"``: which model output is explained
            (see :func:`~.adapters.adapt`).
        feature_perturbation: TreeSHAP's ``"tree_path_dependent"`` or
            ``"interventional"``; ``"auto"`` uses interventional when a background is given.
        native_check: TreeSHAP's native-vs-shap agreement check: ``"sample"``, ``"all"``
            or ``"off"``.
        accuracy_check: Which rows TreeSHAP checks for local accuracy against the model's
            own prediction: ``"sample"`` (evenly spread, the count is reported) or
            ``"all"``. The other algorithms always check every row.

    Attributes:
        algorithm_: The algorithm ``"auto"`` resolved to.
        link_: The link ``"auto"`` resolved to (always identity for TreeSHAP).
        model_function_: The adapted model: the explained output for exact and KernelSHAP,
            the raw output for TreeSHAP.
        background_: The background after summarising; None for path-dependent TreeSHAP.
        background_weights_: Weight per background row, None when uniform.
        n_features_: The feature count the explainer expects, None until known.
        tree_: The configured :class:`~.tree.TreeSHAP`, None for the other algorithms.

    Raises:
        InvalidError: On invalid parameters, an empty or malformed background, a missing
            background for the model-agnostic algorithms, or an unsupported model.
    """

    def __init__(
        self,
        model: object,
        background: object | None = None,
        *,
        algorithm: str = "auto",
        link: str = "auto",
        n_samples: int | Literal["auto"] = "auto",
        max_exact_features: int = EXACT_AUTO_MAX_FEATURES,
        background_size: int = 100,
        seed: int = 0,
        tol: float | None = None,
        feature_names: Sequence[str] | None = None,
        output: str = "auto",
        feature_perturbation: str = "auto",
        native_check: str = "sample",
        accuracy_check: str = "sample",
    ) -> None:
        self.model = model
        self.background = background
        self.algorithm = check_choice(algorithm, "algorithm", _OWNER, ALGORITHMS)
        self.link = check_choice(link, "link", _OWNER, LINKS)
        if n_samples != "auto":
            check_int(n_samples, "n_samples", _OWNER, minimum=1)
        self.n_samples: int | Literal["auto"] = n_samples
        self.max_exact_features = check_int(
            max_exact_features, "max_exact_features", _OWNER, minimum=1
        )
        if self.max_exact_features > EXACT_MAX_FEATURES:
            raise invalid_parameter(
                "max_exact_features",
                _OWNER,
                f"an int in [1, {EXACT_MAX_FEATURES}]",
                max_exact_features,
            )
        self.background_size = check_int(background_size, "background_size", _OWNER, minimum=1)
        self.seed = check_int(seed, "seed", _OWNER, minimum=0)
        self.tol = check_optional_positive(tol, "tol", _OWNER)
        self.feature_names = None if feature_names is None else tuple(map(str, feature_names))
        self.output = check_choice(output, "output", _OWNER, OUTPUTS)
        self.feature_perturbation = check_choice(
            feature_perturbation, "feature_perturbation", _OWNER, FEATURE_PERTURBATIONS
        )
        self.native_check = check_choice(native_check, "native_check", _OWNER, NATIVE_CHECKS)
        self.accuracy_check = check_choice(
            accuracy_check, "accuracy_check", _OWNER, ACCURACY_CHECKS
        )
        self.tree_: TreeSHAP | None = None
        self.background_: FloatArray | None = None
        self.background_weights_: FloatArray | None = None
        self.link_: Link = "identity"
        if self._wants_tree():
            self._configure_tree()
        else:
            self._configure_model_agnostic()

    # ------------------------------------------------------------------ configuration

    def _perturbation(self) -> str:
        if self.feature_perturbation != "auto":
            return self.feature_perturbation
        return "interventional" if self.background is not None else "tree_path_dependent"

    def _wants_tree(self) -> bool:
        raw_scale = self.output in ("auto", "raw") and self.link in ("auto", "identity")
        if self.algorithm == "tree":
            if not raw_scale:
                raise InvalidError(
                    "algorithm='tree' explains the trees' raw output on the identity scale; "
                    f"got output={self.output!r}, link={self.link!r}. Use algorithm='exact' "
                    "or 'kernel' to explain probabilities or on the logit scale.",
                    field="algorithm",
                )
            return True
        if self.algorithm != "auto" or not raw_scale:
            return False
        return is_tree_model(self.model, self._perturbation())

    def _configure_tree(self) -> None:
        perturbation = self._perturbation()
        require_tree_model(self.model)
        function = adapt(self.model, output="raw")
        background = None
        if perturbation == "interventional":
            if self.background is None:
                raise InvalidError(
                    "The 'background' parameter of SHAPExplainer is required with "
                    "feature_perturbation='interventional'. Got None instead.",
                    field="background",
                )
            background = self._validated_background(function)
            if background.shape[0] > self.background_size:
                # TreeExplainer ignores weights, so a weighted k-means summary would skew
                # the values; an unweighted random sample keeps the distribution.
                rng = np.random.default_rng(self.seed)
                chosen = rng.choice(background.shape[0], self.background_size, replace=False)
                background = background[np.sort(chosen)]
        self.tree_ = TreeSHAP(
            self.model,
            background=background,
            feature_perturbation=perturbation,
            native_check=self.native_check,
            accuracy_check=self.accuracy_check,
        )
        self.model_function_: ModelFunction = function
        self.algorithm_ = "tree"
        self.background_ = background
        self.n_features_: int | None = function.n_features

    def _configure_model_agnostic(self) -> None:
        if self.background is None:
            raise InvalidError(
                "The 'background' parameter of SHAPExplainer is required to explain a "
                f"{type(self.model).__name__}: exact and KernelSHAP integrate absent "
                "features out over it (only tree ensembles are explained without one). "
                "Got None instead.",
                field="background",
            )
        function = adapt(self.model, output=self.output, example=_probe_rows(self.background))
        matrix = self._validated_background(function)
        self.model_function_ = function
        self.n_features_ = matrix.shape[1]
        self.link_ = _as_link(function.link_default if self.link == "auto" else self.link)
        if self.algorithm == "auto":
            self.algorithm_ = "exact" if matrix.shape[1] <= self.max_exact_features else "kernel"
        else:
            self.algorithm_ = self.algorithm
        if matrix.shape[0] > self.background_size:
            centres, weights = summarize_background(matrix, self.background_size, self.seed)
            self.background_, self.background_weights_ = centres, weights
        else:
            self.background_ = matrix

    def _validated_background(self, function: ModelFunction) -> FloatArray:
        aligned = align_columns(
            self.background, function.feature_names, name="background", owner=_OWNER
        )
        return validate_background(aligned, function.n_features, function.allow_nan, owner=_OWNER)

    # ------------------------------------------------------------------ explaining

    def _instances(self, instances: object) -> tuple[FloatArray, tuple[str, ...]]:
        function = self.model_function_
        aligned = align_columns(instances, function.feature_names, name="X", owner=_OWNER)
        matrix = validate_instances(
            aligned, self.n_features_, function.allow_nan, owner=f"{_OWNER}.explain"
        )
        names = resolve_feature_names(
            self.feature_names,
            feature_names_of(aligned),
            feature_names_of(self.background),
            function.feature_names,
            n_features=matrix.shape[1],
            owner=_OWNER,
        )
        return matrix, names

    def _agnostic_background(self) -> FloatArray:
        background = self.background_
        if background is None:  # pragma: no cover - _configure_model_agnostic sets it
            raise AssertionError("model-agnostic explainer without a background")
        return background

    def explain(self, X: object) -> Explanation:  # noqa: N803 - scikit-learn's name
        """Shapley values of the model's predictions for ``X``.

        Args:
            X: Instances, ``(n, M)``: numpy, pandas (columns matched to the model's by name)
                or polars; a 1-D array is one instance.

        Returns:
            The explanation: values ``(n, M, K)``, base values and predictions ``(n, K)``,
            ``local_accuracy_error`` set. KernelSHAP adds standard errors.

        Raises:
            InvalidError: On the wrong feature count, NaN the model cannot take, or
                non-numeric input.
            LocalAccuracyError: If the values do not add up to the predictions.
        """
        matrix, names = self._instances(X)
        if self.tree_ is not None:
            return self._finish_tree(self.tree_.explain(matrix), names)
        started = time.perf_counter()
        predict = self.model_function_.predict
        background = self._agnostic_background()
        if self.algorithm_ == "exact":
            raw = exact_shapley(
                predict, matrix, background, link=self.link_, weights=self.background_weights_
            )
            return self._finish(raw, raw.values, matrix, names, EXACT_TOLERANCE, started)
        kernel = KernelSHAP(
            self.n_samples, paired=True, link=self.link_, seed=self.seed, tol=self.tol
        )
        raw = kernel.explain(predict, matrix, background, self.background_weights_)
        return self._finish(
            replace(raw, seed=self.seed), raw.values, matrix, names, KERNEL_TOLERANCE, started
        )

    def explain_interactions(self, X: object) -> Explanation:  # noqa: N803
        """Shapley interaction values for ``X``.

        Tree models get exact TreeSHAP interaction values; other models exact enumeration
        of the Shapley interaction index when ``M <= max_exact_features``, else its sampled
        estimator (seeded, with ``n_samples`` coalitions per derivative game).

        Args:
            X: Instances, ``(n, M)``.

        Returns:
            A ``SHAP_INTERACTION`` explanation: ``extras["interaction_values"]`` holds the
            ``(n, M, M, K)`` interaction values (symmetric; main effects on the diagonal)
            and ``values`` their row sums, the SHAP values; local accuracy is checked on
            those.

        Raises:
            InvalidError: On malformed instances, or with interventional TreeSHAP (shap has
                no interventional interaction values).
            LocalAccuracyError: If the interactions do not add up to the predictions.
        """
        matrix, names = self._instances(X)
        if self.tree_ is not None:
            return self._finish_tree(self.tree_.interactions(matrix), names)
        started = time.perf_counter()
        predict = self.model_function_.predict
        background = self._agnostic_background()
        weights = self.background_weights_
        sampled = matrix.shape[1] > self.max_exact_features
        if sampled:
            interaction = sampled_interactions(
                predict,
                matrix,
                background,
                n_samples=self.n_samples,
                seed=self.seed,
                link=self.link_,
                weights=weights,
            )
        else:
            interaction = exact_interactions(
                predict, matrix, background, link=self.link_, weights=weights
            )
        values = interaction.sum(axis=2)
        raw = Explanation(
            type=ExplanationType.SHAP_INTERACTION,
            values=values,
            base_values=self._base_values(matrix.shape[0]),
            predictions=np.empty((matrix.shape[0], values.shape[2])),
            feature_names=names,
            seed=self.seed if sampled else None,
            extras={
                "interaction_values": interaction,
                "interaction_method": "sampled" if sampled else "exact",
            },
        )
        tolerance = KERNEL_TOLERANCE if sampled else EXACT_TOLERANCE
        return self._finish(raw, values, matrix, names, tolerance, started)

    # ------------------------------------------------------------------ results

    def _base_values(self, n_rows: int) -> FloatArray:
        outputs = self.model_function_.predict(self._agnostic_background())
        weights = self.background_weights_
        mean = outputs.mean(axis=0) if weights is None else weights @ outputs
        # The link applies to the averaged output, as in exact and KernelSHAP (and shap).
        base = apply_link(mean[None, :], self.link_)[0]
        return np.ascontiguousarray(np.broadcast_to(base, (n_rows, base.shape[0])))

    def _parameters(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm_,
            "link": self.link_,
            "output": self.model_function_.output,
            "n_samples": self.n_samples,
            "max_exact_features": self.max_exact_features,
            "background_size": None if self.background_ is None else len(self.background_),
            "background_summarized": self.background_weights_ is not None,
            "tol": self.tol,
        }

    def _finish(
        self,
        raw: Explanation,
        values: FloatArray,
        matrix: FloatArray,
        names: tuple[str, ...],
        tolerance: AccuracyTolerance,
        started: float,
    ) -> Explanation:
        # The prediction is recomputed from the model, not taken from the algorithm, so the
        # check catches an algorithm that explains something other than this model's output.
        predictions = apply_link(self.model_function_.predict(matrix), self.link_)
        error = check_local_accuracy(
            f"SHAPExplainer ({self.algorithm_})", values, raw.base_values, predictions, tolerance
        )
        return replace(
            raw,
            predictions=predictions,
            feature_names=names,
            output_names=self.model_function_.output_names,
            parameters={**raw.parameters, **self._parameters()},
            runtime_seconds=time.perf_counter() - started,
            local_accuracy_error=error,
        )

    def _finish_tree(self, explanation: Explanation, names: tuple[str, ...]) -> Explanation:
        parameters = {**explanation.parameters, **self._parameters()}
        return replace(explanation, feature_names=names, parameters=parameters)


def _probe_rows(background: object) -> FloatArray:
    """A background row without NaN, to call a model that does not declare its outputs."""
    matrix = validate_background(background, None, True, owner=_OWNER)
    complete = ~np.isnan(matrix).any(axis=1)
    return matrix[complete][:1] if complete.any() else matrix[:1]
