"""The domain of the inference service: what one prediction request produced."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from synapsenet.services.explainability.models import Explanation

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Route:
    """Which model version serves a request, and why.

    Attributes:
        model_version: The version that serves.
        experiment_id: The running experiment that routed it, None when none did.
        variant: The experiment's arm, None when no experiment routed it.
        exposure: Whether the request counts as an exposure of the experiment (the unit is
            in the experiment, and the version was not pinned by the caller).
        reason: ``experiment``, ``production`` or ``pinned``.
    """

    model_version: str
    experiment_id: str | None
    variant: str | None
    exposure: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Prediction:
    """The answer to one prediction request.

    Attributes:
        request_id: Identifies the request; outcomes may name it later.
        model_name: The model.
        route: The version that served and why.
        outputs: ``(n, K)`` model outputs: class probabilities for classifiers, the
            prediction for regressors.
        output_names: One name per output column (class labels for classifiers).
        kind: ``classification`` or ``regression``.
        explanation: The explanation of the same rows, when one was asked for.
        explanation_cached: Whether the explanation cache answered.
        timings: Seconds spent routing, loading, predicting and explaining.
    """

    request_id: str
    model_name: str
    route: Route
    outputs: FloatArray
    output_names: tuple[str, ...]
    kind: str
    explanation: Explanation | None = None
    explanation_cached: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str] | None:
        """The most probable class of each row for classifiers, None for regressors."""
        if self.kind != "classification":
            return None
        return [self.output_names[i] for i in np.argmax(self.outputs, axis=1)]
