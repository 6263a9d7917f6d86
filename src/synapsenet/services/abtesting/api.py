"""``/v1/abtesting``: the A/B testing REST API.

Thin routes over :class:`~synapsenet.services.abtesting.engine.ABTestingEngine` and its
controller. Errors are not caught here: the engine's ``NotFoundError`` (404),
``ConflictError`` (409, e.g. an illegal transition) and ``InvalidError`` (422, naming the
field) become problem+json responses in the gateway. Reads need a viewer key, every other
method an operator key (enforced by the gateway for the whole ``/v1`` tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import status as http_status

from synapsenet.core.auth import ApiKey
from synapsenet.errors import UnauthorizedError
from synapsenet.services.abtesting.models import ExperimentStatus
from synapsenet.services.abtesting.result_schemas import ResultsPublic
from synapsenet.services.abtesting.rollback import RollbackDecision
from synapsenet.services.abtesting.schemas import (
    AssignmentBatchPublic,
    AssignmentBatchRequest,
    AssignmentPublic,
    CompleteRequest,
    DecisionPublic,
    ExperimentCreate,
    ExperimentPublic,
    HoldRequest,
    IngestRequest,
    IngestResultPublic,
    RampDecisionPublic,
    RampRequest,
    RollbackRequest,
    StopRequest,
    TickReportPublic,
)
from synapsenet.services.abtesting.statistics.results import CorrectionMethod

if TYPE_CHECKING:
    # service.py imports this module for its router; the type is only needed by mypy.
    from synapsenet.services.abtesting.service import ABTestingService

router = APIRouter(prefix="/abtesting", tags=["abtesting"])

_EXPERIMENT = "/experiments/{experiment_id}"


def get_abtesting(request: Request) -> ABTestingService:
    """The A/B testing service the gateway hosts."""
    service: ABTestingService = request.app.state.services["abtesting"]
    return service


ABTestingDep = Annotated["ABTestingService", Depends(get_abtesting)]


def caller_key(request: Request) -> ApiKey:
    """The API key the gateway authenticated for this request.

    Read from the request rather than through ``synapsenet.gateway.deps``: the gateway
    imports this service, so importing the gateway here would be circular.

    Raises:
        UnauthorizedError: The router is mounted without the gateway's authentication.
    """
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is None:
        raise UnauthorizedError("this endpoint needs an authenticated API key")
    return key


CallerKey = Annotated[ApiKey, Depends(caller_key)]


@router.post("/experiments", status_code=http_status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, service: ABTestingDep) -> ExperimentPublic:
    """Create an experiment in ``draft``; start it when ready."""
    return ExperimentPublic.of(service.engine.create(body.to_spec()))


@router.get("/experiments")
def list_experiments(
    service: ABTestingDep,
    status: ExperimentStatus | None = None,
    model_name: str | None = None,
) -> list[ExperimentPublic]:
    """List experiments, newest first, optionally by status or model."""
    experiments = service.engine.list(status=status, model_name=model_name)
    return [ExperimentPublic.of(e) for e in experiments]


@router.get(_EXPERIMENT)
def get_experiment(experiment_id: str, service: ABTestingDep) -> ExperimentPublic:
    """One experiment, by id or by name."""
    return ExperimentPublic.of(service.engine.get(experiment_id))


# ---------------------------------------------------------------------- lifecycle


@router.post(f"{_EXPERIMENT}/start")
def start_experiment(experiment_id: str, service: ABTestingDep) -> ExperimentPublic:
    """``draft -> running``: traffic starts flowing."""
    return ExperimentPublic.of(service.engine.start(experiment_id))


@router.post(f"{_EXPERIMENT}/pause")
def pause_experiment(experiment_id: str, service: ABTestingDep) -> ExperimentPublic:
    """``running -> paused``: every unit gets the control until resumed."""
    return ExperimentPublic.of(service.engine.pause(experiment_id))


@router.post(f"{_EXPERIMENT}/resume")
def resume_experiment(experiment_id: str, service: ABTestingDep) -> ExperimentPublic:
    """``paused -> running``."""
    return ExperimentPublic.of(service.engine.resume(experiment_id))


@router.post(f"{_EXPERIMENT}/stop")
def stop_experiment(
    experiment_id: str, service: ABTestingDep, body: StopRequest | None = None
) -> ExperimentPublic:
    """End without a winner; all traffic returns to the control."""
    reason = body.reason if body is not None else ""
    return ExperimentPublic.of(service.engine.stop(experiment_id, reason=reason))


@router.post(f"{_EXPERIMENT}/complete")
def complete_experiment(
    experiment_id: str, service: ABTestingDep, body: CompleteRequest | None = None
) -> ExperimentPublic:
    """End the experiment; with a winner, its model version is promoted."""
    winner = body.winner if body is not None else None
    return ExperimentPublic.of(service.engine.complete(experiment_id, winner=winner))


@router.post(f"{_EXPERIMENT}/rollback")
def roll_back_experiment(
    experiment_id: str, body: RollbackRequest, service: ABTestingDep, key: CallerKey
) -> ExperimentPublic:
    """Roll back by hand: all traffic to the control, recorded with who asked and why."""
    evidence = {"manual": True, "by": key.id}
    rolled_back = service.engine.rollback(experiment_id, reason=body.reason, evidence=evidence)
    return ExperimentPublic.of(rolled_back)


# ---------------------------------------------------------------------- ramps


@router.post(f"{_EXPERIMENT}/ramp")
def advance_ramp(
    experiment_id: str, service: ABTestingDep, body: RampRequest | None = None
) -> RampDecisionPublic:
    """Advance a running ramp when its minimums are met (or regardless with ``force``)."""
    force = body.force if body is not None else False
    return RampDecisionPublic.of(service.controller.advance(experiment_id, force=force))


@router.post(f"{_EXPERIMENT}/hold")
def hold_ramp(
    experiment_id: str, service: ABTestingDep, body: HoldRequest | None = None
) -> ExperimentPublic:
    """Hold a ramp at its current step until released."""
    reason = body.reason if body is not None else ""
    return ExperimentPublic.of(
        service.engine.set_ramp_hold(experiment_id, held=True, reason=reason)
    )


@router.post(f"{_EXPERIMENT}/release")
def release_ramp(
    experiment_id: str, service: ABTestingDep, body: HoldRequest | None = None
) -> ExperimentPublic:
    """Let a held ramp advance again."""
    reason = body.reason if body is not None else ""
    return ExperimentPublic.of(
        service.engine.set_ramp_hold(experiment_id, held=False, reason=reason)
    )


# ---------------------------------------------------------------------- routing


@router.get(f"{_EXPERIMENT}/assignment")
def assign_unit(
    experiment_id: str,
    service: ABTestingDep,
    unit_id: Annotated[str, Query(min_length=1, max_length=200)],
) -> AssignmentPublic:
    """The variant a unit gets: sticky, and the control outside the running experiment."""
    return AssignmentPublic.of(service.engine.assign(experiment_id, unit_id), unit_id)


@router.post(f"{_EXPERIMENT}/assignments")
def assign_units(
    experiment_id: str, body: AssignmentBatchRequest, service: ABTestingDep
) -> AssignmentBatchPublic:
    """Route many units at once: the same answers as one by one, in the order given."""
    variants = service.engine.assign_batch(experiment_id, body.unit_ids)
    # The routing cache's copy: only the spec (immutable) is read, so no database trip.
    experiment = service.engine.router.experiment(experiment_id)
    return AssignmentBatchPublic(
        experiment_id=experiment.id,
        variants=variants,
        model_versions={v.name: v.model_version for v in experiment.variants},
    )


# ---------------------------------------------------------------------- data


@router.post(f"{_EXPERIMENT}/events")
def ingest_events(
    experiment_id: str, body: IngestRequest, service: ABTestingDep
) -> IngestResultPublic:
    """Record exposures and outcomes, then check the guardrails once.

    An outcome without a variant is attributed to the arm that served its ``request_id``
    (or the unit's latest request) through ``/v1/models/{name}/predict``.

    Counting is idempotent: a batch with a ``batch_id`` is counted once, otherwise each
    observation once per ``event_id``. The guardrail check runs only when the batch added
    data and the experiment has a guardrail; a pure retry must not advance a breach streak.
    """
    observations = service.exposures.attribute(
        experiment_id, [o.to_pending() for o in body.observations]
    )
    result = service.engine.ingest(experiment_id, observations, batch_id=body.batch_id)
    check: RollbackDecision | None = None
    if result.accepted:
        # The routing cache's copy suffices: which metrics are guardrails never changes.
        experiment = service.engine.router.experiment(experiment_id)
        if any(m.guardrail for m in experiment.spec.metrics):
            check = service.controller.rollback.check(experiment.id)
    return IngestResultPublic.of(result, check)


@router.get(f"{_EXPERIMENT}/results")
def get_results(
    experiment_id: str,
    service: ABTestingDep,
    sequential: bool = True,
    correction: CorrectionMethod = CorrectionMethod.HOLM,
) -> ResultsPublic:
    """Every metric of every treatment against the control, with lifts and p-values.

    Sequential (always-valid) inference is the default, so the page may be read at any time.
    """
    results = service.engine.results(experiment_id, sequential=sequential, correction=correction)
    return ResultsPublic.of(results)


@router.get(f"{_EXPERIMENT}/decisions")
def list_decisions(
    experiment_id: str,
    service: ABTestingDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DecisionPublic]:
    """The experiment's decision log (rollbacks, guardrail checks, ramps), newest first."""
    return [DecisionPublic.of(d) for d in service.engine.decisions(experiment_id, limit=limit)]


@router.post(f"{_EXPERIMENT}/check")
def check_experiment(experiment_id: str, service: ABTestingDep) -> TickReportPublic:
    """Do the scheduled work now: check guardrails, then advance the ramp or reweight."""
    return TickReportPublic.of(service.controller.tick(experiment_id))
