"""RunsClient: the run-tracking API over HTTP, typed (used by the SDK and the CLI).

It answers with the same domain objects as the in-process
:class:`~synapsenet.services.experiments.tracker.RunTracker`, so training code runs unchanged
against either::

    with RunsClient("http://127.0.0.1:8000", api_key=token) as client:
        with start_run(client, project="fraud", params={"depth": 6}) as run:
            run.log_dataset("transactions@production")
            run.log_metric("auc", 0.91)

It also implements :class:`~synapsenet.services.dataversion.reconstruction.RunDatasetsPort`,
so a reconstructor in another process reads a run's datasets from the tracking service.
Requests that are safe to repeat (params, tags, datasets, models, end: repeating them is a
no-op) are sent with an idempotency key, so the client retries them; logging metrics is not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from synapsenet.core.client import ServiceClient
from synapsenet.services.experiments.models import (
    DEFAULT_PROJECT,
    LoggedDataset,
    Metric,
    ParamValue,
    Run,
    RunStatus,
    validate_metric,
)
from synapsenet.services.experiments.schemas import (
    DatasetLogged,
    DatasetPublic,
    MetricPublic,
    MetricsLogged,
    RunPublic,
)

API_PREFIX = "/v1/runs"


class RunsClient(ServiceClient):
    """Typed client of ``/v1/runs``.

    Takes the arguments of :class:`~synapsenet.core.client.ServiceClient`: the server's base
    URL, an API key (viewer for reads, operator for logging) and optionally an
    :class:`~synapsenet.core.asgi_transport.InProcessTransport`.
    """

    @staticmethod
    def _path(run_id: str, action: str = "") -> str:
        path = f"{API_PREFIX}/{quote(run_id, safe='')}"
        return f"{path}/{action}" if action else path

    def _post_retryable(self, path: str, body: object) -> object:
        return self.post_json(path, body, idempotency_key=uuid.uuid4().hex)

    def start_run(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        name: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run (see :meth:`RunTracker.start_run`)."""
        body = {
            "project": project,
            "name": name,
            "params": dict(params or {}),
            "tags": dict(tags or {}),
        }
        return RunPublic.model_validate(self.post_json(API_PREFIX, body)).to_domain()

    def get_run(self, run_id: str) -> Run:
        """One run with everything logged to it."""
        return RunPublic.model_validate(self.get_json(self._path(run_id))).to_domain()

    def list_runs(
        self,
        *,
        project: str | None = None,
        status: RunStatus | None = None,
        params: Mapping[str, ParamValue] | None = None,
        dataset: str | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Run]:
        """Runs, newest first, matching every filter given (see :meth:`RunTracker.list_runs`)."""
        query: dict[str, object] = {"limit": limit, "offset": offset}
        if project is not None:
            query["project"] = project
        if status is not None:
            query["status"] = RunStatus(status).value
        if params:
            query["param"] = [f"{k}={json.dumps(v)}" for k, v in params.items()]
        if dataset is not None:
            query["dataset"] = dataset
        if model is not None:
            query["model"] = model
        data = self.get_json(API_PREFIX, params=query)
        return [RunPublic.model_validate(r).to_domain() for r in data]

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        """Log immutable parameters (a key logged again with another value is a conflict)."""
        self._post_retryable(self._path(run_id, "params"), {"params": dict(params)})

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Log measurements, all or none."""
        checked = [validate_metric(m.key, m.value, m.step, m.timestamp) for m in metrics]
        body = {"metrics": [MetricPublic.of(m).model_dump(mode="json") for m in checked]}
        MetricsLogged.model_validate(self.post_json(self._path(run_id, "metrics"), body))

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every value of one metric, by step."""
        data = self.get_json(self._path(run_id, f"metrics/{quote(key, safe='')}"))
        return [MetricPublic.model_validate(m).to_domain() for m in data]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags."""
        self._post_retryable(self._path(run_id, "tags"), {"tags": dict(tags)})

    def log_dataset(self, run_id: str, ref: str) -> str:
        """Record a dataset version the run read; the exact ``name@vN`` it resolved to."""
        data = self._post_retryable(self._path(run_id, "datasets"), {"ref": ref})
        return DatasetLogged.model_validate(data).ref

    def datasets(self, run_id: str) -> list[LoggedDataset]:
        """The dataset versions the run read, in the order logged."""
        data = self.get_json(self._path(run_id, "datasets"))
        return [DatasetPublic.model_validate(d).to_domain() for d in data]

    def datasets_of_run(self, run_id: str) -> list[str]:
        """The exact versions (``name@vN``) the run read, in the order logged."""
        return [d.ref for d in self.datasets(run_id)]

    def log_model(self, run_id: str, model_name: str, version: str) -> None:
        """Record a model version the run produced."""
        body = {"model_name": model_name, "version": version}
        self._post_retryable(self._path(run_id, "models"), body)

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End the run (ending it again the same way is a no-op)."""
        body = {"status": RunStatus(status).value}
        return RunPublic.model_validate(
            self._post_retryable(self._path(run_id, "end"), body)
        ).to_domain()
