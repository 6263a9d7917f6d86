"""Turn a fitted model, or any prediction function, into one plain function of a matrix.

Every explainer works on ``f: (n, M) float64 -> (n, K) float64``. :func:`adapt` builds that
function for scikit-learn estimators (and pipelines), XGBoost (scikit-learn API and
``Booster``), LightGBM (scikit-learn API and ``Booster``) and any callable, and records what
the explainers need to know about it: the number and names of outputs, whether it is a
classifier, which link suits it, whether it takes NaN, and what input it expects.

Output conventions (the same as shap's):

* ``output="probability"``: a classifier's class probabilities, one output per class, so a
  binary classifier has **two** outputs ``[P(class 0), P(class 1)]``, as shap gives when it
  explains ``predict_proba`` and as its TreeExplainer gives for scikit-learn forests.
* ``output="raw"``: the untransformed score. Binary boosted classifiers (XGBoost, LightGBM,
  scikit-learn gradient boosting) have **one** output, the log-odds of the positive class,
  as shap's TreeExplainer gives; multi-class ones have one margin per class. Classifiers
  without a score of their own (random forests) fall back to their probabilities, which is
  what their trees output. Regressors' raw output is their margin (before any inverse link,
  e.g. ``exp`` of a Poisson objective).
* ``output="auto"``: probabilities for classifiers that have them (link ``"logit"``), the
  prediction for regressors (link ``"identity"``).

Predictions are made in chunks of ``batch_size`` rows, so explainers may pass very large
synthetic matrices without the model materialising one huge intermediate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synapsenet.errors import InvalidError

from ._model_specs import (
    Family,
    Kind,
    boosted_sklearn_spec,
    callable_spec,
    fitted_names,
    is_booster,
    lightgbm_booster_spec,
    sklearn_spec,
    xgboost_booster_spec,
)
from .contract import check_choice, check_int, invalid_parameter
from .models import FloatArray

Output = Literal["auto", "probability", "raw"]
Link = Literal["identity", "logit"]

OUTPUTS: tuple[str, ...] = ("auto", "probability", "raw")
DEFAULT_BATCH_SIZE = 65_536
"""Rows per model call; bounds the memory of one prediction on a large synthetic matrix."""

_OWNER = "adapt"


@dataclass(frozen=True)
class ModelFunction:
    """A model seen as ``predict: (n, M) float64 -> (n, K) float64``, with what it means.

    Attributes:
        predict: The prediction function; always returns a 2-D float64 array.
        n_outputs: ``K``, the number of columns ``predict`` returns.
        output_names: One name per output (class labels for probabilities).
        kind: ``"classification"`` or ``"regression"``.
        link_default: ``"logit"`` when ``predict`` returns probabilities, else ``"identity"``.
        output: What ``predict`` returns: ``"probability"``, ``"raw"`` or ``"prediction"``
            (a regressor's or a plain function's ordinary output).
        family: ``"sklearn"``, ``"xgboost"``, ``"lightgbm"`` or ``"callable"``.
        n_features: The feature count the model was fitted on, None when unknown.
        feature_names: The feature names the model was fitted with, None when unknown.
        allow_nan: Whether the model accepts NaN in its input.
        model: The wrapped model or function.
    """

    predict: Callable[[FloatArray], FloatArray]
    n_outputs: int
    output_names: tuple[str, ...]
    kind: Kind
    link_default: Link
    output: str
    family: Family
    n_features: int | None
    feature_names: tuple[str, ...] | None
    allow_nan: bool
    model: object

    def __call__(self, instances: FloatArray) -> FloatArray:
        """Predict; the same as ``self.predict(instances)``."""
        return self.predict(instances)


class ModelOutputError(InvalidError):
    """The model returned something that cannot be explained (wrong shape, NaN, inf)."""

    code = "invalid-model-output"
    title = "Unusable model output"


# ---------------------------------------------------------------------- detection


def _module_of(model: object) -> str:
    return type(model).__module__.split(".")[0]


def model_family(model: object) -> Family:
    """Which adapter handles ``model``.

    Args:
        model: A fitted model or a callable.

    Returns:
        ``"xgboost"`` and ``"lightgbm"`` for those libraries' models (either API),
        ``"sklearn"`` for scikit-learn-style estimators, ``"callable"`` for functions.

    Raises:
        InvalidError: If ``model`` is none of these.
    """
    module = _module_of(model)
    if module == "xgboost" and hasattr(model, "predict"):
        return "xgboost"
    if module == "lightgbm" and hasattr(model, "predict"):
        return "lightgbm"
    if hasattr(model, "predict") and hasattr(model, "get_params"):
        return "sklearn"
    if callable(model):
        return "callable"
    raise invalid_parameter(
        "model",
        _OWNER,
        "a fitted scikit-learn, XGBoost or LightGBM model, or a callable",
        type(model).__name__,
    )


def _generic_names(count: int) -> tuple[str, ...]:
    return ("output",) if count == 1 else tuple(f"output_{i}" for i in range(count))


# ---------------------------------------------------------------------- predictions


def _as_2d(raw: Any, n_rows: int, model: object) -> FloatArray:
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise ModelOutputError(
            f"{type(model).__name__} returned an array of shape {array.shape}; explainers need "
            "one row per instance and one column per output."
        )
    if array.shape[0] != n_rows:
        raise ModelOutputError(
            f"{type(model).__name__} returned {array.shape[0]} rows for {n_rows} instances."
        )
    return array


def _chunked(
    predict_chunk: Callable[[FloatArray], Any], model: object, batch_size: int
) -> Callable[[FloatArray], FloatArray]:
    def predict(instances: FloatArray) -> FloatArray:
        n_rows = instances.shape[0]
        if n_rows <= batch_size:
            result = _as_2d(predict_chunk(instances), n_rows, model)
        else:
            parts = [
                _as_2d(predict_chunk(instances[start : start + batch_size]), chunk_rows, model)
                for start in range(0, n_rows, batch_size)
                for chunk_rows in [min(batch_size, n_rows - start)]
            ]
            result = np.concatenate(parts, axis=0)
        if not np.isfinite(result).all():
            row = int(np.argwhere(~np.isfinite(result))[0, 0])
            raise ModelOutputError(
                f"{type(model).__name__} returned a non-finite prediction (first at row {row} "
                "of the batch); attributions of NaN or inf are meaningless."
            )
        return result

    return predict


def adapt(
    model_or_fn: object,
    *,
    output: str = "auto",
    feature_names: Sequence[str] | None = None,
    allow_nan: bool | None = None,
    as_frame: bool | None = None,
    example: FloatArray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ModelFunction:
    """Wrap a model, or a prediction function, as a :class:`ModelFunction`.

    Args:
        model_or_fn: A fitted scikit-learn estimator or pipeline, an XGBoost or LightGBM
            model (scikit-learn API or ``Booster``), or a callable taking an ``(n, M)``
            array and returning ``(n,)`` or ``(n, K)`` numbers. A ``ModelFunction`` is
            returned unchanged.
        output: ``"auto"``, ``"probability"`` or ``"raw"``; see the module docstring. For a
            callable, ``"probability"`` declares that it returns probabilities.
        feature_names: Names of the model's features, overriding the names it was fitted with.
        allow_nan: Whether the model takes NaN; None asks the model (scikit-learn tags;
            XGBoost and LightGBM always do; a callable is assumed not to).
        as_frame: Pass the model a pandas DataFrame with its fitted column names (True), a
            numpy array (False), or decide from whether it was fitted on a DataFrame (None).
        example: A few valid input rows, used to find the number of outputs when the model
            does not declare it (callables, some regressors).
        batch_size: Rows per model call.

    Returns:
        The adapted model.

    Raises:
        InvalidError: If the model is unsupported, ``output`` does not fit it, or its number
            of outputs cannot be determined.
    """
    if isinstance(model_or_fn, ModelFunction):
        return model_or_fn
    check_choice(output, "output", _OWNER, OUTPUTS)
    batch = check_int(batch_size, "batch_size", _OWNER, minimum=1)
    family = model_family(model_or_fn)
    model: Any = model_or_fn
    given_names = None if feature_names is None else tuple(str(name) for name in feature_names)
    frame_columns = _frame_columns(model, family, as_frame, given_names)
    if family == "xgboost":
        spec = (
            xgboost_booster_spec(model, output)
            if is_booster(model)
            else boosted_sklearn_spec(model, family, output, frame_columns)
        )
    elif family == "lightgbm":
        spec = (
            lightgbm_booster_spec(model, output)
            if is_booster(model)
            else boosted_sklearn_spec(model, family, output, frame_columns)
        )
    elif family == "sklearn":
        spec = sklearn_spec(model, output, frame_columns)
    else:
        if output == "raw":
            # A plain function has one output: its own. "raw" and "auto" mean the same.
            output = "auto"
        spec = callable_spec(model, output, frame_columns)

    predict = _chunked(spec.predict_chunk, model, batch)
    n_outputs = spec.n_outputs
    if n_outputs is None:
        n_outputs = _probe_outputs(predict, model, example)
    names = spec.output_names or _generic_names(n_outputs)
    if len(names) != n_outputs:
        names = _generic_names(n_outputs)
    fitted_names = given_names if given_names is not None else spec.feature_names
    return ModelFunction(
        predict=predict,
        n_outputs=n_outputs,
        output_names=names,
        kind=spec.kind,
        link_default="logit" if spec.output == "probability" else "identity",
        output=spec.output,
        family=family,
        n_features=spec.n_features,
        feature_names=fitted_names,
        allow_nan=spec.allow_nan if allow_nan is None else allow_nan,
        model=model,
    )


def _frame_columns(
    model: object, family: Family, as_frame: bool | None, given: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    if as_frame is False or (family in ("xgboost", "lightgbm") and is_booster(model)):
        return None
    fitted = fitted_names(model)
    if as_frame is None:
        return fitted
    columns = fitted or given
    if columns is None:
        raise InvalidError(
            "as_frame=True needs column names: the model was not fitted on a DataFrame, so "
            "pass feature_names to adapt.",
            field="as_frame",
        )
    return columns


def _probe_outputs(
    predict: Callable[[FloatArray], FloatArray], model: object, example: FloatArray | None
) -> int:
    if example is None or len(example) == 0:
        raise InvalidError(
            f"Cannot tell how many outputs {type(model).__name__} has: it does not declare "
            "them. Pass a background (or an 'example' row to adapt) so it can be called once.",
            field="model",
        )
    return int(predict(np.asarray(example[:1], dtype=np.float64)).shape[1])
