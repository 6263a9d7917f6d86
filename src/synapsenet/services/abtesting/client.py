"""ABTestingClient: the A/B testing API over HTTP, typed (used by the CLI and the SDK).

Every method is one request; answers are parsed into the API's response schemas, and errors
come back as the :mod:`synapsenet.errors` class the server raised (404 ``NotFoundError``,
409 ``ConflictError``, 422 ``InvalidError`` with its ``field``)::

    with ABTestingClient("http://127.0.0.1:8000", api_key=token) as client:
        experiment = client.create_experiment(spec)
        client.start(experiment.id)
        print(client.assign(experiment.id, "user-42").variant)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from synapsenet.core.client import ServiceClient
from synapsenet.services.abtesting.models import ExperimentStatus, Observation
from synapsenet.services.abtesting.result_schemas import ResultsPublic
from synapsenet.services.abtesting.schemas import (
    AssignmentBatchPublic,
    AssignmentPublic,
    DecisionPublic,
    ExperimentCreate,
    ExperimentPublic,
    IngestResultPublic,
    ObservationIn,
    RampDecisionPublic,
    TickReportPublic,
)
from synapsenet.services.abtesting.statistics.results import CorrectionMethod

API_PREFIX = "/v1/abtesting"

ObservationLike = ObservationIn | Observation | Mapping[str, Any]
"""An observation as a schema, a domain object, or an already JSON-ready dict."""


def _observation_json(observation: ObservationLike) -> Any:
    if isinstance(observation, ObservationIn):
        return observation.model_dump(mode="json", exclude_none=True)
    if isinstance(observation, Observation):
        return ObservationIn(
            event_id=observation.event_id,
            unit_id=observation.unit_id,
            variant=observation.variant,
            time=observation.time,
            metric=observation.metric,
            value=observation.value,
            covariate=observation.covariate,
        ).model_dump(mode="json", exclude_none=True)
    return dict(observation)


class ABTestingClient(ServiceClient):
    """Typed client of ``/v1/abtesting``.

    Takes the arguments of :class:`~synapsenet.core.client.ServiceClient`: the server's base
    URL, an API key (viewer for reads, operator for changes) and optionally an
    :class:`~synapsenet.core.asgi_transport.InProcessTransport` to call an app in-process.
    Experiments are named by id or by name everywhere.
    """

    @staticmethod
    def _path(experiment_id: str, action: str = "") -> str:
        path = f"{API_PREFIX}/experiments/{quote(experiment_id, safe='')}"
        return f"{path}/{action}" if action else path

    # ------------------------------------------------------------------ experiments

    def create_experiment(self, spec: ExperimentCreate | Mapping[str, Any]) -> ExperimentPublic:
        """Create an experiment in ``draft``.

        Args:
            spec: The experiment, as the schema or as its JSON form (e.g. read from a file);
                the server validates it and names the field at fault.

        Returns:
            The created experiment.
        """
        body = spec.model_dump(mode="json") if isinstance(spec, ExperimentCreate) else dict(spec)
        return ExperimentPublic.model_validate(self.post_json(f"{API_PREFIX}/experiments", body))

    def list_experiments(
        self, *, status: ExperimentStatus | None = None, model_name: str | None = None
    ) -> list[ExperimentPublic]:
        """Experiments, newest first, optionally filtered by status or model."""
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = status.value
        if model_name is not None:
            params["model_name"] = model_name
        data = self.get_json(f"{API_PREFIX}/experiments", params=params)
        return [ExperimentPublic.model_validate(e) for e in data]

    def get_experiment(self, experiment_id: str) -> ExperimentPublic:
        """One experiment, by id or name."""
        return ExperimentPublic.model_validate(self.get_json(self._path(experiment_id)))

    # ------------------------------------------------------------------ lifecycle

    def _transition(self, experiment_id: str, action: str, body: Any = None) -> ExperimentPublic:
        return ExperimentPublic.model_validate(
            self.post_json(self._path(experiment_id, action), body)
        )

    def start(self, experiment_id: str) -> ExperimentPublic:
        """``draft -> running``."""
        return self._transition(experiment_id, "start")

    def pause(self, experiment_id: str) -> ExperimentPublic:
        """``running -> paused``: every unit gets the control."""
        return self._transition(experiment_id, "pause")

    def resume(self, experiment_id: str) -> ExperimentPublic:
        """``paused -> running``."""
        return self._transition(experiment_id, "resume")

    def stop(self, experiment_id: str, *, reason: str = "") -> ExperimentPublic:
        """End without a winner; all traffic returns to the control."""
        return self._transition(experiment_id, "stop", {"reason": reason})

    def complete(self, experiment_id: str, *, winner: str | None = None) -> ExperimentPublic:
        """End the experiment; with a winner, the registry promotes its model version."""
        return self._transition(experiment_id, "complete", {"winner": winner})

    def rollback(self, experiment_id: str, *, reason: str) -> ExperimentPublic:
        """Roll back by hand; the decision log records the reason and the caller's key."""
        return self._transition(experiment_id, "rollback", {"reason": reason})

    def ramp(self, experiment_id: str, *, force: bool = False) -> RampDecisionPublic:
        """Advance a ramp when its minimums are met, or regardless with ``force``."""
        data = self.post_json(self._path(experiment_id, "ramp"), {"force": force})
        return RampDecisionPublic.model_validate(data)

    def hold(self, experiment_id: str, *, reason: str = "") -> ExperimentPublic:
        """Hold a ramp at its current step."""
        return self._transition(experiment_id, "hold", {"reason": reason})

    def release(self, experiment_id: str, *, reason: str = "") -> ExperimentPublic:
        """Release a held ramp."""
        return self._transition(experiment_id, "release", {"reason": reason})

    # ------------------------------------------------------------------ routing and data

    def assign(self, experiment_id: str, unit_id: str) -> AssignmentPublic:
        """The variant one unit gets."""
        data = self.get_json(self._path(experiment_id, "assignment"), params={"unit_id": unit_id})
        return AssignmentPublic.model_validate(data)

    def assign_batch(self, experiment_id: str, unit_ids: Sequence[str]) -> AssignmentBatchPublic:
        """The variants of many units, in the order given (at most 100,000 per call)."""
        # Assignment changes nothing on the server, so the POST is safe to retry.
        data = self.post_json(
            self._path(experiment_id, "assignments"),
            {"unit_ids": list(unit_ids)},
            idempotency_key=uuid.uuid4().hex,
        )
        return AssignmentBatchPublic.model_validate(data)

    def ingest(
        self,
        experiment_id: str,
        observations: Sequence[ObservationLike],
        *,
        batch_id: str | None = None,
    ) -> IngestResultPublic:
        """Record exposures and outcomes; a guardrail check follows on the server.

        Args:
            experiment_id: The experiment's id or name.
            observations: Exposures (no metric) and outcomes.
            batch_id: Counts the whole batch at most once, however often it is sent.

        Returns:
            Accepted and duplicate counts, and the guardrail decision taken after the batch.
        """
        body: dict[str, Any] = {"observations": [_observation_json(o) for o in observations]}
        if batch_id is not None:
            body["batch_id"] = batch_id
        # The server counts each batch id (or each event id) once, so a retry cannot
        # double-count: the POST is idempotent and may be retried.
        data = self.post_json(
            self._path(experiment_id, "events"),
            body,
            idempotency_key=batch_id or uuid.uuid4().hex,
        )
        return IngestResultPublic.model_validate(data)

    def results(
        self,
        experiment_id: str,
        *,
        sequential: bool = True,
        correction: CorrectionMethod = CorrectionMethod.HOLM,
    ) -> ResultsPublic:
        """The results page (always-valid inference by default)."""
        params = {"sequential": str(sequential).lower(), "correction": correction.value}
        data = self.get_json(self._path(experiment_id, "results"), params=params)
        return ResultsPublic.model_validate(data)

    def decisions(self, experiment_id: str, *, limit: int = 100) -> list[DecisionPublic]:
        """The decision log, newest first."""
        data = self.get_json(self._path(experiment_id, "decisions"), params={"limit": limit})
        return [DecisionPublic.model_validate(d) for d in data]

    def check(self, experiment_id: str) -> TickReportPublic:
        """Run the scheduled work now: guardrails, then ramp or bandit."""
        return TickReportPublic.model_validate(self.post_json(self._path(experiment_id, "check")))
