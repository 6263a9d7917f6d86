"""Typed HTTP client of ``/v1/models/{name}/predict``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from synapsenet.core.client import ServiceClient
from synapsenet.services.inference.schemas import PredictionPublic

Rows = Sequence[Sequence[float | None]] | Sequence[Mapping[str, float | None]]


class InferenceClient(ServiceClient):
    """Predictions over HTTP (an operator key: a prediction records an exposure)."""

    def predict(
        self,
        model: str,
        instances: Rows,
        *,
        unit_id: str | None = None,
        version: str | None = None,
        explain: bool = False,
        explain_method: Literal["shap", "lime"] = "shap",
    ) -> PredictionPublic:
        """Predict rows of ``model`` for ``unit_id`` (routed by a running experiment)."""
        body: dict[str, Any] = {
            "instances": [dict(r) if isinstance(r, Mapping) else list(r) for r in instances],
            "explain": explain,
            "explain_method": explain_method,
        }
        if unit_id is not None:
            body["unit_id"] = unit_id
        if version is not None:
            body["version"] = version
        path = f"/v1/models/{quote(model, safe='')}/predict"
        return PredictionPublic.model_validate(self.post_json(path, body))
