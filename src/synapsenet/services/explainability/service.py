"""The explanation service: load a model, check the cache, explain, record, aggregate.

:class:`ExplanationService` is what the gateway hosts and the API calls. A synchronous
explanation goes loader -> cache (``get_or_compute``) -> SHAP or LIME explainer, then an
``explainability.explanation.completed`` event is written through the outbox with its
timing. A batch runs as a platform job, chunk by chunk with progress, and stores the encoded
explanation (the cache's codec, never pickle) in the object store under
``explanations/<job id>.bin`` and its inputs under ``explanations/<job id>.inputs.npy``.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from weakref import WeakKeyDictionary

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Histogram

from synapsenet.core.events import Event
from synapsenet.core.jobs import Job, JobStatus, ProgressReporter
from synapsenet.core.outbox import record_event
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.explainability._lime_media import (
    check_image,
    check_text,
    explain_image,
    explain_text,
    require_input_kind,
)
from synapsenet.services.explainability.aggregation import FeatureImportanceAggregator
from synapsenet.services.explainability.api import router
from synapsenet.services.explainability.cache import (
    ExplanationCache,
    InProcessLRUBackend,
    RedisBackend,
    decode_explanation,
    encode_explanation,
)
from synapsenet.services.explainability.loader import (
    FileModelLoader,
    InputKind,
    LoadedModel,
    ModelLoader,
)
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    FloatArray,
    GlobalImportance,
)
from synapsenet.services.explainability.tabular_requests import (
    Method,
    TreeExplainerPool,
    as_matrix,
    concatenate,
    explain_tabular,
    model_columns,
)

BATCH_JOB_KIND: Final = "explainability.batch"
COMPLETED_EVENT: Final = "explainability.explanation.completed"
EVENT_SOURCE: Final = "/explainability"


class TableSource(Protocol):
    """Where batch jobs read dataset versions from (the data versioning engine)."""

    def load_table(self, ref: str, *, path: str | None = None) -> pa.Table:
        """A tabular dataset version as an Arrow table."""
        ...


def result_key(job_id: str) -> str:
    """Object-store key of a batch job's encoded explanation."""
    return f"explanations/{job_id}.bin"


def inputs_key(job_id: str) -> str:
    """Object-store key of a batch job's explained rows (``.npy``, no pickle)."""
    return f"explanations/{job_id}.inputs.npy"


@dataclass(frozen=True)
class _PlatformResources:
    """What every service instance on one platform shares: its cache and its metrics."""

    cache: ExplanationCache
    duration: Histogram
    requests: Counter


_resources_by_registry: WeakKeyDictionary[CollectorRegistry, _PlatformResources] = (
    WeakKeyDictionary()
)
_resources_lock = threading.Lock()


def _platform_resources(platform: Platform) -> _PlatformResources:
    """The platform's explanation cache and metrics, created once per metrics registry.

    Several apps may serve one platform (tests, the CLI); Prometheus refuses a metric
    registered twice, and one cache per platform is what callers expect anyway.
    """
    registry = platform.metrics
    with _resources_lock:
        if registry not in _resources_by_registry:
            backend = (
                RedisBackend(platform.cache)
                if platform.cache is not None
                else InProcessLRUBackend()
            )
            _resources_by_registry[registry] = _PlatformResources(
                cache=ExplanationCache(backend, registry=registry),
                duration=Histogram(
                    "synapsenet_explanation_duration_seconds",
                    "Time to compute an explanation (cache misses only), by explanation type.",
                    ["type"],
                    registry=registry,
                ),
                requests=Counter(
                    "synapsenet_explanation_requests",
                    "Synchronous explanation requests, by method and whether the cache answered.",
                    ["method", "cached"],
                    registry=registry,
                ),
            )
        return _resources_by_registry[registry]


class ExplanationService:
    """Explanations of registered models, cached, recorded and served as jobs.

    Args:
        platform: The opened platform (database, object store, jobs, metrics, cache).
        loader: Where models come from; by default files under ``<data dir>/models``.
        cache: The explanation cache; by default the platform's (Redis when it has one,
            else an in-process LRU; hits and misses counted on the platform's registry).
        datasets: Where batch jobs read dataset versions; by default the data versioning
            engine on the same database and object store.
        max_rows: Most rows of one synchronous explanation.
        chunk_rows: Rows explained per step of a batch job (one progress report each).
        aggregator: Global importance and its bootstrap intervals.
    """

    name = "explainability"
    router = router

    def __init__(
        self,
        platform: Platform,
        loader: ModelLoader | None = None,
        *,
        cache: ExplanationCache | None = None,
        datasets: TableSource | None = None,
        max_rows: int = 1000,
        chunk_rows: int = 256,
        aggregator: FeatureImportanceAggregator | None = None,
    ) -> None:
        self.platform = platform
        self.loader: ModelLoader = loader or FileModelLoader(
            Path(platform.settings.data_dir) / "models"
        )
        shared = _platform_resources(platform)
        self.cache = cache if cache is not None else shared.cache
        self._datasets = datasets
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self.aggregator = aggregator or FeatureImportanceAggregator(n_bootstrap=200, seed=0)
        self._tree_explainers = TreeExplainerPool()
        self._duration = shared.duration
        self._requests = shared.requests

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Nothing runs in the background (batch work runs on the platform's jobs)."""

    def stop(self) -> None:
        """Nothing to stop; the cache's connections close with the platform."""

    @property
    def datasets(self) -> TableSource:
        """The dataset versions batch jobs read (built on first use)."""
        if self._datasets is None:
            from synapsenet.services.dataversion.engine import DatasetVersioningEngine

            self._datasets = DatasetVersioningEngine(self.platform.db, self.platform.store)
        return self._datasets

    # ------------------------------------------------------------------ computing

    def _compute(
        self,
        loaded: LoadedModel,
        matrix: FloatArray,
        method: Method,
        algorithm: str,
        parameters: Mapping[str, Any],
    ) -> Explanation:
        started = time.perf_counter()
        explanation = explain_tabular(
            loaded, matrix, method, algorithm, parameters, self._tree_explainers
        )
        self._duration.labels(explanation.type.value).observe(time.perf_counter() - started)
        return explanation

    def _timed(self, compute: Callable[[], Explanation]) -> Explanation:
        started = time.perf_counter()
        explanation = compute()
        self._duration.labels(explanation.type.value).observe(time.perf_counter() - started)
        return explanation

    def explain(
        self,
        model: str,
        version: str,
        instances: object,
        *,
        method: Method = "shap",
        algorithm: str = "auto",
        parameters: Mapping[str, Any] | None = None,
    ) -> tuple[Explanation, bool]:
        """Explain rows now, from the cache when the same request was answered before.

        Args:
            model: The model's name.
            version: Its version.
            instances: Rows (lists in feature order, or records keyed by feature name).
            method: ``"shap"`` or ``"lime"``.
            algorithm: SHAP's algorithm (``"auto"``, ``"tree"``, ``"exact"``, ``"kernel"``).
            parameters: Further explainer parameters (seed, n_samples, ...).

        Returns:
            The explanation, and whether the cache answered.

        Raises:
            NotFoundError: Unknown model or version.
            InvalidError: Naming the field, for bad rows or parameters.
        """
        started = time.perf_counter()
        loaded = self.loader.load(model, version)
        require_input_kind(loaded, InputKind.TABULAR)
        matrix = as_matrix(instances, loaded.feature_names)
        if len(matrix) > self.max_rows:
            raise InvalidError(
                f"instances has {len(matrix)} rows; at most {self.max_rows} are explained "
                "synchronously. Submit a batch job for more.",
                field="instances",
            )
        params = dict(parameters or {})
        return self._answer(
            loaded,
            method,
            f"{method}:{algorithm}",
            params,
            matrix,
            lambda: self._compute(loaded, matrix, method, algorithm, params),
            started,
        )

    def explain_text(
        self,
        model: str,
        version: str,
        text: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> tuple[Explanation, bool]:
        """LIME weights of the words of one text, from the cache when asked before.

        Args:
            model: A text model's name (see ``InMemoryModelLoader.register_text``).
            version: Its version.
            text: The text to explain.
            parameters: :class:`~.lime_text.LimeText` parameters (seed 0 unless given).

        Returns:
            A ``lime_text`` explanation (``feature_names`` are the words,
            ``extras["positions"]`` their character offsets), and whether the cache answered.

        Raises:
            NotFoundError: Unknown model or version.
            InvalidError: A model that does not take text, an empty or too long text, or a
                bad parameter (naming the field).
        """
        started = time.perf_counter()
        loaded = self.loader.load(model, version)
        require_input_kind(loaded, InputKind.TEXT)
        checked = check_text(text)
        params = dict(parameters or {})
        return self._answer(
            loaded,
            "lime",
            "lime:text",
            params,
            checked,
            lambda: self._timed(lambda: explain_text(loaded, checked, params)),
            started,
        )

    def explain_image(
        self,
        model: str,
        version: str,
        image: object,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> tuple[Explanation, bool]:
        """LIME weights of the superpixels of one image, from the cache when asked before.

        Args:
            model: An image model's name (see ``InMemoryModelLoader.register_image``).
            version: Its version.
            image: ``(H, W)`` or ``(H, W, C)`` numbers (nested lists or an array).
            parameters: :class:`~.lime_image.LimeImage` parameters (seed 0 unless given).

        Returns:
            A ``lime_image`` explanation (``extras["segments"]`` is the ``(H, W)`` segment
            map), and whether the cache answered.

        Raises:
            NotFoundError: Unknown model or version.
            InvalidError: A model that does not take images, a malformed or too large
                image, or a bad parameter (naming the field).
        """
        started = time.perf_counter()
        loaded = self.loader.load(model, version)
        require_input_kind(loaded, InputKind.IMAGE)
        array = check_image(image)
        params = dict(parameters or {})
        return self._answer(
            loaded,
            "lime",
            "lime:image",
            params,
            array,
            lambda: self._timed(lambda: explain_image(loaded, array, params)),
            started,
        )

    def _answer(
        self,
        loaded: LoadedModel,
        method: str,
        explainer: str,
        params: dict[str, Any],
        inputs: object,
        compute: Callable[[], Explanation],
        started: float,
    ) -> tuple[Explanation, bool]:
        """The cached or computed explanation, counted and recorded as an event."""
        key = self.cache.key(
            loaded.name,
            loaded.version,
            explainer,
            {"model_hash": loaded.content_hash, **params},
            inputs,
        )
        explanation, cached = self.cache.get_or_compute(key, compute)
        elapsed = time.perf_counter() - started
        self._requests.labels(method, str(cached).lower()).inc()
        with self.platform.db.transaction() as session:
            record_event(
                session,
                Event(
                    type=COMPLETED_EVENT,
                    source=EVENT_SOURCE,
                    subject=f"{loaded.name}:{loaded.version}",
                    data={
                        "model": loaded.name,
                        "version": loaded.version,
                        "method": method,
                        "type": explanation.type.value,
                        "n_instances": explanation.n_instances,
                        "n_features": explanation.n_features,
                        "cached": cached,
                        "duration_seconds": elapsed,
                        "compute_seconds": explanation.runtime_seconds,
                    },
                ),
            )
        return explanation, cached

    def invalidate(self, model: str, version: str) -> int:
        """Retire every cached explanation of a model version (in every process sharing it).

        The cache keys already change when a version's artifact does (its content hash is
        part of them); this is for a version whose explanations are stale for another
        reason, e.g. a model loader that now serves different background rows.

        Args:
            model: The model's name.
            version: Its version.

        Returns:
            The version's new cache generation.

        Raises:
            InvalidError: On an empty name or version.
            UnavailableError: If the cache's store cannot be reached: an invalidation that
                did not happen must not look as if it had.
        """
        return self.cache.invalidate(model, version)

    # ------------------------------------------------------------------ batch jobs

    def submit_batch(
        self,
        model: str,
        version: str,
        *,
        instances: object | None = None,
        dataset_ref: str | None = None,
        dataset_path: str | None = None,
        method: Method = "shap",
        algorithm: str = "auto",
        parameters: Mapping[str, Any] | None = None,
    ) -> Job:
        """Explain many rows in the background; the job reports progress per chunk.

        Give either ``instances`` or a dataset version ``dataset_ref`` (its columns are
        matched to the model's features by name). The model and inline rows are checked
        before the job is queued.

        Returns:
            The queued job. Its result holds ``result_key`` (the encoded explanation in the
            object store), the counts and a ``mean_abs`` importance summary.

        Raises:
            NotFoundError: Unknown model or version.
            InvalidError: Neither or both of ``instances`` and ``dataset_ref``, or bad rows.
        """
        if (instances is None) == (dataset_ref is None):
            raise InvalidError("give exactly one of instances and dataset_ref", field="dataset_ref")
        loaded = self.loader.load(model, version)
        require_input_kind(loaded, InputKind.TABULAR)
        matrix = None if instances is None else as_matrix(instances, loaded.feature_names)
        params = dict(parameters or {})
        job_parameters: dict[str, Any] = {
            "model": model,
            "version": version,
            "method": method,
            "algorithm": algorithm,
            "parameters": params,
            "dataset_ref": dataset_ref,
            "dataset_path": dataset_path,
            "n_rows": None if matrix is None else len(matrix),
        }
        job_id: list[str] = []
        queued = threading.Event()

        def work(report: ProgressReporter) -> dict[str, Any]:
            queued.wait(timeout=30)
            rows = matrix
            if rows is None:
                assert dataset_ref is not None
                report(0.0, f"loading {dataset_ref}")
                table = self.datasets.load_table(dataset_ref, path=dataset_path)
                rows = as_matrix(model_columns(table, loaded.feature_names), loaded.feature_names)
            return self._run_batch(job_id[0], loaded, rows, method, algorithm, params, report)

        job = self.platform.jobs.submit(BATCH_JOB_KIND, job_parameters, work)
        job_id.append(job.id)
        queued.set()
        return job

    def _run_batch(
        self,
        job_id: str,
        loaded: LoadedModel,
        matrix: FloatArray,
        method: Method,
        algorithm: str,
        parameters: dict[str, Any],
        report: ProgressReporter,
    ) -> dict[str, Any]:
        n_rows = len(matrix)
        parts: list[Explanation] = []
        for start in range(0, n_rows, self.chunk_rows):
            chunk = matrix[start : start + self.chunk_rows]
            parts.append(self._compute(loaded, chunk, method, algorithm, parameters))
            done = min(start + self.chunk_rows, n_rows)
            report(0.95 * done / n_rows, f"explained {done} of {n_rows} rows")
        explanation = concatenate(parts)
        store = self.platform.store
        store.put(result_key(job_id), encode_explanation(explanation))
        buffer = io.BytesIO()
        np.save(buffer, matrix, allow_pickle=False)
        store.put(inputs_key(job_id), buffer.getvalue())
        importance = self.aggregator.global_importance(explanation, AggregationMethod.MEAN_ABS)
        return {
            "result_key": result_key(job_id),
            "inputs_key": inputs_key(job_id),
            "model": loaded.name,
            "version": loaded.version,
            "type": explanation.type.value,
            "n_instances": explanation.n_instances,
            "n_features": explanation.n_features,
            "n_outputs": explanation.n_outputs,
            "runtime_seconds": explanation.runtime_seconds,
            "local_accuracy_error": explanation.local_accuracy_error,
            "importance": {
                "method": importance.method.value,
                "ranking": list(importance.ranking()),
                "values": dict(
                    zip(importance.feature_names, importance.importance.tolist(), strict=True)
                ),
            },
        }

    def get_job(self, job_id: str) -> Job:
        """A batch job's state.

        Raises:
            NotFoundError: No explanation job has that id.
        """
        job = self.platform.jobs.get(job_id)
        if job.kind != BATCH_JOB_KIND:
            raise NotFoundError(f"no explanation job with id {job_id!r}")
        return job

    def _finished(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job.status is not JobStatus.SUCCEEDED:
            detail = f": {job.error}" if job.error else ""
            raise ConflictError(
                f"explanation job {job_id} is {job.status.value}{detail}; its result exists "
                "once it has succeeded"
            )
        return job

    def batch_explanation(self, job_id: str) -> Explanation:
        """The explanation a succeeded batch job stored.

        Raises:
            NotFoundError: No such job.
            ConflictError: The job has not succeeded.
        """
        self._finished(job_id)
        return decode_explanation(self.platform.store.get(result_key(job_id)))

    def batch_inputs(self, job_id: str) -> FloatArray:
        """The rows a succeeded batch job explained, ``(n, M)``."""
        self._finished(job_id)
        data = self.platform.store.get(inputs_key(job_id))
        matrix: FloatArray = np.load(io.BytesIO(data), allow_pickle=False)
        return matrix

    def global_importance(
        self,
        job_id: str,
        method: AggregationMethod | str = AggregationMethod.MEAN_ABS,
        *,
        output: int = 0,
    ) -> GlobalImportance:
        """Global importance of a batch job's explanations, with bootstrap intervals.

        Raises:
            NotFoundError: No such job.
            ConflictError: The job has not succeeded.
            InvalidError: An unknown method or output.
        """
        return self.aggregator.global_importance(
            self.batch_explanation(job_id), method, output=output
        )
