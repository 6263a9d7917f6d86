"""``/v1/explanations``: the explainability REST API.

Thin routes over :class:`~synapsenet.services.explainability.service.ExplanationService`.
Errors are not caught here: an unknown model or job (``NotFoundError``, 404), a job that has
not succeeded yet (``ConflictError``, 409) and bad input (``InvalidError``, 422, naming the
field) become problem+json responses in the gateway. Reads need a viewer key, every POST an
operator key (enforced by the gateway for the whole ``/v1`` tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import status as http_status

from synapsenet.services.explainability.models import AggregationMethod
from synapsenet.services.explainability.schemas import (
    BatchRequest,
    CacheInvalidationPublic,
    ExplainRequest,
    ExplanationPublic,
    GlobalImportancePublic,
    ImageExplainRequest,
    ImageExplanationPublic,
    JobPublic,
    TextExplainRequest,
    TextExplanationPublic,
)

if TYPE_CHECKING:
    # service.py imports this module for its router; the type is only needed by mypy.
    from synapsenet.services.explainability.service import ExplanationService

router = APIRouter(prefix="/explanations", tags=["explanations"])

Format = Literal["png", "svg"]
_JOB = "/jobs/{job_id}"


def get_explainability(request: Request) -> ExplanationService:
    """The explanation service the gateway hosts."""
    service: ExplanationService = request.app.state.services["explainability"]
    return service


ServiceDep = Annotated["ExplanationService", Depends(get_explainability)]


def _image(data: bytes, fmt: Format) -> Response:
    from synapsenet.services.explainability.plots import MEDIA_TYPES

    return Response(content=data, media_type=MEDIA_TYPES[fmt])


@router.post("")
@router.post("/", include_in_schema=False)
def explain(body: ExplainRequest, service: ServiceDep) -> ExplanationPublic:
    """Explain up to 1,000 rows now (cached: an identical request is answered from cache)."""
    explanation, cached = service.explain(
        body.model,
        body.version,
        body.instances,
        method=body.method,
        algorithm=body.algorithm,
        parameters=body.parameters,
    )
    return ExplanationPublic.of(explanation, model=body.model, version=body.version, cached=cached)


@router.post("/text")
def explain_text(body: TextExplainRequest, service: ServiceDep) -> TextExplanationPublic:
    """Explain one text with LIME (a text model; cached like every explanation)."""
    explanation, cached = service.explain_text(
        body.model, body.version, body.text, parameters=body.parameters
    )
    return TextExplanationPublic.of(
        explanation, body.text, model=body.model, version=body.version, cached=cached
    )


@router.post("/image")
def explain_image(body: ImageExplainRequest, service: ServiceDep) -> ImageExplanationPublic:
    """Explain one image with LIME (an image model; cached like every explanation)."""
    explanation, cached = service.explain_image(
        body.model, body.version, body.image, parameters=body.parameters
    )
    return ImageExplanationPublic.of(
        explanation, model=body.model, version=body.version, cached=cached
    )


@router.delete("/cache/{model}/{version}")
def invalidate_cache(model: str, version: str, service: ServiceDep) -> CacheInvalidationPublic:
    """Retire every cached explanation of a model version (503 if the cache is down)."""
    generation = service.invalidate(model, version)
    return CacheInvalidationPublic(model=model, version=version, generation=generation)


@router.post("/jobs", status_code=http_status.HTTP_202_ACCEPTED)
def submit_job(body: BatchRequest, service: ServiceDep) -> JobPublic:
    """Queue a batch explanation of inline rows or of a dataset version."""
    job = service.submit_batch(
        body.model,
        body.version,
        instances=body.instances,
        dataset_ref=body.dataset_ref,
        dataset_path=body.dataset_path,
        method=body.method,
        algorithm=body.algorithm,
        parameters=body.parameters,
    )
    return JobPublic.of(job)


@router.get(_JOB)
def get_job(job_id: str, service: ServiceDep) -> JobPublic:
    """A batch job's status, progress and (once done) result summary."""
    return JobPublic.of(service.get_job(job_id))


@router.get(f"{_JOB}/result")
def job_result(job_id: str, service: ServiceDep) -> ExplanationPublic:
    """The full explanation a succeeded batch job computed (409 until it has)."""
    job = service.get_job(job_id)
    explanation = service.batch_explanation(job_id)
    return ExplanationPublic.of(
        explanation, model=job.parameters["model"], version=job.parameters["version"]
    )


@router.get(f"{_JOB}/importance")
def job_importance(
    job_id: str,
    service: ServiceDep,
    method: AggregationMethod = AggregationMethod.MEAN_ABS,
    output: Annotated[int, Query(ge=0)] = 0,
) -> GlobalImportancePublic:
    """Global importance of the job's explanations, with bootstrap confidence intervals."""
    return GlobalImportancePublic.of(service.global_importance(job_id, method, output=output))


@router.get(f"{_JOB}/plots/importance.{{fmt}}")
def importance_plot(
    job_id: str,
    fmt: Format,
    service: ServiceDep,
    method: AggregationMethod = AggregationMethod.MEAN_ABS,
    output: Annotated[int, Query(ge=0)] = 0,
    max_features: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Bar chart of global importance with CI whiskers."""
    importance = service.global_importance(job_id, method, output=output)
    from synapsenet.services.explainability import plots  # matplotlib: slow import

    return _image(plots.importance_bar(importance, fmt, max_features=max_features), fmt)


@router.get(f"{_JOB}/plots/beeswarm.{{fmt}}")
def beeswarm_plot(
    job_id: str,
    fmt: Format,
    service: ServiceDep,
    output: Annotated[int, Query(ge=0)] = 0,
    max_features: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Every row's attributions, coloured by feature value."""
    explanation = service.batch_explanation(job_id)
    features = service.batch_inputs(job_id)
    from synapsenet.services.explainability import plots  # matplotlib: slow import

    data = plots.beeswarm(explanation, features, fmt, output=output, max_features=max_features)
    return _image(data, fmt)


@router.post("/plots/waterfall.{fmt}")
def waterfall_plot(
    fmt: Format,
    body: ExplainRequest,
    service: ServiceDep,
    instance: Annotated[int, Query(ge=0)] = 0,
    output: Annotated[int, Query(ge=0)] = 0,
    max_features: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """Waterfall of one row's explanation (computed, or taken from the cache)."""
    explanation, _ = service.explain(
        body.model,
        body.version,
        body.instances,
        method=body.method,
        algorithm=body.algorithm,
        parameters=body.parameters,
    )
    from synapsenet.services.explainability import plots  # matplotlib: slow import

    data = plots.waterfall(
        explanation, fmt, instance=instance, output=output, max_features=max_features
    )
    return _image(data, fmt)
