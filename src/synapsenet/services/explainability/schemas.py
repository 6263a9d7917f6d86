"""Request and response bodies of ``/v1/explanations``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synapsenet.core.jobs import Job, JobStatus
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    ExplanationType,
    GlobalImportance,
)

MAX_SYNC_ROWS: Final = 1000
"""Most rows of one synchronous explanation; more go to a batch job."""

MAX_TEXT_CHARS: Final = 100_000
"""Longest text explained in one request."""

MAX_BATCH_ROWS: Final = 100_000
"""Most inline rows of one batch job; more belong in a dataset version."""

Row = list[float | None] | dict[str, float | None]
"""One instance: values in the model's feature order, or a record keyed by feature name."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ExplainRequest(_Body):
    """Explain a few rows now."""

    model: str = Field(min_length=1, description="The model's name.")
    version: str = Field(min_length=1, description="The model version.")
    instances: list[Row] = Field(min_length=1, max_length=MAX_SYNC_ROWS)
    method: Literal["shap", "lime"] = "shap"
    algorithm: Literal["auto", "tree", "exact", "kernel"] = "auto"
    parameters: dict[str, Any] = Field(default_factory=dict)


class TextExplainRequest(_Body):
    """Explain one text with LIME: which words drive a text model's outputs."""

    model: str = Field(min_length=1, description="A text model's name.")
    version: str = Field(min_length=1, description="The model version.")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="LimeText parameters (n_samples, seed, bow, ...)."
    )


class ImageExplainRequest(_Body):
    """Explain one image with LIME: which superpixels drive an image model's outputs."""

    model: str = Field(min_length=1, description="An image model's name.")
    version: str = Field(min_length=1, description="The model version.")
    image: list[list[float]] | list[list[list[float]]] = Field(
        min_length=1, description="Pixels as (H, W) or (H, W, C) nested lists of numbers."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="LimeImage parameters (segmentation, n_samples, seed, hide_color, ...).",
    )


class BatchRequest(_Body):
    """Explain many rows in the background: inline rows or a dataset version."""

    model: str = Field(min_length=1)
    version: str = Field(min_length=1)
    instances: list[Row] | None = Field(default=None, min_length=1, max_length=MAX_BATCH_ROWS)
    dataset_ref: str | None = Field(default=None, description="A tabular dataset version ref.")
    dataset_path: str | None = Field(default=None, description="One file of that version.")
    method: Literal["shap", "lime"] = "shap"
    algorithm: Literal["auto", "tree", "exact", "kernel"] = "auto"
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> BatchRequest:
        if (self.instances is None) == (self.dataset_ref is None):
            raise ValueError("give exactly one of instances and dataset_ref")
        return self


def _finite(values: Any) -> Any:
    """Nested lists with NaN and infinities as None (JSON has neither)."""
    if isinstance(values, list):
        return [_finite(v) for v in values]
    return values if isinstance(values, float) and math.isfinite(values) else None


class ExplanationPublic(BaseModel):
    """An explanation: ``values[i][j][k]`` is row i, feature j, output k."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    type: ExplanationType
    feature_names: list[str]
    output_names: list[str]
    values: list[list[list[float | None]]]
    base_values: list[list[float | None]]
    predictions: list[list[float | None]]
    standard_errors: list[list[list[float | None]]] | None
    local_accuracy_error: float | None
    parameters: dict[str, Any]
    seed: int | None
    runtime_seconds: float
    cached: bool = False

    @classmethod
    def of(
        cls, explanation: Explanation, *, model: str, version: str, cached: bool = False
    ) -> ExplanationPublic:
        """The JSON form of an explanation."""
        errors = explanation.standard_errors
        return cls(
            model=model,
            version=version,
            type=explanation.type,
            feature_names=list(explanation.feature_names),
            output_names=list(explanation.output_names),
            values=_finite(explanation.values.tolist()),
            base_values=_finite(explanation.base_values.tolist()),
            predictions=_finite(explanation.predictions.tolist()),
            standard_errors=None if errors is None else _finite(errors.tolist()),
            local_accuracy_error=explanation.local_accuracy_error,
            parameters=_json_safe(explanation.parameters),
            seed=explanation.seed,
            runtime_seconds=explanation.runtime_seconds,
            cached=cached,
        )


class _LimePublic(BaseModel):
    """What text and image explanations share: weights per feature and output, the fit."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    type: ExplanationType
    output_names: list[str]
    weights: list[list[float | None]] = Field(
        description="weights[j][k]: the surrogate's weight of feature j for output k."
    )
    intercept: list[float | None]
    score: list[float | None] = Field(description="Weighted R2 of the surrogate, per output.")
    prediction: list[float | None] = Field(description="The model's output, per output.")
    local_prediction: list[float | None]
    parameters: dict[str, Any]
    seed: int | None
    runtime_seconds: float
    cached: bool = False

    @staticmethod
    def _fields(
        explanation: Explanation, *, model: str, version: str, cached: bool
    ) -> dict[str, Any]:
        extras = explanation.extras
        return {
            "model": model,
            "version": version,
            "type": explanation.type,
            "output_names": list(explanation.output_names),
            "weights": _finite(explanation.values[0].tolist()),
            "intercept": _finite(explanation.base_values[0].tolist()),
            "score": _finite(np.asarray(extras["score"])[0].tolist()),
            "prediction": _finite(explanation.predictions[0].tolist()),
            "local_prediction": _finite(np.asarray(extras["local_prediction"])[0].tolist()),
            "parameters": _json_safe(explanation.parameters),
            "seed": explanation.seed,
            "runtime_seconds": explanation.runtime_seconds,
            "cached": cached,
        }


class TextExplanationPublic(_LimePublic):
    """A text's LIME explanation: ``weights[j]`` belongs to ``words[j]``."""

    text: str
    words: list[str]
    positions: list[list[int]] = Field(description="Character offsets of each word's uses.")

    @classmethod
    def of(
        cls, explanation: Explanation, text: str, *, model: str, version: str, cached: bool
    ) -> TextExplanationPublic:
        """The JSON form of a ``lime_text`` explanation of ``text``."""
        return cls(
            **cls._fields(explanation, model=model, version=version, cached=cached),
            text=text,
            words=list(explanation.feature_names),
            positions=[list(map(int, p)) for p in explanation.extras["positions"]],
        )


class ImageExplanationPublic(_LimePublic):
    """An image's LIME explanation: ``weights[j]`` belongs to superpixel ``j``."""

    segments: list[list[int]] = Field(description="(H, W) superpixel label of every pixel.")

    @classmethod
    def of(
        cls, explanation: Explanation, *, model: str, version: str, cached: bool
    ) -> ImageExplanationPublic:
        """The JSON form of a ``lime_image`` explanation."""
        return cls(
            **cls._fields(explanation, model=model, version=version, cached=cached),
            segments=np.asarray(explanation.extras["segments"]).tolist(),
        )


class CacheInvalidationPublic(BaseModel):
    """A model version whose cached explanations were retired."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    generation: int = Field(description="The version's cache generation after the change.")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):
        return _json_safe(value.tolist())
    return str(value)


class JobPublic(BaseModel):
    """A batch explanation job."""

    id: str
    status: JobStatus
    progress: float
    message: str
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        """The JSON form of a job."""
        return cls(
            id=job.id,
            status=job.status,
            progress=job.progress,
            message=job.message,
            parameters=job.parameters,
            result=job.result,
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class FeatureImportancePublic(BaseModel):
    """One feature's global importance and its bootstrap interval."""

    feature: str
    importance: float
    ci_lower: float
    ci_upper: float


class GlobalImportancePublic(BaseModel):
    """Global importance, most important feature first."""

    method: AggregationMethod
    output: int
    confidence_level: float
    n_explanations: int
    features: list[FeatureImportancePublic]

    @classmethod
    def of(cls, importance: GlobalImportance) -> GlobalImportancePublic:
        """The JSON form, features sorted by importance (ties keep input order)."""
        index = {name: i for i, name in enumerate(importance.feature_names)}
        return cls(
            method=importance.method,
            output=importance.output,
            confidence_level=importance.confidence_level,
            n_explanations=importance.n_explanations,
            features=[
                FeatureImportancePublic(
                    feature=name,
                    importance=float(importance.importance[index[name]]),
                    ci_lower=float(importance.ci_lower[index[name]]),
                    ci_upper=float(importance.ci_upper[index[name]]),
                )
                for name in importance.ranking()
            ],
        )
