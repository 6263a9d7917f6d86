"""Request and response bodies of ``/v1/explanations``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final, Literal

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
