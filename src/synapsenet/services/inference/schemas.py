"""Request and response bodies of ``/v1/models/{name}/predict``."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from synapsenet.services.explainability.schemas import ExplanationPublic, Row
from synapsenet.services.inference.engine import DEFAULT_MAX_INSTANCES
from synapsenet.services.inference.models import Prediction

UnitId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class PredictRequest(BaseModel):
    """One or many rows to predict for one unit."""

    model_config = ConfigDict(extra="forbid")

    unit_id: UnitId | None = Field(
        default=None,
        description="The unit (user, session) the request is for; routes it in a running "
        "experiment. Without one the production version serves.",
    )
    instances: list[Row] = Field(min_length=1, max_length=DEFAULT_MAX_INSTANCES)
    version: str | None = Field(
        default=None,
        min_length=1,
        description="Serve this version, bypassing experiments (not counted as an exposure).",
    )
    explain: bool = Field(default=False, description="Also explain the rows (at most 100).")
    explain_method: Literal["shap", "lime"] = "shap"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class PredictionPublic(BaseModel):
    """Predictions, the version that served them and why, and their explanation if asked.

    ``predictions`` holds one entry per row: the most probable class label for a
    classifier, the predicted value for a regressor. ``outputs`` holds every output per row
    (class probabilities in ``output_names`` order for classifiers).
    """

    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    model: str
    model_version: str
    route: str
    experiment_id: str | None
    variant: str | None
    exposure: bool
    kind: str
    output_names: list[str]
    predictions: list[str | float | None]
    outputs: list[list[float | None]]
    explanation: ExplanationPublic | None = None
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, prediction: Prediction) -> PredictionPublic:
        """The JSON form of a prediction."""
        route = prediction.route
        labels = prediction.labels
        predictions: list[str | float | None]
        if labels is not None:
            predictions = list(labels)
        else:
            predictions = [_finite(float(v)) for v in prediction.outputs[:, 0]]
        explanation = None
        if prediction.explanation is not None:
            explanation = ExplanationPublic.of(
                prediction.explanation,
                model=prediction.model_name,
                version=route.model_version,
                cached=bool(prediction.explanation_cached),
            )
        return cls(
            request_id=prediction.request_id,
            model=prediction.model_name,
            model_version=route.model_version,
            route=route.reason,
            experiment_id=route.experiment_id,
            variant=route.variant,
            exposure=route.exposure,
            kind=prediction.kind,
            output_names=list(prediction.output_names),
            predictions=predictions,
            outputs=[[_finite(float(v)) for v in row] for row in prediction.outputs],
            explanation=explanation,
            timings_ms={k: round(v * 1000.0, 3) for k, v in prediction.timings.items()},
        )
