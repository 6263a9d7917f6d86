"""Serving predictions: route by the running experiment, predict, record, explain.

One request goes through four steps, each timed in a Prometheus histogram:

1. **Route.** A version pinned by the caller serves as is. Otherwise, if an experiment is
   running on the model and the request names a unit, the A/B engine assigns the unit to an
   arm (sticky, deterministic) and the arm's version serves; the request is an exposure of
   that arm when the unit is inside the experiment. Without a running experiment, or
   without a unit, the production version serves (a request with no unit cannot be
   attributed to an arm, so it is never an exposure).
2. **Load** the version through the model source (which keeps loaded models in an LRU).
3. **Predict**: class probabilities for classifiers, the prediction for regressors.
4. **Explain**, when asked, through the explanation service (whose cache answers a repeated
   request).

Which experiment runs on a model is looked up at most once per ``experiment_ttl`` seconds,
and again at once when the A/B engine in this process changed an experiment (its routing
generation moved). A change made by another process is seen within the TTL; a stale answer
is harmless for an experiment that ended, since the A/B engine's router then returns the
control.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prometheus_client import CollectorRegistry

from synapsenet.core.metrics import counter, histogram
from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.models import Experiment, Exposure
from synapsenet.services.explainability.adapters import ModelFunction, adapt
from synapsenet.services.explainability.loader import LoadedModel
from synapsenet.services.explainability.models import Explanation
from synapsenet.services.explainability.tabular_requests import as_matrix
from synapsenet.services.inference.models import FloatArray, Prediction, Route
from synapsenet.services.inference.ports import (
    ExposureRecorder,
    PredictionExplainer,
    ServedModels,
    TrafficRouter,
)

DEFAULT_MAX_INSTANCES = 10_000
"""Most rows one request may send."""

DEFAULT_MAX_EXPLAINED = 100
"""Most rows one request may ask to explain synchronously."""

_FUNCTION_CACHE_SIZE = 64


def _now() -> datetime:
    return datetime.now(UTC)


class InferenceEngine:
    """Routes prediction requests to model versions and serves them.

    Args:
        models: Where versions and loaded models come from (the registry).
        router: The running experiments' routing; None serves production only.
        exposures: Where exposures go; None records none.
        explainer: The explanation service; None refuses ``explain=True``.
        registry: Prometheus registry of the timings and counters (none when None).
        clock: Source of the current time (aware UTC).
        experiment_ttl: Seconds the running experiment of a model is cached.
        max_instances: Most rows per request.
        max_explained: Most rows per request that may be explained.
    """

    def __init__(
        self,
        models: ServedModels,
        *,
        router: TrafficRouter | None = None,
        exposures: ExposureRecorder | None = None,
        explainer: PredictionExplainer | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = _now,
        experiment_ttl: float = 1.0,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_explained: int = DEFAULT_MAX_EXPLAINED,
    ) -> None:
        self.models = models
        self.router = router
        self.exposures = exposures
        self.explainer = explainer
        self.clock = clock
        self.experiment_ttl = experiment_ttl
        self.max_instances = max_instances
        self.max_explained = max_explained
        self._experiments: dict[str, tuple[float, int, Experiment | None]] = {}
        self._functions: OrderedDict[tuple[str, str, str], ModelFunction] = OrderedDict()
        self._lock = threading.Lock()
        self._latency = histogram(
            registry,
            "synapsenet_predict_duration_seconds",
            "Time to serve a prediction request, by model and step "
            "(route, load, predict, explain, total).",
            ["model", "step"],
        )
        self._served = counter(
            registry,
            "synapsenet_predictions",
            "Rows predicted, by model, version and how the version was chosen.",
            ["model", "version", "route"],
        )

    # ------------------------------------------------------------------ routing

    def running_experiment(self, model_name: str) -> Experiment | None:
        """The experiment running on ``model_name`` (cached, see the module docstring)."""
        if self.router is None:
            return None
        now = time.monotonic()
        generation = self.router.routing_generation
        with self._lock:
            cached = self._experiments.get(model_name)
        if cached is not None and now - cached[0] < self.experiment_ttl and cached[1] == generation:
            return cached[2]
        experiment = self.router.running_for_model(model_name)
        with self._lock:
            self._experiments[model_name] = (now, generation, experiment)
        return experiment

    def forget(self, model_name: str | None = None) -> None:
        """Drop the cached running experiment of one model (or of all)."""
        with self._lock:
            if model_name is None:
                self._experiments.clear()
            else:
                self._experiments.pop(model_name, None)

    def route(self, model_name: str, *, unit_id: str | None, version: str | None) -> Route:
        """Choose the version that serves a request (see the module docstring).

        Raises:
            NotFoundError: No production version when one is needed.
        """
        if version is not None:
            return Route(version, None, None, False, "pinned")
        experiment = self.running_experiment(model_name)
        if experiment is not None and unit_id is not None:
            assert self.router is not None
            assignment = self.router.assign(experiment.id, unit_id)
            return Route(
                assignment.model_version,
                experiment.id,
                assignment.variant,
                assignment.in_experiment,
                "experiment",
            )
        return Route(self.models.production_version(model_name), None, None, False, "production")

    # ------------------------------------------------------------------ serving

    def _function(self, loaded: LoadedModel, example: FloatArray) -> ModelFunction:
        key = (loaded.name, loaded.version, loaded.content_hash)
        with self._lock:
            function = self._functions.get(key)
            if function is not None:
                self._functions.move_to_end(key)
                return function
        built = adapt(loaded.model, feature_names=loaded.feature_names, example=example)
        with self._lock:
            self._functions[key] = built
            while len(self._functions) > _FUNCTION_CACHE_SIZE:
                self._functions.popitem(last=False)
        return built

    def predict(
        self,
        model_name: str,
        instances: object,
        *,
        unit_id: str | None = None,
        request_id: str | None = None,
        version: str | None = None,
        explain: bool = False,
        explain_method: Literal["shap", "lime"] = "shap",
    ) -> Prediction:
        """Serve one prediction request.

        Args:
            model_name: The model.
            instances: Rows, in the model's feature order or as records keyed by feature name.
            unit_id: The unit (user, session) the request is for; routes it in an experiment.
            request_id: Identifies the request (generated when None); outcomes may name it.
            version: Serve this version, bypassing experiments (not an exposure).
            explain: Also explain the rows.
            explain_method: ``"shap"`` or ``"lime"``.

        Returns:
            The predictions, the version that served and why, and the explanation if asked.

        Raises:
            NotFoundError: Unknown model or version, or no production version to serve.
            InvalidError: Bad rows (naming the field), too many rows, or an explanation
                asked for when none can be given.
        """
        started = time.perf_counter()
        request_id = request_id or uuid.uuid4().hex
        timings: dict[str, float] = {}

        mark = time.perf_counter()
        route = self.route(model_name, unit_id=unit_id, version=version)
        timings["route"] = time.perf_counter() - mark

        mark = time.perf_counter()
        loaded = self.models.load(model_name, route.model_version)
        timings["load"] = time.perf_counter() - mark

        matrix = as_matrix(instances, loaded.feature_names)
        if len(matrix) > self.max_instances:
            raise InvalidError(
                f"instances has {len(matrix)} rows; one request may send at most "
                f"{self.max_instances}",
                field="instances",
            )
        if explain:
            self._check_explainable(len(matrix))
        mark = time.perf_counter()
        function = self._function(loaded, matrix[:1])
        outputs = function(matrix)
        timings["predict"] = time.perf_counter() - mark

        explanation = None
        cached = None
        if explain:
            mark = time.perf_counter()
            explanation, cached = self._explain(loaded, matrix, explain_method)
            timings["explain"] = time.perf_counter() - mark

        if route.exposure and self.exposures is not None:
            # Recorded once the request has succeeded: a failed request exposed nobody.
            assert route.experiment_id is not None
            assert route.variant is not None
            assert unit_id is not None
            self.exposures.record(
                route.experiment_id,
                Exposure(request_id, unit_id, route.variant, self.clock()),
            )
        timings["total"] = time.perf_counter() - started
        for step, seconds in timings.items():
            self._latency.labels(model_name, step).observe(seconds)
        self._served.labels(model_name, route.model_version, route.reason).inc(len(matrix))
        return Prediction(
            request_id=request_id,
            model_name=model_name,
            route=route,
            outputs=outputs,
            output_names=loaded.output_names or function.output_names,
            kind=function.kind,
            explanation=explanation,
            explanation_cached=cached,
            timings=timings,
        )

    def _check_explainable(self, n_rows: int) -> None:
        if self.explainer is None:
            raise InvalidError("explanations are not available on this server", field="explain")
        if n_rows > self.max_explained:
            raise InvalidError(
                f"explain=true explains at most {self.max_explained} rows per request; this "
                f"one has {n_rows}. Ask the explanation service for a batch job.",
                field="explain",
            )

    def _explain(
        self, loaded: LoadedModel, matrix: FloatArray, method: Literal["shap", "lime"]
    ) -> tuple[Explanation, bool]:
        assert self.explainer is not None
        return self.explainer.explain(loaded.name, loaded.version, matrix, method=method)
