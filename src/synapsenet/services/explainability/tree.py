"""TreeSHAP for tree ensembles: exact SHAP values and interaction values in polynomial time.

Which implementation computes the values:

* Path-dependent SHAP values of scikit-learn trees and forests (regression, classification,
  multi-output regression), XGBoost tree boosters and LightGBM models, by default
  (``implementation="auto"``): SynapseNet's tabulated TreeSHAP (:mod:`._path_tables`).
  Every leaf's Shapley coefficients depend on a row only through which of the leaf's path
  features the row satisfies, so they are tabulated once per explainer (built on the first
  call, reported in ``extras["path_tables"]``) and a row costs one look-up per path
  feature: about 3-4x shap's rows per second at the same values (see the benchmark). The
  values are checked against shap's own C-extension TreeSHAP on sampled rows, as below
  (``native_check``). Models whose trees the reader does not cover (categorical splits,
  DART, scikit-learn gradient boosting...) or whose tables would exceed
  ``table_budget_bytes`` (deep trees) keep the library code below;
  ``implementation="library"`` always does, ``"tables"`` refuses a model it cannot tabulate.
* Otherwise, XGBoost and LightGBM, ``feature_perturbation="tree_path_dependent"``: the library's own
  C++ TreeSHAP (``pred_contribs`` / ``pred_contrib``, and XGBoost's ``pred_interactions``).
  This is also what ``shap.TreeExplainer`` returns for them, so the values are identical to
  shap's. They are *checked* against an independent implementation, shap's own C extension
  run on shap's parse of the same trees, on a few evenly spread rows
  (``native_check="sample"``, the default: one row in 64, at most ``native_check_rows``),
  on every row (``"all"``) or not at all (``"off"``). A disagreement beyond
  :data:`NATIVE_TOLERANCE` raises :class:`TreeSHAPDisagreementError` (or is recorded, with
  ``on_disagreement="record"``); either way ``extras["native_check"]`` reports the rows
  checked, the largest difference and the tolerance.
* Path-dependent interaction values of the same models, by default: tabulated too
  (:mod:`._interaction_tables`: one table of pair coefficients per leaf and pattern, built
  on the first :meth:`TreeSHAP.interactions` call and reported in
  ``extras["interaction_tables"]``), about 10-30x shap's rows per second (16-60x without
  the agreement check, which recomputes its rows with shap), checked against
  shap's C extension on sampled rows like the values. The pair tables and the value tables
  together must fit ``table_budget_bytes``; past it ``"auto"`` keeps the library code
  below (``extras["interaction_tables"]["status"]`` is ``"over_budget"``, with the bytes
  needed) and ``"tables"`` refuses.
* scikit-learn trees and forests, LightGBM interaction values, and every model with
  ``"interventional"``: shap's C extension. For LightGBM it runs on shap's parse rebuilt
  per class (shap misreads multi-class ``Booster`` objects); interventional base values are
  the model's own mean raw output over the background (shap's misreads XGBoost's per-class
  base scores).

Interaction values (:meth:`TreeSHAP.interactions`) are the exact path-dependent TreeSHAP
interaction values; they are stored as ``extras["interaction_values"]`` with shape
``(n, M, M, K)`` (symmetric, main effects on the diagonal), and the explanation's
``values`` are their row sums (the SHAP values).

Every explanation explains the *raw* tree output (log-odds for boosted classifiers,
probabilities for forests, as shap does) and is checked for local accuracy against the
model's own raw prediction within :data:`TREE_TOLERANCE` (float64 models) or
:data:`FLOAT32_TREE_TOLERANCE` (XGBoost, which evaluates its trees in float32). The check
runs on every row (``accuracy_check="all"``) or, by default, on an evenly spread sample
(``"sample"``: one row in :data:`ACCURACY_SAMPLE_SHARE`, at most ``accuracy_check_rows``,
64 by default, at least one); ``extras["local_accuracy"]`` states how many rows were
checked and against what. The sample is enough because what the check can catch is a
wrong tree or a misread model, which shows in any row the wrong part is reached by, not a
per-row accident: TreeSHAP's values add up to the trees' output by construction. The
predictions of the rows not checked are the base value plus the sum of the values, which
is the output the trees computed for them (XGBoost's and LightGBM's native TreeSHAP returns
the bias with the contributions; shap's sums to its parse of the trees). Sampling saves the
model's own prediction pass over every row: ~1% of the time for LightGBM, ~4% for a
scikit-learn forest, whose ``predict`` dispatches one task per tree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synapsenet.errors import InvalidError, SynapseNetError

from ._forest_outputs import forest_raw_output, forest_trees
from ._interaction_tables import (
    InteractionTables,
    compile_interaction_tables,
    interaction_table_bytes,
)
from ._model_tables import model_tables
from ._native_trees import (
    LightGBMReads,
    NativeResult,
    native_contributions,
    native_interactions,
    native_margins,
    shap_reference,
)
from ._path_tables import DEFAULT_BUDGET_BYTES, PathTables
from ._tree_arrays import lightgbm_ensemble
from ._tree_models import TreeFamily, tree_family, unsupported_reason
from .adapters import ModelFunction, adapt
from .contract import (
    AccuracyTolerance,
    check_choice,
    check_int,
    check_local_accuracy,
    feature_names_of,
    resolve_feature_names,
    validate_background,
    validate_instances,
)
from .models import Explanation, ExplanationType, FloatArray

__all__ = [
    "ACCURACY_CHECKS",
    "ACCURACY_SAMPLE_SHARE",
    "FLOAT32_TREE_TOLERANCE",
    "IMPLEMENTATIONS",
    "NATIVE_TOLERANCE",
    "TABLES_SOURCE",
    "TREE_TOLERANCE",
    "NativeAgreement",
    "TreeSHAP",
    "TreeSHAPDisagreementError",
    "is_tree_model",
    "require_tree_model",
    "tree_family",
    "tree_interactions",
    "tree_shap",
]

FEATURE_PERTURBATIONS: tuple[str, ...] = ("tree_path_dependent", "interventional")
NATIVE_CHECKS: tuple[str, ...] = ("sample", "all", "off")
ACCURACY_CHECKS: tuple[str, ...] = ("sample", "all")
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "tables", "library")
TABLES_SOURCE = "synapsenet path tables"

TREE_TOLERANCE = AccuracyTolerance(atol=1e-6, rtol=1e-8)
"""Local accuracy of TreeSHAP on float64 trees (scikit-learn, LightGBM): exact up to rounding."""

FLOAT32_TREE_TOLERANCE = AccuracyTolerance(atol=1e-6, rtol=1e-5)
"""Local accuracy on XGBoost, whose leaf values, margins and contributions are float32."""

NATIVE_TOLERANCE = {"float64": AccuracyTolerance(1e-6, 1e-8), "float32": FLOAT32_TREE_TOLERANCE}
"""Native vs shap agreement: 1e-6 absolute for LightGBM (float64); XGBoost computes in float32,
so it is 1e-6 plus 1e-5 of the row's attribution mass (measured: 3e-7 to 8e-7 of it)."""

_OWNER = "TreeSHAP"
_NATIVE_CALL = {"xgboost": "pred_contribs", "lightgbm": "pred_contrib"}


class TreeSHAPDisagreementError(SynapseNetError):
    """A library's native TreeSHAP and shap's implementation gave different values."""

    code = "treeshap-disagreement"
    title = "TreeSHAP implementations disagree"

    def __init__(self, agreement: NativeAgreement) -> None:
        super().__init__(agreement.message(), native_check=asdict(agreement))
        self.agreement = agreement


@dataclass(frozen=True)
class NativeAgreement:
    """How closely the native TreeSHAP agreed with shap's on the rows checked.

    Attributes:
        native: The native computation, e.g. ``"xgboost pred_contribs"``.
        reference: The independent one it is compared with.
        rows_checked: How many rows were compared.
        max_abs_diff: Largest absolute difference over those rows, features and outputs.
        tolerance: The largest difference allowed.
        agrees: Whether ``max_abs_diff <= tolerance``.
    """

    native: str
    reference: str
    rows_checked: int
    max_abs_diff: float
    tolerance: float
    agrees: bool

    def message(self) -> str:
        """A one-line summary, naming both implementations and the gap."""
        verdict = "agree" if self.agrees else "DISAGREE"
        return (
            f"{self.native} and {self.reference} {verdict} on {self.rows_checked} rows: max "
            f"|difference| {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g})."
        )


def is_tree_model(model: object, feature_perturbation: str = "tree_path_dependent") -> bool:
    """Whether TreeSHAP explains ``model`` exactly with this feature perturbation.

    Args:
        model: Any object.
        feature_perturbation: ``"tree_path_dependent"`` or ``"interventional"``.

    Returns:
        True for the models :func:`tree_family` recognises, except combinations shap gets
        wrong (see :func:`unsupported_reason`).
    """
    return (
        tree_family(model) is not None and unsupported_reason(model, feature_perturbation) is None
    )


def require_tree_model(model: object) -> TreeFamily:
    """The model's tree family, or a clear error if TreeSHAP cannot explain it.

    Raises:
        InvalidError: If ``model`` is not a fitted tree model TreeSHAP supports.
    """
    family = tree_family(model)
    if family is None:
        raise InvalidError(
            f"TreeSHAP cannot explain a {type(model).__name__}: it needs a fitted "
            "scikit-learn tree model (trees, forests, binary or regression gradient "
            "boosting, histogram gradient boosting), XGBoost tree booster or LightGBM "
            "model. Use algorithm='exact' or 'kernel' for other models.",
            field="model",
        )
    return family


SAMPLE_SHARE = 64
"""``native_check="sample"`` checks at most one row in this many (and at least one)."""

ACCURACY_SAMPLE_SHARE = 8
"""``accuracy_check="sample"`` checks at most one row in this many (and at least one)."""


def _check_rows(
    n_rows: int, mode: str, sample_size: int, share: int = SAMPLE_SHARE
) -> np.ndarray[Any, np.dtype[np.intp]]:
    if mode == "off" or n_rows == 0:
        return np.empty(0, dtype=np.intp)
    if mode == "all":
        return np.arange(n_rows, dtype=np.intp)
    # shap's reference costs about as much per row as the native code, so checking every
    # row halves the throughput; at most 1/64 of the rows keeps it to ~1-2%. A prediction
    # costs a fraction of that, so local accuracy samples more densely (1/8).
    count = min(sample_size, max(1, n_rows // share))
    # Evenly spread, deterministic rows: the check must not make explanations random.
    return np.unique(np.linspace(0, n_rows - 1, count).round().astype(np.intp))


def _as_outputs(values: Any, n_rows: int, extra_axes: int) -> FloatArray:
    """Shap drops the output axis for one output; put it back as the last axis."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1 + extra_axes:
        array = array[..., None]
    return np.ascontiguousarray(array.reshape(n_rows, *array.shape[1:]))


class TreeSHAP:
    """Exact SHAP values of a tree ensemble, configured once and reused across calls.

    Args:
        model: A fitted tree model: scikit-learn decision trees, random forests, extra
            trees, (histogram) gradient boosting; XGBoost (tree boosters) or LightGBM, in
            either API.
        background: Reference rows for ``"interventional"`` (required there, refused for
            ``"tree_path_dependent"``, which uses the training cover stored in the trees).
        feature_perturbation: ``"tree_path_dependent"`` or ``"interventional"``.
        native_check: ``"sample"``, ``"all"`` or ``"off"``: which rows of tabulated or
            native XGBoost/LightGBM values are recomputed by shap's C extension and compared.
        native_check_rows: The most rows compared with ``native_check="sample"``; fewer
            for small batches (one row in :data:`SAMPLE_SHARE`, at least one).
        on_disagreement: ``"raise"`` (default) or ``"record"`` when the check fails.
        accuracy_check: ``"sample"`` (default) or ``"all"``: which rows' values are checked
            for local accuracy against the model's own raw prediction (see the module
            docstring); a violation always raises.
        accuracy_check_rows: The most rows checked with ``accuracy_check="sample"``.
        feature_names: Names of the features; else the DataFrame's columns, else the names
            the model was fitted with, else ``x0, x1, ...``.
        implementation: ``"auto"`` (tabulated TreeSHAP where it applies, see the module
            docstring), ``"tables"`` (tabulated or refuse) or ``"library"``.
        table_budget_bytes: The most memory the tables may take (the value tables, and for
            interaction values the value and pair tables together); a model needing more
            is explained by the library code (``"auto"``) or refused (``"tables"``).

    Raises:
        InvalidError: If the model is not a supported tree model or a parameter is invalid.
    """

    def __init__(
        self,
        model: object,
        *,
        background: object | None = None,
        feature_perturbation: str = "tree_path_dependent",
        native_check: str = "sample",
        native_check_rows: int = 8,
        on_disagreement: str = "raise",
        accuracy_check: str = "sample",
        accuracy_check_rows: int = 64,
        feature_names: Sequence[str] | None = None,
        implementation: str = "auto",
        table_budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        family = require_tree_model(model)
        unsupported = unsupported_reason(model, feature_perturbation)
        if unsupported is not None:
            raise InvalidError(unsupported, field="feature_perturbation")
        self.model = model
        self.family = family
        self.feature_perturbation = check_choice(
            feature_perturbation, "feature_perturbation", _OWNER, FEATURE_PERTURBATIONS
        )
        self.native_check = check_choice(native_check, "native_check", _OWNER, NATIVE_CHECKS)
        self.native_check_rows = check_int(
            native_check_rows, "native_check_rows", _OWNER, minimum=1
        )
        self.on_disagreement = check_choice(
            on_disagreement, "on_disagreement", _OWNER, ("raise", "record")
        )
        self.accuracy_check = check_choice(
            accuracy_check, "accuracy_check", _OWNER, ACCURACY_CHECKS
        )
        self.accuracy_check_rows = check_int(
            accuracy_check_rows, "accuracy_check_rows", _OWNER, minimum=1
        )
        self.feature_names = None if feature_names is None else tuple(feature_names)
        self.function: ModelFunction = adapt(model, output="raw")
        self.background: FloatArray | None = None
        if self.feature_perturbation == "interventional":
            if background is None:
                raise InvalidError(
                    "The 'background' parameter of TreeSHAP is required with "
                    "feature_perturbation='interventional'. Got None instead.",
                    field="background",
                )
            self.background = validate_background(
                background, self.function.n_features, self.function.allow_nan, owner=_OWNER
            )
        elif background is not None:
            raise InvalidError(
                "The 'background' parameter of TreeSHAP must be None with "
                "feature_perturbation='tree_path_dependent' (the trees' training cover is "
                "the background). Pass feature_perturbation='interventional' to use it.",
                field="background",
            )
        self.float32 = family == "xgboost"
        self.tolerance = FLOAT32_TREE_TOLERANCE if self.float32 else TREE_TOLERANCE
        self._explainer: Any = None
        self._reference: Any = None
        self._background_mean: FloatArray | None = None
        self.implementation = check_choice(
            implementation, "implementation", _OWNER, IMPLEMENTATIONS
        )
        self.table_budget_bytes = check_int(
            table_budget_bytes, "table_budget_bytes", _OWNER, minimum=0
        )
        self._tables: PathTables | None = None
        self._tables_report: dict[str, Any] | None = None
        self._pairs: InteractionTables | None = None
        self._pairs_report: dict[str, Any] | None = None
        self._lightgbm_reads: LightGBMReads | None = None
        if self.implementation == "tables":
            if self.feature_perturbation != "tree_path_dependent":
                raise InvalidError(
                    "The 'implementation' parameter of TreeSHAP can be 'tables' only with "
                    "feature_perturbation='tree_path_dependent'. Got 'interventional'.",
                    field="implementation",
                )
            if self._path_tables() is None:
                raise InvalidError(
                    f"TreeSHAP cannot tabulate this {type(model).__name__}: its trees are not "
                    "covered (categorical splits, DART, linear leaves, scikit-learn gradient "
                    "boosting, a custom missing marker) or its tables need more than "
                    f"table_budget_bytes={self.table_budget_bytes}. Use implementation='auto'.",
                    field="implementation",
                )

    # ------------------------------------------------------------------ shap objects

    def _path_tables(self) -> PathTables | None:
        """The tabulated TreeSHAP, built on first use; None where it does not apply."""
        if self.implementation == "library" or self.feature_perturbation != "tree_path_dependent":
            return None
        if self._tables_report is None:
            started = time.perf_counter()
            self._tables = model_tables(self.family, self.model, self.table_budget_bytes)
            self._tables_report = {
                "build_seconds": time.perf_counter() - started,
                "bytes": 0 if self._tables is None else self._tables.table_bytes,
                "budget_bytes": self.table_budget_bytes,
            }
        return self._tables

    def _interaction_tables(self) -> tuple[InteractionTables | None, dict[str, Any] | None]:
        """The tabulated interaction values (built on first use) and their report.

        None and no report where the value tables do not apply; None and an ``over_budget``
        report when the pair tables would not fit ``table_budget_bytes`` beside them.
        """
        tables = self._path_tables()
        if tables is None:
            return None, None
        if self._pairs_report is None:
            started = time.perf_counter()
            self._pairs = compile_interaction_tables(tables, self.table_budget_bytes)
            if self._pairs is None:
                needed = tables.table_bytes + interaction_table_bytes(tables)
                self._pairs_report = {
                    "status": "over_budget",
                    "bytes_needed": needed,
                    "budget_bytes": self.table_budget_bytes,
                    "reason": (
                        f"interaction tables need {needed} bytes with the value tables, over "
                        f"table_budget_bytes={self.table_budget_bytes}"
                    ),
                }
            else:
                self._pairs_report = {
                    "status": "used",
                    "build_seconds": time.perf_counter() - started,
                    "bytes": self._pairs.table_bytes,
                    "value_table_bytes": tables.table_bytes,
                    "budget_bytes": self.table_budget_bytes,
                }
        return self._pairs, self._pairs_report

    @property
    def table_bytes(self) -> int:
        """Memory held by the tables built so far (values, and interaction pairs if built)."""
        values = 0 if self._tables is None else self._tables.table_bytes
        return values + (0 if self._pairs is None else self._pairs.table_bytes)

    @property
    def uses_native(self) -> bool:
        """Whether SHAP values come from XGBoost's or LightGBM's own TreeSHAP."""
        return self.family != "sklearn" and self.feature_perturbation == "tree_path_dependent"

    def _shap_explainer(self) -> Any:
        if self._explainer is None:
            if self.family == "lightgbm":
                self._explainer = shap_reference("lightgbm", self.model, self.background)
            else:
                import shap

                self._explainer = shap.TreeExplainer(
                    self.model,
                    data=self.background,
                    feature_perturbation=self.feature_perturbation,
                )
        return self._explainer

    def _shap_reference(self) -> Any:
        if self.family == "sklearn":
            # shap's TreeExplainer runs its C extension on scikit-learn trees itself.
            return self._shap_explainer()
        if self._reference is None:
            self._reference = shap_reference(self.family, self.model)
        return self._reference

    def _reference_rows(self, rows: FloatArray) -> FloatArray:
        """Rows for shap's parse of the trees, LightGBM's missing-value reading applied."""
        if self.family != "lightgbm":
            return rows
        if self._lightgbm_reads is None:
            splits = None if self._tables is None else self._tables.splits
            if splits is None:
                ensemble = lightgbm_ensemble(self.model)
                reads = LightGBMReads.of_trees(() if ensemble is None else ensemble.trees)
            elif splits.nan_as_zero is None or splits.missing_zero is None:
                # The tables keep no flags when every split sends NaN the default way.
                reads = LightGBMReads.of_trees(())
            else:
                reads = LightGBMReads.of_splits(
                    splits.feature, splits.nan_as_zero, splits.missing_zero
                )
            self._lightgbm_reads = reads
        return self._lightgbm_reads.apply(rows)

    # ------------------------------------------------------------------ public API

    def explain(self, instances: object) -> Explanation:
        """SHAP values of the raw model output for ``instances``.

        Args:
            instances: ``(n, M)`` numbers (numpy, pandas or polars); a 1-D row is one row.

        Returns:
            A ``SHAP_TREE`` explanation; ``extras["native_check"]`` reports the agreement
            check (for native values), ``extras["local_accuracy"]`` the rows checked for
            local accuracy, and ``local_accuracy_error`` the largest error on them.

        Raises:
            InvalidError: On malformed instances (wrong feature count, NaN the model rejects).
            TreeSHAPDisagreementError: If native and shap values disagree and
                ``on_disagreement="raise"``.
            LocalAccuracyError: If the values do not add up to the raw prediction.
        """
        started = time.perf_counter()
        matrix = self._validate(instances)
        extras: dict[str, Any] = {}
        tables = self._path_tables()
        if tables is not None:
            values = tables.shap_values(matrix)
            bases = np.ascontiguousarray(
                np.broadcast_to(tables.expected_value, (matrix.shape[0], tables.n_outputs))
            )
            extras["native_check"] = self._check_native(
                NativeResult(values, bases), matrix, interactions=False, name=TABLES_SOURCE
            )
            extras["path_tables"] = dict(self._tables_report or {})
            source = TABLES_SOURCE
        elif self.uses_native:
            native = native_contributions(self.family, self.model, matrix)  # type: ignore[arg-type]
            values, bases = native.values, native.base_values
            extras["native_check"] = self._check_native(native, matrix, interactions=False)
            source = f"{self.family} {_NATIVE_CALL[self.family]}"
        else:
            explainer = self._shap_explainer()
            raw = explainer.shap_values(matrix, check_additivity=False)
            values = _as_outputs(raw, matrix.shape[0], extra_axes=1)
            bases = self._bases(explainer, values.shape[0], values.shape[2])
            extras["native_check"] = self._not_checked()
            source = "shap TreeExplainer"
        return self._explanation(
            ExplanationType.SHAP_TREE,
            values,
            bases,
            matrix,
            instances,
            source,
            extras,
            started,
        )

    def interactions(self, instances: object) -> Explanation:
        """Exact TreeSHAP interaction values of the raw model output.

        Args:
            instances: ``(n, M)`` numbers (numpy, pandas or polars).

        Returns:
            A ``SHAP_INTERACTION`` explanation: ``extras["interaction_values"]`` is
            ``(n, M, M, K)`` (symmetric; the diagonal holds main effects), and ``values``
            are its row sums, the SHAP values.

        Raises:
            InvalidError: With ``feature_perturbation="interventional"`` (shap computes
                interaction values only along tree paths), malformed instances, or
                ``implementation="tables"`` when the interaction tables exceed the budget.
            TreeSHAPDisagreementError: If the tabulated (or XGBoost's) values and shap's
                C extension disagree on the checked rows.
            LocalAccuracyError: If the interaction values do not add up to the prediction.
        """
        if self.feature_perturbation != "tree_path_dependent":
            raise InvalidError(
                "TreeSHAP interaction values need feature_perturbation='tree_path_dependent'; "
                "shap's interventional TreeSHAP does not compute interactions.",
                field="feature_perturbation",
            )
        started = time.perf_counter()
        matrix = self._validate(instances)
        extras: dict[str, Any] = {}
        pairs, report = self._interaction_tables()
        if report is not None:
            extras["interaction_tables"] = dict(report)
        if pairs is None and report is not None and self.implementation == "tables":
            raise InvalidError(
                f"TreeSHAP cannot tabulate the interaction values of this "
                f"{type(self.model).__name__}: its {report['reason']}. Use "
                "implementation='auto' or raise table_budget_bytes.",
                field="implementation",
            )
        if pairs is not None:
            interaction = pairs.interaction_values(matrix)
            bases = np.ascontiguousarray(
                np.broadcast_to(
                    pairs.values.expected_value, (matrix.shape[0], pairs.values.n_outputs)
                )
            )
            extras["native_check"] = self._check_native(
                NativeResult(interaction, bases), matrix, interactions=True, name=TABLES_SOURCE
            )
            extras["path_tables"] = dict(self._tables_report or {})
            source = TABLES_SOURCE
        elif self.family == "xgboost":
            native = native_interactions(self.model, matrix)
            interaction, bases = native.values, native.base_values
            extras["native_check"] = self._check_native(native, matrix, interactions=True)
            source = "xgboost pred_interactions"
        else:
            explainer = self._shap_explainer()
            raw = explainer.shap_interaction_values(self._reference_rows(matrix))
            interaction = _as_outputs(raw, matrix.shape[0], extra_axes=2)
            bases = self._bases(explainer, interaction.shape[0], interaction.shape[3])
            extras["native_check"] = self._not_checked()
            source = "shap TreeExplainer"
        extras["interaction_values"] = interaction
        return self._explanation(
            ExplanationType.SHAP_INTERACTION,
            interaction.sum(axis=2),
            bases,
            matrix,
            instances,
            source,
            extras,
            started,
        )

    # ------------------------------------------------------------------ internals

    def _validate(self, instances: object) -> FloatArray:
        return validate_instances(
            instances,
            self.function.n_features,
            self.function.allow_nan,
            owner=f"{_OWNER}.explain",
        )

    def _predict(self, matrix: FloatArray) -> FloatArray:
        if self.family != "sklearn":
            # Margins from the same trees (and iteration range) shap's values are built on.
            return native_margins(self.family, self.model, matrix)
        forest = forest_raw_output(self.model, matrix)
        return self.function.predict(matrix) if forest is None else forest

    def _prediction_source(self) -> str:
        if self.family == "xgboost":
            return "xgboost output_margin"
        if self.family == "lightgbm":
            return "lightgbm raw_score"
        if forest_trees(self.model) is not None:
            return "scikit-learn Tree.predict"
        return f"{type(self.model).__name__} prediction"

    def _local_accuracy(
        self, source: str, values: FloatArray, bases: FloatArray, matrix: FloatArray
    ) -> tuple[FloatArray, float, dict[str, Any]]:
        """Predictions of every row, the largest local-accuracy error, and the report.

        The model predicts the checked rows; the others get base + sum of values, the output
        the trees attributed (see the module docstring).
        """
        rows = _check_rows(
            matrix.shape[0], self.accuracy_check, self.accuracy_check_rows, ACCURACY_SAMPLE_SHARE
        )
        predictions = np.ascontiguousarray(values.sum(axis=1) + bases)
        error = 0.0
        if rows.size:
            own = self._predict(matrix[rows])
            error = check_local_accuracy(
                f"TreeSHAP ({source})", values[rows], bases[rows], own, self.tolerance
            )
            predictions[rows] = own
        report = {
            "rows_checked": int(rows.size),
            "rows": int(matrix.shape[0]),
            "against": self._prediction_source(),
            "max_abs_error": error,
        }
        return predictions, error, report

    def _bases(self, explainer: Any, n_rows: int, n_outputs: int) -> FloatArray:
        if self.background is not None:
            # The interventional base value is by definition the model's mean output over
            # the background. shap computes it with its own parse of the trees, which
            # misreads XGBoost's per-class base scores (off by up to 0.1 on a 3-class
            # model); the model's own margins are the ground truth.
            if self._background_mean is None:
                self._background_mean = self._predict(self.background).mean(axis=0)
            expected = self._background_mean
        else:
            expected = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
        return np.ascontiguousarray(np.broadcast_to(expected, (n_rows, n_outputs)))

    def _not_checked(self) -> dict[str, Any]:
        reason = (
            "values computed by shap's own TreeSHAP; no native implementation to compare"
            if self.family == "sklearn" or self.feature_perturbation == "interventional"
            else "LightGBM has no native interaction values; computed by shap's TreeSHAP"
        )
        return {"status": "not_applicable", "reason": reason}

    def _check_native(
        self,
        native: NativeResult,
        matrix: FloatArray,
        *,
        interactions: bool,
        name: str | None = None,
    ) -> dict[str, Any]:
        rows = _check_rows(matrix.shape[0], self.native_check, self.native_check_rows)
        if rows.size == 0:
            return {"status": "off"}
        reference = self._shap_reference()
        subset = self._reference_rows(matrix[rows])
        if interactions:
            raw = reference.shap_interaction_values(subset)
            expected = _as_outputs(raw, rows.size, extra_axes=2)
            mass = np.abs(native.values[rows]).sum(axis=(1, 2))
        else:
            raw = reference.shap_values(subset, check_additivity=False)
            expected = _as_outputs(raw, rows.size, extra_axes=1)
            mass = np.abs(native.values[rows]).sum(axis=1)
        tolerance = NATIVE_TOLERANCE["float32" if self.float32 else "float64"]
        scale = max(1.0, float((mass + np.abs(native.base_values[rows])).max()))
        allowed = tolerance.atol + tolerance.rtol * scale
        difference = float(np.abs(native.values[rows] - expected).max()) if rows.size else 0.0
        kind = "pred_interactions" if interactions else "pred_contribs"
        if name is None:
            name = f"xgboost {kind}" if self.family == "xgboost" else "lightgbm pred_contrib"
        agreement = NativeAgreement(
            native=name,
            reference="shap's C-extension TreeSHAP",
            rows_checked=int(rows.size),
            max_abs_diff=difference,
            tolerance=allowed,
            agrees=difference <= allowed,
        )
        if not agreement.agrees and self.on_disagreement == "raise":
            raise TreeSHAPDisagreementError(agreement)
        return {"status": "checked", **asdict(agreement), "message": agreement.message()}

    def _explanation(
        self,
        kind: ExplanationType,
        values: FloatArray,
        bases: FloatArray,
        matrix: FloatArray,
        instances: object,
        source: str,
        extras: dict[str, Any],
        started: float,
    ) -> Explanation:
        predictions, error, extras["local_accuracy"] = self._local_accuracy(
            source, values, bases, matrix
        )
        names = resolve_feature_names(
            self.feature_names,
            feature_names_of(instances),
            self.function.feature_names,
            n_features=values.shape[1],
            owner=_OWNER,
        )
        output_names = self.function.output_names
        if len(output_names) != values.shape[2]:
            output_names = tuple(f"output_{i}" for i in range(values.shape[2]))
        return Explanation(
            type=kind,
            values=values,
            base_values=bases,
            predictions=predictions,
            feature_names=names,
            output_names=output_names,
            parameters={
                "algorithm": "tree",
                "feature_perturbation": self.feature_perturbation,
                "model_output": "raw",
                "source": source,
                "native_check": self.native_check,
                "accuracy_check": self.accuracy_check,
                "implementation": self.implementation,
                "background_size": None if self.background is None else len(self.background),
            },
            seed=None,
            runtime_seconds=time.perf_counter() - started,
            local_accuracy_error=error,
            extras=extras,
        )


def tree_shap(
    model: object,
    instances: object,
    *,
    background: object | None = None,
    feature_perturbation: str = "tree_path_dependent",
    output: str = "raw",
    native_check: str = "sample",
) -> Explanation:
    """SHAP values of a tree model's raw output, in one call (see :class:`TreeSHAP`).

    Args:
        model: A fitted tree model.
        instances: ``(n, M)`` instances to explain.
        background: Reference rows, required for ``"interventional"``.
        feature_perturbation: ``"tree_path_dependent"`` or ``"interventional"``.
        output: Only ``"raw"``: TreeSHAP is exact for the trees' own output (log-odds for
            boosted classifiers); explain probabilities with the exact or kernel algorithm.
        native_check: ``"sample"``, ``"all"`` or ``"off"``.

    Returns:
        A ``SHAP_TREE`` explanation.
    """
    check_choice(output, "output", "tree_shap", ("raw",))
    explainer = TreeSHAP(
        model,
        background=background,
        feature_perturbation=feature_perturbation,
        native_check=native_check,
    )
    return explainer.explain(instances)


def tree_interactions(
    model: object, instances: object, *, native_check: str = "sample"
) -> Explanation:
    """Exact TreeSHAP interaction values, in one call (see :meth:`TreeSHAP.interactions`).

    Args:
        model: A fitted tree model.
        instances: ``(n, M)`` instances to explain.
        native_check: ``"sample"``, ``"all"`` or ``"off"`` (XGBoost only).

    Returns:
        A ``SHAP_INTERACTION`` explanation with ``extras["interaction_values"]``.
    """
    return TreeSHAP(model, native_check=native_check).interactions(instances)
