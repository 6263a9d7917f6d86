"""The Python SDK: one client for every SynapseNet service, for notebooks and scripts.

Example:
    >>> import synapsenet
    >>> client = synapsenet.Client("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> with client.start_run(project="credit", params={"depth": 3}) as run:  # doctest: +SKIP
    ...     run.log_dataset("loans@v1")
    ...     version = client.log_model("credit", model, feature_names=names, run_id=run.id)
    ...     run.log_model("credit", version.version)
    >>> client.predict("credit", [[0.1, 0.2, 0.3]], unit_id="user-42")  # doctest: +SKIP

The URL defaults to ``SYNAPSENET_URL`` (else ``http://127.0.0.1:8000``) and the API key to
``SYNAPSENET_API_KEY`` (else the admin key the server wrote into the data directory on its
first start, which is what a local ``make run`` uses).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import httpx
import numpy as np

from synapsenet.config import load_settings
from synapsenet.errors import ConflictError
from synapsenet.services.abtesting.client import ABTestingClient
from synapsenet.services.abtesting.schemas import IngestResultPublic, ObservationIn
from synapsenet.services.dataversion.client import DataVersionClient
from synapsenet.services.experiments.active_run import ActiveRun, start_run
from synapsenet.services.experiments.client import RunsClient
from synapsenet.services.experiments.models import ParamValue
from synapsenet.services.explainability.client import ExplainabilityClient
from synapsenet.services.inference.client import InferenceClient, Rows
from synapsenet.services.inference.schemas import PredictionPublic
from synapsenet.services.registry.client import ModelRegistryClient
from synapsenet.services.registry.flavors import detect_flavor, serialize
from synapsenet.services.registry.models import ModelSignature
from synapsenet.services.registry.schemas import VersionPublic
from synapsenet.services.registry.signatures import infer_signature

DEFAULT_URL = "http://127.0.0.1:8000"


def default_api_key() -> str | None:
    """``SYNAPSENET_API_KEY``, else the admin key in the data directory, else None."""
    given = os.environ.get("SYNAPSENET_API_KEY")
    if given:
        return given
    path = load_settings().admin_key_path
    return path.read_text().strip() if path.is_file() else None


class Client:
    """Every service of a SynapseNet server behind one object.

    Attributes:
        experiments: A/B tests: create, start, ramp, results, rollbacks.
        datasets: Versioned datasets: commit, checkout, diff, lineage, impact.
        explanations: SHAP and LIME explanations, batch jobs, global importance.
        models: The model registry: versions, artifacts, stages.
        runs: Training-run tracking.
        inference: Predictions routed by the running experiments.

    Args:
        url: The server's base URL.
        api_key: The API key (see the module docstring for the defaults).
        timeout: Seconds per request attempt.
        transport: An httpx transport (e.g. in-process, for tests); the network by default.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url or os.environ.get("SYNAPSENET_URL") or DEFAULT_URL
        key = api_key if api_key is not None else default_api_key()
        options: dict[str, Any] = {"api_key": key, "timeout": timeout, "transport": transport}
        self.experiments = ABTestingClient(self.url, **options)
        self.datasets = DataVersionClient(self.url, **options)
        self.explanations = ExplainabilityClient(self.url, **options)
        self.models = ModelRegistryClient(self.url, **options)
        self.runs = RunsClient(self.url, **options)
        self.inference = InferenceClient(self.url, **options)

    # ------------------------------------------------------------------ shortcuts

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
        return self.inference.predict(
            model,
            instances,
            unit_id=unit_id,
            version=version,
            explain=explain,
            explain_method=explain_method,
        )

    def start_run(
        self,
        *,
        project: str = "default",
        name: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ActiveRun:
        """Start a tracked training run; use it as a context manager."""
        return start_run(self.runs, project=project, name=name, params=params, tags=tags)

    def log_model(
        self,
        name: str,
        model: object,
        *,
        feature_names: Sequence[str] | None = None,
        signature: ModelSignature | None = None,
        metrics: Mapping[str, float] | None = None,
        training_datasets: Sequence[str] = (),
        run_id: str | None = None,
        background: np.ndarray | None = None,
        description: str = "",
    ) -> VersionPublic:
        """Serialise a fitted model safely (skops, XGBoost or LightGBM native) and register it.

        The registered model is created first if it does not exist yet.

        Raises:
            InvalidError: The model has no safe format (register a pickle explicitly with
                ``models.register_version(..., trusted=True)``), or the signature cannot be
                inferred (pass ``feature_names``).
        """
        flavor = detect_flavor(model)
        if signature is None:
            signature = infer_signature(model, flavor, feature_names)
        rows = None if background is None else np.asarray(background, dtype=np.float64).tolist()
        with suppress(ConflictError):  # registered before
            self.models.create_model(name)
        return self.models.register_version(
            name,
            serialize(model, flavor),
            flavor=flavor,
            signature=signature,
            metrics=metrics,
            training_datasets=training_datasets,
            run_id=run_id,
            background=rows,
            description=description,
        )

    def record_outcome(
        self,
        experiment: str,
        *,
        metric: str,
        value: float,
        request_id: str | None = None,
        unit_id: str,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> IngestResultPublic:
        """Report one outcome of a served request (the arm is the one that served it).

        Args:
            experiment: The experiment's id or name.
            metric: The metric observed.
            value: Its value (0 or 1 for a binary metric).
            request_id: The prediction's request id; without it, the unit's latest request.
            unit_id: The unit the request was for.
            event_id: Unique id of the outcome (a retry with the same id counts once).
            time: When it happened (now by default).
        """
        observation = ObservationIn(
            event_id=event_id or uuid.uuid4().hex,
            unit_id=unit_id,
            request_id=request_id,
            time=time or datetime.now(UTC),
            metric=metric,
            value=value,
        )
        return self.experiments.ingest(experiment, [observation])

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every connection pool."""
        for client in (
            self.experiments,
            self.datasets,
            self.explanations,
            self.models,
            self.runs,
            self.inference,
        ):
            client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
