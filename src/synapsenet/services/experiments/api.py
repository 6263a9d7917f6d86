"""``/v1/runs``: the run-tracking REST API.

Thin routes over :class:`~synapsenet.services.experiments.tracker.RunTracker`. Errors are not
caught here: ``NotFoundError`` (404), ``ConflictError`` (409: a param logged again with
another value, anything but a tag logged to an ended run) and ``InvalidError`` (422, naming
the field) become problem+json responses in the gateway. Reads need a viewer key, everything
else an operator key (enforced by the gateway for the whole ``/v1`` tree).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import status as http_status

from synapsenet.core.db import utcnow
from synapsenet.errors import InvalidError
from synapsenet.services.experiments.models import ParamValue, RunStatus
from synapsenet.services.experiments.schemas import (
    DatasetLogged,
    DatasetPublic,
    DatasetRequest,
    EndRequest,
    MetricPublic,
    MetricsLogged,
    MetricsRequest,
    ModelPublic,
    ModelRequest,
    ParamsRequest,
    RunCreate,
    RunPublic,
    TagsRequest,
)
from synapsenet.services.experiments.tracker import MAX_LIST

if TYPE_CHECKING:
    # service.py imports this module for its router; the type is only needed by mypy.
    from synapsenet.services.experiments.service import RunTrackingService

router = APIRouter(prefix="/runs", tags=["runs"])

_RUN = "/{run_id}"


def get_runs(request: Request) -> RunTrackingService:
    """The run-tracking service the gateway hosts."""
    service: RunTrackingService = request.app.state.services["experiments"]
    return service


RunsDep = Annotated["RunTrackingService", Depends(get_runs)]


def parse_param_filter(text: str) -> tuple[str, ParamValue]:
    """Read a ``key=value`` filter; the value is JSON when it parses as a scalar, else text.

    ``depth=6`` matches the integer 6, ``depth="6"`` the string "6", ``optimizer=adam`` the
    string "adam".

    Raises:
        InvalidError: There is no ``=``.
    """
    key, sep, raw = text.partition("=")
    if not sep:
        raise InvalidError(f"param filter {text!r} must be key=value", field="param")
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    if isinstance(value, dict | list):
        return key, raw
    scalar: ParamValue = value
    return key, scalar


@router.post("", status_code=http_status.HTTP_201_CREATED)
def start_run(body: RunCreate, service: RunsDep) -> RunPublic:
    """Start a run (``running``), with its first params and tags."""
    run = service.tracker.start_run(
        project=body.project, name=body.name, params=body.params, tags=body.tags
    )
    return RunPublic.of(run)


@router.get("")
def list_runs(
    service: RunsDep,
    project: str | None = None,
    status: RunStatus | None = None,
    param: Annotated[
        list[str] | None,
        Query(description="key=value; repeat for several. Values are JSON scalars or text."),
    ] = None,
    dataset: Annotated[
        str | None, Query(description="Runs that read this version (name@vN) or dataset.")
    ] = None,
    model: Annotated[
        str | None, Query(description="Runs that produced this model version or model.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RunPublic]:
    """Runs, newest first, matching every filter given."""
    params = dict(parse_param_filter(p) for p in param or ())
    runs = service.tracker.list_runs(
        project=project,
        status=status,
        params=params,
        dataset=dataset,
        model=model,
        limit=limit,
        offset=offset,
    )
    return [RunPublic.of(r) for r in runs]


@router.get(_RUN)
def get_run(run_id: str, service: RunsDep) -> RunPublic:
    """One run, with its params, latest metrics, tags, datasets and models."""
    return RunPublic.of(service.tracker.get_run(run_id))


@router.post(f"{_RUN}/params")
def log_params(run_id: str, body: ParamsRequest, service: RunsDep) -> RunPublic:
    """Log parameters; a key logged again with another value is a 409."""
    service.tracker.log_params(run_id, body.params)
    return RunPublic.of(service.tracker.get_run(run_id))


@router.post(f"{_RUN}/metrics")
def log_metrics(run_id: str, body: MetricsRequest, service: RunsDep) -> MetricsLogged:
    """Log measurements, all or none (timestamped now unless they say when)."""
    now = utcnow()
    service.tracker.log_metrics(run_id, [m.to_domain(now) for m in body.metrics])
    return MetricsLogged(logged=len(body.metrics))


@router.get(f"{_RUN}/metrics/{{key:path}}")
def metric_history(run_id: str, key: str, service: RunsDep) -> list[MetricPublic]:
    """Every value of one metric, by step."""
    return [MetricPublic.of(m) for m in service.tracker.metric_history(run_id, key)]


@router.post(f"{_RUN}/tags")
def set_tags(run_id: str, body: TagsRequest, service: RunsDep) -> RunPublic:
    """Set tags (allowed in any status)."""
    service.tracker.set_tags(run_id, body.tags)
    return RunPublic.of(service.tracker.get_run(run_id))


@router.post(f"{_RUN}/datasets")
def log_dataset(run_id: str, body: DatasetRequest, service: RunsDep) -> DatasetLogged:
    """Record a dataset version the run read; a tag or bare name resolves to ``name@vN`` now."""
    return DatasetLogged(ref=service.tracker.log_dataset(run_id, body.ref), requested=body.ref)


@router.get(f"{_RUN}/datasets")
def list_datasets(run_id: str, service: RunsDep) -> list[DatasetPublic]:
    """The exact dataset versions the run read, in the order logged."""
    return [DatasetPublic.of(d) for d in service.tracker.get_run(run_id).datasets]


@router.post(f"{_RUN}/models")
def log_model(run_id: str, body: ModelRequest, service: RunsDep) -> ModelPublic:
    """Record a model version the run produced (one producing run per model version)."""
    service.tracker.log_model(run_id, body.model_name, body.version)
    run = service.tracker.get_run(run_id)
    return next(
        ModelPublic.of(m)
        for m in run.models
        if (m.model_name, m.version) == (body.model_name, body.version)
    )


@router.post(f"{_RUN}/end")
def end_run(run_id: str, service: RunsDep, body: EndRequest | None = None) -> RunPublic:
    """End the run (``finished`` by default); ending it again the same way is a no-op."""
    status = body.status if body is not None else RunStatus.FINISHED
    return RunPublic.of(service.tracker.end_run(run_id, status))
