"""Inference: ``/v1/models/{name}/predict`` routed through the running experiments.

A request is served by the version its unit's experiment arm names, or by the production
version; the exposure is recorded for the experiment, and an explanation is one flag away.
"""

from synapsenet.services.inference.engine import InferenceEngine
from synapsenet.services.inference.models import Prediction, Route
from synapsenet.services.inference.ports import (
    ExposureRecorder,
    PredictionExplainer,
    ServedModels,
    TrafficRouter,
)

__all__ = [
    "ExposureRecorder",
    "InferenceEngine",
    "Prediction",
    "PredictionExplainer",
    "Route",
    "ServedModels",
    "TrafficRouter",
]
