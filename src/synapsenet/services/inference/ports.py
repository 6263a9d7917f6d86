"""What inference needs of the other services: narrow protocols with in-process adapters.

The registry serves models (:class:`ServedModels`), the A/B testing engine routes units
(:class:`TrafficRouter`) and records exposures (:class:`ExposureRecorder`), the explanation
service explains rows (:class:`PredictionExplainer`). Each is a protocol so that the same
engine runs in one process over the services' objects or, split apart, over their clients.
"""

from __future__ import annotations

from typing import Literal, Protocol

from synapsenet.services.abtesting.models import Experiment, Exposure
from synapsenet.services.abtesting.routing import Assignment
from synapsenet.services.explainability.loader import LoadedModel
from synapsenet.services.explainability.models import Explanation


class ServedModels(Protocol):
    """Model versions and their loaded models."""

    def production_version(self, name: str) -> str:
        """The version of ``name`` in production.

        Raises:
            NotFoundError: No such model, or no version in production.
        """
        ...

    def load(self, name: str, version: str) -> LoadedModel:
        """The loaded model (cached by the implementation).

        Raises:
            NotFoundError: No such model or version.
        """
        ...


class TrafficRouter(Protocol):
    """Routing of units by the running experiments."""

    @property
    def routing_generation(self) -> int:
        """Changes whenever an experiment changes in this process (caches go stale)."""
        ...

    def running_for_model(self, model_name: str) -> Experiment | None:
        """The running experiment on ``model_name``, if any."""
        ...

    def assign(self, experiment_id: str, unit_id: str) -> Assignment:
        """The arm that serves ``unit_id`` (sticky and deterministic)."""
        ...


class ExposureRecorder(Protocol):
    """Where exposures of routed requests go."""

    def record(self, experiment_id: str, exposure: Exposure) -> None:
        """Record one exposure (implementations may buffer)."""
        ...


class PredictionExplainer(Protocol):
    """Explanations of predictions."""

    def explain(
        self,
        model: str,
        version: str,
        instances: object,
        *,
        method: Literal["shap", "lime"] = "shap",
    ) -> tuple[Explanation, bool]:
        """Explain rows of a model version; also return whether a cache answered."""
        ...
