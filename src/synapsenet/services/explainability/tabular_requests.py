"""Tabular requests of the explanation service: rows, parameters, SHAP or LIME.

Turns what a request sends (rows as lists or records keyed by feature name, dataset
tables) into the model's feature matrix, checks the explainer parameters a request may set,
and explains with :class:`~.shap_explainer.SHAPExplainer` or tabular LIME. Batch jobs
explain in chunks; :func:`concatenate` joins the chunks' explanations.

SHAP explainers of tree models are kept per model version and settings
(:class:`TreeExplainerPool`): TreeSHAP's agreement check parses the trees with shap on its
first call (about 0.1-0.3 s for a few hundred trees, far more than explaining one row), and
a version's content hash, part of the pool key, changes whenever its artifact does.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pyarrow as pa

from synapsenet.errors import InvalidError

from .loader import LoadedModel
from .models import Explanation, FloatArray

if TYPE_CHECKING:
    from .shap_explainer import SHAPExplainer

Method = Literal["shap", "lime"]

SHAP_PARAMETERS: Final = frozenset(
    {
        "link",
        "n_samples",
        "max_exact_features",
        "background_size",
        "seed",
        "tol",
        "output",
        "feature_perturbation",
        "native_check",
        "accuracy_check",
    }
)
"""The SHAPExplainer parameters a request may set (the model and background are the service's)."""


def as_matrix(instances: object, feature_names: tuple[str, ...]) -> FloatArray:
    """Rows (lists or records keyed by feature name) as a float ``(n, M)`` matrix.

    Records are matched to the model's features by name, so their key order does not
    matter; ``None`` becomes NaN (missing).

    Raises:
        InvalidError: Naming ``instances``, on no rows, a wrong feature count, missing or
            unknown record keys, or non-numeric values.
    """
    n_features = len(feature_names)
    if isinstance(instances, pa.Table):
        instances = instances.to_pylist()
    if isinstance(instances, np.ndarray):
        rows: list[Any] = list(np.atleast_2d(instances))
    elif isinstance(instances, list | tuple):
        rows = list(instances)
    else:
        raise InvalidError(
            f"instances must be a list of rows or records. Got {type(instances).__name__}.",
            field="instances",
        )
    if not rows:
        raise InvalidError("instances must hold at least one row", field="instances")
    wanted = set(feature_names)
    matrix = np.empty((len(rows), n_features), dtype=np.float64)
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [name for name in feature_names if name not in row]
            unknown = sorted(set(map(str, row)) - wanted)
            if missing or unknown:
                raise InvalidError(
                    f"instances[{i}] must have exactly the model's features; "
                    f"missing {missing}, unknown {unknown}",
                    field="instances",
                )
            values = [row[name] for name in feature_names]
        else:
            values = list(row)
        if len(values) != n_features:
            raise InvalidError(
                f"instances[{i}] has {len(values)} values; the model takes {n_features} "
                f"features ({', '.join(feature_names)})",
                field="instances",
            )
        try:
            matrix[i] = [np.nan if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            raise InvalidError(
                f"instances[{i}] holds a value that is not a number", field="instances"
            ) from None
    return matrix


def model_columns(table: pa.Table, feature_names: tuple[str, ...]) -> pa.Table:
    """The model's columns of a dataset table (extra columns, e.g. labels, are dropped)."""
    if set(feature_names) <= set(table.column_names):
        return table.select(list(feature_names))
    return table


def concatenate(parts: list[Explanation]) -> Explanation:
    """One explanation of all the rows of several chunk explanations."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    errors = [p.local_accuracy_error for p in parts if p.local_accuracy_error is not None]
    standard_errors = (
        np.concatenate([p.standard_errors for p in parts if p.standard_errors is not None])
        if all(p.standard_errors is not None for p in parts)
        else None
    )
    return replace(
        first,
        values=np.concatenate([p.values for p in parts]),
        base_values=np.concatenate([p.base_values for p in parts]),
        predictions=np.concatenate([p.predictions for p in parts]),
        standard_errors=standard_errors,
        runtime_seconds=sum(p.runtime_seconds for p in parts),
        local_accuracy_error=max(errors) if errors else None,
        extras={"chunks": [p.extras for p in parts]},
    )


class TreeExplainerPool:
    """SHAP explainers of tree models, reused across requests, least recently used evicted.

    Only explainers that resolved to TreeSHAP are kept: they are stateless between calls
    apart from what they build once on first use (the tabulated TreeSHAP's tables, shap's
    parse of the trees for the agreement check). Two threads building the same state at
    once both succeed; one result is kept.

    The tables can take up to ``TreeSHAP``'s ``table_budget_bytes`` (256 MiB) per model, so
    the pool is bounded by their memory as well as by count: when an explainer is added, the
    least recently used ones go until at most ``max_size`` remain and the tables of the
    others add up to at most ``max_table_bytes`` (tables are counted once built, so the
    newest explainer's count on the next addition).

    Args:
        max_size: Explainers kept.
        max_table_bytes: Memory the kept explainers' tables may take together.
    """

    def __init__(self, max_size: int = 16, max_table_bytes: int = 1 << 30) -> None:
        self.max_size = max_size
        self.max_table_bytes = max_table_bytes
        self._explainers: OrderedDict[tuple[str, str, str], SHAPExplainer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._explainers)

    def shap(
        self, loaded: LoadedModel, algorithm: str, parameters: Mapping[str, Any]
    ) -> SHAPExplainer:
        """The SHAP explainer of this model version and settings, built once if a tree one.

        Raises:
            InvalidError: On invalid parameters (nothing is kept then).
        """
        from .shap_explainer import SHAPExplainer

        settings = json.dumps(parameters, sort_keys=True, default=repr)
        key = (loaded.content_hash, algorithm, settings)
        with self._lock:
            found = self._explainers.get(key)
            if found is not None:
                self._explainers.move_to_end(key)
                return found
        explainer = SHAPExplainer(
            loaded.model,
            background=loaded.background,
            algorithm=algorithm,
            feature_names=loaded.feature_names,
            **parameters,
        )
        if explainer.tree_ is not None:
            with self._lock:
                self._explainers[key] = explainer
                while len(self._explainers) > self.max_size or (
                    len(self._explainers) > 1 and self.table_bytes > self.max_table_bytes
                ):
                    self._explainers.popitem(last=False)
        return explainer

    @property
    def table_bytes(self) -> int:
        """Memory of the tables the kept explainers have built."""
        return sum(
            explainer.tree_.table_bytes
            for explainer in self._explainers.values()
            if explainer.tree_ is not None
        )


def explain_tabular(
    loaded: LoadedModel,
    matrix: FloatArray,
    method: Method,
    algorithm: str,
    parameters: Mapping[str, Any],
    pool: TreeExplainerPool | None = None,
) -> Explanation:
    """Explain rows of a tabular model with SHAP or LIME, outputs named as the model's.

    Args:
        loaded: The model version.
        matrix: ``(n, M)`` rows.
        method: ``"shap"`` or ``"lime"``.
        algorithm: SHAP's algorithm.
        parameters: Explainer parameters from the request.
        pool: Where tree explainers are kept between requests; a new explainer per call
            when None.

    Raises:
        InvalidError: An unknown method or parameter, or LIME without background rows.
    """
    if method == "shap":
        unknown = sorted(set(parameters) - SHAP_PARAMETERS)
        if unknown:
            raise InvalidError(
                f"SHAP does not take the parameter(s) {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(SHAP_PARAMETERS))}",
                field=f"parameters.{unknown[0]}",
            )
        # The pool imports the explainer stack (shap, numba) on the first explanation, not
        # when the API server starts.
        explainers = pool if pool is not None else TreeExplainerPool(max_size=0)
        explanation = explainers.shap(loaded, algorithm, parameters).explain(matrix)
    elif method == "lime":
        if loaded.background is None:
            raise InvalidError(
                f"LIME samples around training statistics, and model {loaded.name} "
                f"version {loaded.version} has no background rows in its metadata",
                field="method",
            )
        from synapsenet.services.explainability.adapters import adapt
        from synapsenet.services.explainability.lime_explainer import LIMEExplainer

        function = adapt(loaded.model, example=loaded.background)
        options = {"seed": 0, **parameters}
        lime = LIMEExplainer(
            loaded.background,
            kind="tabular",
            mode=function.kind,
            feature_names=loaded.feature_names,
            categorical_features=loaded.categorical_features,
            **options,
        )
        explanation = lime.explain(function.predict, matrix[0] if len(matrix) == 1 else matrix)
    else:
        raise InvalidError(
            f"The 'method' of an explanation must be 'shap' or 'lime'. Got {method!r}.",
            field="method",
        )
    if loaded.output_names is not None and len(loaded.output_names) == explanation.n_outputs:
        explanation = replace(explanation, output_names=loaded.output_names)
    return explanation
