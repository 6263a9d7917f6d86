"""Inferring a model's signature from the fitted object.

Feature names come from the model when it kept them (``feature_names_in_``, an XGBoost
booster's ``feature_names``, a LightGBM booster's ``feature_name()``), else from the caller,
else ``f0 .. f{n-1}`` when the model knows only how many it takes. The output kind comes
from the estimator type or the booster's objective.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from synapsenet.errors import InvalidError
from synapsenet.services.registry.models import ModelFlavor, ModelSignature, OutputKind

__all__ = ["infer_signature", "model_feature_count"]


def infer_signature(
    model: object, flavor: ModelFlavor, feature_names: Sequence[str] | None = None
) -> ModelSignature:
    """A numeric-feature signature for ``model``.

    Args:
        model: The fitted model.
        flavor: Its flavour.
        feature_names: Names to use instead of the model's own.

    Raises:
        InvalidError: Naming ``feature_names`` when the model does not say how many features
            it takes and none were given, or when the given names disagree with its count.
    """
    count = model_feature_count(model)
    if feature_names is not None:
        names = tuple(map(str, feature_names))
        if count is not None and len(names) != count:
            raise InvalidError(
                f"feature_names has {len(names)} names, but the model takes {count} features",
                field="feature_names",
            )
    else:
        names = _model_feature_names(model) or ()
        if not names:
            if count is None:
                raise InvalidError(
                    "the model does not say which features it takes; pass feature_names or "
                    "a signature",
                    field="feature_names",
                )
            names = tuple(f"f{i}" for i in range(count))
    kind, outputs = _output(model, flavor)
    return ModelSignature.numeric(names, kind, outputs)


def model_feature_count(model: object) -> int | None:
    """How many input features the model takes, when it says."""
    for attribute in ("n_features_in_", "n_features_"):
        value = getattr(model, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    booster = _booster(model)
    if booster is not None and hasattr(booster, "num_feature"):  # LightGBM and XGBoost
        value = booster.num_feature()
        return int(value) if value else None
    return None


def _booster(model: object) -> Any:
    module = type(model).__module__.split(".", 1)[0]
    if module == "xgboost":
        return model.get_booster() if hasattr(model, "get_booster") else model
    if module == "lightgbm":
        return getattr(model, "booster_", model)
    return None


def _model_feature_names(model: object) -> tuple[str, ...] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return tuple(map(str, names))
    booster = _booster(model)
    if booster is None:
        return None
    if hasattr(booster, "feature_name"):  # LightGBM
        return tuple(map(str, booster.feature_name()))
    xgb_names = getattr(booster, "feature_names", None)
    return tuple(map(str, xgb_names)) if xgb_names else None


def _classes(model: object) -> tuple[str, ...] | None:
    classes = getattr(model, "classes_", None)
    return None if classes is None else tuple(str(c) for c in classes)


def _output(model: object, flavor: ModelFlavor) -> tuple[OutputKind, tuple[str, ...] | None]:
    estimator_type = getattr(model, "_estimator_type", None)
    if estimator_type is None:
        try:
            from sklearn.base import is_classifier, is_regressor

            if is_classifier(model):
                estimator_type = "classifier"
            elif is_regressor(model):
                estimator_type = "regressor"
        except Exception:  # not a scikit-learn estimator at all
            estimator_type = None
    if estimator_type == "classifier":
        if hasattr(model, "predict_proba"):
            return OutputKind.PROBABILITY, _classes(model)
        return OutputKind.LABEL, _classes(model)
    if estimator_type == "regressor":
        return OutputKind.REGRESSION, None
    if flavor is ModelFlavor.XGBOOST:
        return _xgboost_objective(_booster(model))
    if flavor is ModelFlavor.LIGHTGBM:
        return _lightgbm_objective(_booster(model))
    if flavor is ModelFlavor.SKLEARN and hasattr(model, "predict"):
        return OutputKind.LABEL, None
    return OutputKind.REGRESSION, None


def _xgboost_objective(booster: Any) -> tuple[OutputKind, tuple[str, ...] | None]:
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective.startswith("binary:logistic"):
        return OutputKind.PROBABILITY, None
    if objective == "multi:softprob":
        return OutputKind.PROBABILITY, None
    if objective == "multi:softmax":
        return OutputKind.LABEL, None
    return OutputKind.REGRESSION, None


def _lightgbm_objective(booster: Any) -> tuple[OutputKind, tuple[str, ...] | None]:
    objective = str(booster.dump_model(num_iteration=0).get("objective", "")).split(" ", 1)[0]
    if objective in ("binary", "multiclass", "cross_entropy"):
        return OutputKind.PROBABILITY, None
    return OutputKind.REGRESSION, None
