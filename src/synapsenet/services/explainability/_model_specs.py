"""How each model family is called: one prediction spec per family and output choice.

:func:`~.adapters.adapt` picks the spec; this module knows each library's API: which method
gives probabilities or raw scores, how many outputs that makes, what the outputs are named,
whether NaN is accepted, and which input type the model expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from .contract import invalid_parameter
from .models import FloatArray

Kind = Literal["regression", "classification"]
Family = Literal["sklearn", "xgboost", "lightgbm", "callable"]

_OWNER = "adapt"


def is_classifier(model: object) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(model))


def sklearn_allows_nan(model: object) -> bool:
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(model).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        # Estimators from libraries that predate the tags API: assume the strict case,
        # so NaN is rejected with a clear message instead of failing inside the model.
        return False


def fitted_names(model: object) -> tuple[str, ...] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else tuple(str(name) for name in names)


def fitted_n_features(model: object) -> int | None:
    count = getattr(model, "n_features_in_", None)
    return None if count is None else int(count)


def label_names(classes: Sequence[Any] | None, count: int) -> tuple[str, ...]:
    if classes is not None and len(classes) == count:
        return tuple(str(label) for label in classes)
    return tuple(str(i) for i in range(count))


def _two_class(probability: FloatArray) -> FloatArray:
    positive = probability.reshape(-1)
    return np.column_stack([1.0 - positive, positive])


def _softmax(margin: FloatArray) -> FloatArray:
    shifted = margin - margin.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _sigmoid(margin: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-margin))
    return result


@dataclass(frozen=True)
class ModelSpec:
    predict_chunk: Callable[[FloatArray], Any]
    n_outputs: int | None
    output_names: tuple[str, ...] | None
    kind: Kind
    output: str
    n_features: int | None
    feature_names: tuple[str, ...] | None
    allow_nan: bool


def frame_maker(columns: tuple[str, ...] | None) -> Callable[[FloatArray], Any]:
    if columns is None:
        return lambda chunk: chunk
    import pandas as pd

    names = list(columns)
    # Models fitted on a DataFrame warn (scikit-learn) or refuse (XGBoost) on bare arrays.
    return lambda chunk: pd.DataFrame(chunk, columns=names, copy=False)


def sklearn_spec(model: Any, output: str, frame_columns: tuple[str, ...] | None) -> ModelSpec:
    names = fitted_names(model)
    to_input = frame_maker(frame_columns)
    n_features = fitted_n_features(model)
    allow_nan = sklearn_allows_nan(model)
    if is_classifier(model):
        classes = getattr(model, "classes_", None)
        n_classes = None if classes is None else len(classes)
        has_proba = hasattr(model, "predict_proba")
        has_score = hasattr(model, "decision_function")
        resolved = output if output != "auto" else ("probability" if has_proba else "raw")
        if resolved == "probability" or (resolved == "raw" and not has_score):
            if not has_proba:
                raise invalid_parameter(
                    "output", _OWNER, "'raw' for a classifier without predict_proba", output
                )
            return ModelSpec(
                lambda chunk: model.predict_proba(to_input(chunk)),
                n_classes,
                label_names(classes, n_classes or 0) if n_classes else None,
                "classification",
                # A forest's "raw" output is its probability: that is what its trees hold.
                "probability",
                n_features,
                names,
                allow_nan,
            )
        binary = n_classes == 2
        return ModelSpec(
            lambda chunk: model.decision_function(to_input(chunk)),
            (1 if binary else n_classes),
            (
                (str(classes[1]),)
                if binary and classes is not None
                else (label_names(classes, n_classes) if n_classes else None)
            ),
            "classification",
            "raw",
            n_features,
            names,
            allow_nan,
        )
    if output == "probability":
        raise invalid_parameter(
            "output", _OWNER, "'auto' or 'raw' for a regressor (it has no probabilities)", output
        )
    return ModelSpec(
        lambda chunk: model.predict(to_input(chunk)),
        _declared_regression_outputs(model),
        None,
        "regression",
        "prediction",
        n_features,
        names,
        allow_nan,
    )


def _declared_regression_outputs(model: Any) -> int | None:
    declared = getattr(model, "n_outputs_", None)
    if declared is not None:
        return int(declared)
    from sklearn.utils import get_tags

    try:
        multi_output = bool(get_tags(model).target_tags.multi_output)
    except (AttributeError, TypeError, ValueError):
        return None
    # A single-output estimator (gradient boosting) always predicts one column; one that
    # can fit several targets (linear models) is asked by calling it once.
    return None if multi_output else 1


def _xgboost_objective(booster: Any) -> tuple[str, int]:
    config = json.loads(booster.save_config())
    learner = config["learner"]
    objective = str(learner["objective"]["name"])
    n_classes = int(learner["learner_model_param"].get("num_class", "0"))
    return objective, n_classes


def xgboost_booster_spec(booster: Any, output: str) -> ModelSpec:
    import xgboost

    objective, n_classes = _xgboost_objective(booster)
    names = None if booster.feature_names is None else tuple(booster.feature_names)
    n_features = int(booster.num_features())
    is_classifier = objective.startswith(("binary:", "multi:"))

    def margin(chunk: FloatArray) -> Any:
        matrix = xgboost.DMatrix(chunk, feature_names=booster.feature_names)
        return booster.predict(matrix, output_margin=True, validate_features=False)

    if not is_classifier:
        if output == "probability":
            raise invalid_parameter(
                "output", _OWNER, f"'auto' or 'raw' for objective {objective!r}", output
            )

        def predicted(chunk: FloatArray) -> Any:
            matrix = xgboost.DMatrix(chunk, feature_names=booster.feature_names)
            return booster.predict(matrix, validate_features=False)

        chosen = margin if output == "raw" else predicted
        return ModelSpec(
            chosen,
            None,
            None,
            "regression",
            "raw" if output == "raw" else "prediction",
            n_features,
            names,
            True,
        )
    multi = objective.startswith("multi:")
    count = n_classes if multi else 2
    if output == "raw":
        return ModelSpec(
            margin,
            count if multi else 1,
            label_names(None, count) if multi else ("1",),
            "classification",
            "raw",
            n_features,
            names,
            True,
        )
    if objective == "binary:hinge":
        raise invalid_parameter(
            "output", _OWNER, "'raw' for objective 'binary:hinge' (no probabilities)", output
        )

    def probability(chunk: FloatArray) -> FloatArray:
        scores = np.asarray(margin(chunk), dtype=np.float64)
        if multi:
            return _softmax(scores.reshape(chunk.shape[0], count))
        return _two_class(_sigmoid(scores))

    return ModelSpec(
        probability,
        count,
        label_names(None, count),
        "classification",
        "probability",
        n_features,
        names,
        True,
    )


def _lightgbm_objective(booster: Any) -> str:
    objective = booster.params.get("objective")
    if objective is None:
        for line in booster.model_to_string(num_iteration=0).splitlines():
            if line.startswith("objective="):
                objective = line.removeprefix("objective=").split(" ")[0]
                break
    return str(objective or "regression")


def lightgbm_booster_spec(booster: Any, output: str) -> ModelSpec:
    objective = _lightgbm_objective(booster)
    n_models = int(booster.num_model_per_iteration())
    names = tuple(str(name) for name in booster.feature_name())
    n_features = int(booster.num_feature())
    is_classifier = objective in {"binary", "multiclass", "multiclassova", "softmax", "ova"}
    if not is_classifier and output == "probability":
        raise invalid_parameter(
            "output", _OWNER, f"'auto' or 'raw' for objective {objective!r}", output
        )
    if output == "raw" or not is_classifier:
        raw = output == "raw"
        return ModelSpec(
            lambda chunk: booster.predict(chunk, raw_score=raw),
            n_models,
            (
                ("1",)
                if is_classifier and n_models == 1
                else label_names(None, n_models)
                if is_classifier
                else None
            ),
            "classification" if is_classifier else "regression",
            "raw" if raw else "prediction",
            n_features,
            names,
            True,
        )
    count = 2 if n_models == 1 else n_models

    def probability(chunk: FloatArray) -> FloatArray:
        predicted = np.asarray(booster.predict(chunk), dtype=np.float64)
        return _two_class(predicted) if n_models == 1 else predicted

    return ModelSpec(
        probability,
        count,
        label_names(None, count),
        "classification",
        "probability",
        n_features,
        names,
        True,
    )


def boosted_sklearn_spec(
    model: Any, family: Family, output: str, frame_columns: tuple[str, ...] | None
) -> ModelSpec:
    """XGBoost/LightGBM scikit-learn API: sklearn behaviour, but raw means the margin."""
    if output != "raw":
        spec = sklearn_spec(model, output, frame_columns)
        if spec.n_outputs is None:
            spec = replace(spec, n_outputs=_boosted_targets(model, family))
        return spec
    names = fitted_names(model)
    to_input = frame_maker(frame_columns)
    keyword = "output_margin" if family == "xgboost" else "raw_score"
    classes = getattr(model, "classes_", None) if is_classifier(model) else None
    n_classes = None if classes is None else len(classes)
    if classes is not None:
        binary = n_classes == 2
        n_outputs: int | None = 1 if binary else n_classes
        output_names: tuple[str, ...] | None = (
            (str(classes[1]),) if binary else label_names(classes, n_classes or 0)
        )
    else:
        n_outputs, output_names = _boosted_targets(model, family), None
    return ModelSpec(
        lambda chunk: model.predict(to_input(chunk), **{keyword: True}),
        n_outputs,
        output_names,
        "classification" if classes is not None else "regression",
        "raw",
        fitted_n_features(model),
        names,
        sklearn_allows_nan(model),
    )


def _boosted_targets(model: Any, family: Family) -> int:
    """How many targets a boosted regressor was fitted on (multi-target boosting exists)."""
    if family == "lightgbm":
        return int(model.booster_.num_model_per_iteration())
    config = json.loads(model.get_booster().save_config())
    return max(1, int(config["learner"]["learner_model_param"].get("num_target", "1")))


def callable_spec(
    function: Callable[..., Any], output: str, frame_columns: tuple[str, ...] | None
) -> ModelSpec:
    probability = output == "probability"
    to_input = frame_maker(frame_columns)
    return ModelSpec(
        lambda chunk: function(to_input(chunk)),
        None,
        None,
        "classification" if probability else "regression",
        "probability" if probability else "prediction",
        None,
        None,
        False,
    )


def is_booster(model: object) -> bool:
    return type(model).__name__ == "Booster"
