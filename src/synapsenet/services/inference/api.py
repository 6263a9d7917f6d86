"""``/v1/models/{name}/predict``: the inference REST API.

A thin route over :class:`~synapsenet.services.inference.engine.InferenceEngine`. The
request id is the gateway's (``X-Request-ID``, generated when the caller sends none), so the
id in the response, in the logs and in later outcomes is one and the same. Errors become
problem+json in the gateway: unknown model or version, or no production version (404), bad
rows (422 naming the field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request

from synapsenet.services.inference.schemas import PredictionPublic, PredictRequest

if TYPE_CHECKING:
    from synapsenet.services.inference.service import InferenceService

router = APIRouter(prefix="/models", tags=["inference"])


def get_inference(request: Request) -> InferenceService:
    """The inference service the gateway hosts."""
    service: InferenceService = request.app.state.services["inference"]
    return service


ServiceDep = Annotated["InferenceService", Depends(get_inference)]


@router.post("/{name}/predict")
def predict(
    name: str, body: PredictRequest, request: Request, service: ServiceDep
) -> PredictionPublic:
    """Predict rows; a running experiment on the model routes the unit to its arm."""
    prediction = service.engine.predict(
        name,
        body.instances,
        unit_id=body.unit_id,
        request_id=getattr(request.state, "request_id", None),
        version=body.version,
        explain=body.explain,
        explain_method=body.explain_method,
    )
    return PredictionPublic.of(prediction)
