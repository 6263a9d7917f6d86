"""Exposures of routed requests: counted, logged, and used to attribute later outcomes.

When the platform serves a prediction through an experiment, the arm that served it is an
*exposure*. :class:`ExposureLog` counts it in the experiment's statistics (idempotently,
keyed by the request id) and keeps a row per request, so that an outcome reported later may
name its request or its unit instead of the arm: the log says which arm served it.

Recording one row per request in the request's own transaction would put a database write on
every prediction. Instead :meth:`ExposureLog.record` appends to an in-memory buffer that a
background thread writes in batches every ``flush_interval`` seconds (and at shutdown).
:meth:`ExposureLog.flush` writes the buffer at once; outcome attribution calls it first, so
an outcome sent right after its prediction to the same process finds its request. A batch
that fails to write stays buffered and is retried; beyond ``max_pending`` exposures the
oldest are dropped and counted in ``synapsenet_exposures_dropped_total``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry

from synapsenet.core.metrics import counter
from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.ingestion import IngestResult, fold_observations
from synapsenet.services.abtesting.models import Exposure, Observation
from synapsenet.services.abtesting.store import (
    record_served,
    variants_of_requests,
    variants_of_units,
)

logger = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL = 0.2
"""Seconds between background writes of buffered exposures."""

DEFAULT_MAX_PENDING = 100_000
"""Buffered exposures kept while the database cannot be written; older ones are dropped."""


def exposure_event_id(request_id: str) -> str:
    """The ingestion key of a request's exposure (a retried request is counted once)."""
    return f"request:{request_id}"


@dataclass(frozen=True, slots=True)
class PendingOutcome:
    """An outcome whose arm is still to be found from its request or unit.

    Attributes:
        observation: The outcome; its ``variant`` is ignored when ``resolve`` is true.
        request_id: The request it follows, if the caller knows it.
        resolve: Whether the arm must be looked up (the caller did not name it).
    """

    observation: Observation
    request_id: str | None
    resolve: bool


class ExposureLog:
    """Counts and logs the exposures of routed requests; attributes outcomes to arms.

    Args:
        engine: The A/B testing engine whose experiments are served.
        flush_interval: Seconds between background writes.
        max_pending: Most exposures buffered while writes fail.
        registry: Where the dropped-exposure counter is registered (none when None).
    """

    def __init__(
        self,
        engine: ABTestingEngine,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._pending: deque[tuple[str, Exposure]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped = counter(
            registry,
            "synapsenet_exposures_dropped",
            "Exposures dropped: the buffer was full while the database failed, or invalid.",
        )

    # ------------------------------------------------------------------ recording

    def record(self, experiment_id: str, exposure: Exposure) -> None:
        """Buffer one exposure; the background thread writes it within ``flush_interval``."""
        with self._lock:
            self._pending.append((experiment_id, exposure))
            overflow = len(self._pending) - self.max_pending
            for _ in range(max(overflow, 0)):
                self._pending.popleft()
        if overflow > 0:
            self._dropped.inc(overflow)
            logger.warning("exposure buffer full: dropped the %d oldest exposures", overflow)

    def record_now(self, experiment_id: str, exposures: Sequence[Exposure]) -> IngestResult:
        """Count and log exposures of one experiment in one transaction.

        Raises:
            InvalidError: An exposure names an arm the experiment does not have.
            NotFoundError: No such experiment.
            ConflictError: The experiment has not started.
        """
        experiment = self.engine.router.experiment(experiment_id)
        observations = [
            Observation(
                event_id=exposure_event_id(e.request_id),
                unit_id=e.unit_id,
                variant=e.variant,
                time=e.time,
            )
            for e in exposures
        ]
        with self.engine.db.transaction() as session:
            result = fold_observations(
                session, experiment, observations, batch_id=None, now=self.engine.clock()
            )
            record_served(session, experiment.id, exposures)
        return result

    @property
    def pending(self) -> int:
        """Exposures buffered and not yet written."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write every buffered exposure now; return how many were written.

        Batches that fail stay buffered (in order) and the first error is raised after the
        others were tried.
        """
        with self._flush_lock:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            by_experiment: dict[str, list[Exposure]] = defaultdict(list)
            for experiment_id, exposure in batch:
                by_experiment[experiment_id].append(exposure)
            written = 0
            failed: list[tuple[str, Exposure]] = []
            error: Exception | None = None
            for experiment_id, exposures in by_experiment.items():
                try:
                    self.record_now(experiment_id, exposures)
                    written += len(exposures)
                except InvalidError:
                    # An arm the experiment no longer has cannot become valid by retrying.
                    logger.exception("dropped %d invalid exposures", len(exposures))
                    self._dropped.inc(len(exposures))
                except Exception as exc:
                    failed.extend((experiment_id, e) for e in exposures)
                    error = error or exc
            if failed:
                with self._lock:
                    self._pending.extendleft(reversed(failed))
            if error is not None:
                raise error
            return written

    # ------------------------------------------------------------------ attribution

    def attribute(
        self, experiment_id: str, outcomes: Sequence[PendingOutcome]
    ) -> list[Observation]:
        """Give each outcome the arm that served its request (or its unit's latest request).

        Raises:
            InvalidError: Naming the first outcome whose request or unit was never served in
                this experiment.
        """
        unresolved = [o for o in outcomes if o.resolve]
        if not unresolved:
            return [o.observation for o in outcomes]
        self.flush()
        experiment = self.engine.router.experiment(experiment_id)
        requests = {o.request_id for o in unresolved if o.request_id is not None}
        units = {o.observation.unit_id for o in unresolved if o.request_id is None}
        with self.engine.db.transaction() as session:
            by_request = variants_of_requests(session, experiment.id, requests)
            by_unit = variants_of_units(session, experiment.id, units)
        resolved: list[Observation] = []
        for index, outcome in enumerate(outcomes):
            obs = outcome.observation
            if not outcome.resolve:
                resolved.append(obs)
                continue
            if outcome.request_id is not None:
                variant = by_request.get(outcome.request_id)
                missing = f"request {outcome.request_id!r}"
            else:
                variant = by_unit.get(obs.unit_id)
                missing = f"unit {obs.unit_id!r}"
            if variant is None:
                raise InvalidError(
                    f"observation {index} ({obs.event_id!r}) names no variant, and {missing} "
                    f"was never served by experiment {experiment.name!r}; send the variant",
                    field="variant",
                )
            resolved.append(replace(obs, variant=variant))
        return resolved

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="synapsenet-exposures", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                logger.exception("writing exposures failed; they stay buffered")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer and write what is left (best effort: failures are logged)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout)
        try:
            self.flush()
        except Exception:
            logger.exception("exposures left unwritten at shutdown: %d", self.pending)
