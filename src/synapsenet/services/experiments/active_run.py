"""Track a run from training code, the way MLflow does.

For example::

    from synapsenet.services.experiments import start_run

    with start_run(tracker, project="fraud", name="xgb-depth-6", params={"depth": 6}) as run:
        train = run.log_dataset("transactions@production")   # -> "transactions@v12"
        for epoch in range(10):
            run.log_metric("loss", loss, step=epoch)
        run.log_model("fraud-detector", "7")

The run ends ``finished`` when the block ends normally, ``failed`` when it raises an
exception (which propagates), and ``killed`` on ``KeyboardInterrupt`` or ``SystemExit``.
``tracker`` is the in-process :class:`~synapsenet.services.experiments.tracker.RunTracker` or
the HTTP :class:`~synapsenet.services.experiments.client.RunsClient`: both are
:class:`RunTracking`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from synapsenet.core.db import utcnow
from synapsenet.errors import SynapseNetError
from synapsenet.services.experiments.models import (
    DEFAULT_PROJECT,
    Metric,
    ParamValue,
    Run,
    RunStatus,
)

logger = logging.getLogger(__name__)


class RunTracking(Protocol):
    """What :class:`ActiveRun` needs: the run tracker in-process, or its HTTP client."""

    def start_run(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        name: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Start a run."""

    def get_run(self, run_id: str) -> Run:
        """A run with everything logged to it."""

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        """Log immutable parameters."""

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Log measurements."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set tags."""

    def log_dataset(self, run_id: str, ref: str) -> str:
        """Record a dataset version read; the exact ``name@vN``."""

    def log_model(self, run_id: str, model_name: str, version: str) -> None:
        """Record a model version produced."""

    def end_run(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End the run."""


class ActiveRun:
    """A started run, ended by leaving its ``with`` block (or by :meth:`end`).

    Build it with :func:`start_run`.

    Args:
        tracker: Where the run is recorded.
        run: The started run.
    """

    def __init__(self, tracker: RunTracking, run: Run) -> None:
        self.tracker = tracker
        self.id = run.id
        self._ended = False

    @property
    def info(self) -> Run:
        """The run as recorded now (params, latest metrics, datasets, models, status)."""
        return self.tracker.get_run(self.id)

    def log_param(self, key: str, value: ParamValue) -> None:
        """Log one parameter; it cannot change later (a different value is a conflict)."""
        self.tracker.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        """Log parameters; none of them can change later."""
        self.tracker.log_params(self.id, params)

    def log_metric(
        self, key: str, value: float, *, step: int = 0, timestamp: datetime | None = None
    ) -> None:
        """Log one measurement (timestamped now unless given)."""
        self.tracker.log_metrics(self.id, [Metric(key, value, step, timestamp or utcnow())])

    def log_metrics(
        self, metrics: Mapping[str, float], *, step: int = 0, timestamp: datetime | None = None
    ) -> None:
        """Log several metrics measured at the same step and time."""
        moment = timestamp or utcnow()
        points = [Metric(key, value, step, moment) for key, value in metrics.items()]
        self.tracker.log_metrics(self.id, points)

    def set_tag(self, key: str, value: str) -> None:
        """Set one tag (tags can change, and can be set after the run ended)."""
        self.tracker.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set several tags."""
        self.tracker.set_tags(self.id, tags)

    def log_dataset(self, ref: str) -> str:
        """Record that the run reads a dataset version.

        Args:
            ref: ``name@vN``, ``name@<tag>`` or ``name`` (the newest version).

        Returns:
            The exact version recorded, ``name@vN``: read that one, since a tag may move.
        """
        return self.tracker.log_dataset(self.id, ref)

    def log_model(self, model_name: str, version: str) -> None:
        """Record that the run produced version ``version`` of model ``model_name``."""
        self.tracker.log_model(self.id, model_name, version)

    def end(self, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End the run now (leaving the ``with`` block then changes nothing)."""
        run = self.tracker.end_run(self.id, status)
        self._ended = True
        return run

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.end(RunStatus.FINISHED)
            return
        status = RunStatus.FAILED if issubclass(exc_type, Exception) else RunStatus.KILLED
        try:
            self.end(status)
        except SynapseNetError as error:
            # The training code's exception is the one that matters; do not mask it.
            logger.warning("could not mark run %s %s: %s", self.id, status.value, error)

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r})"


def start_run(
    tracker: RunTracking,
    *,
    project: str = DEFAULT_PROJECT,
    name: str | None = None,
    params: Mapping[str, ParamValue] | None = None,
    tags: Mapping[str, str] | None = None,
) -> ActiveRun:
    """Start a run and return it, to use as a context manager.

    Args:
        tracker: A :class:`~synapsenet.services.experiments.tracker.RunTracker` or a
            :class:`~synapsenet.services.experiments.client.RunsClient`.
        project: The group of runs it belongs to (MLflow's "experiment").
        name: A human name (generated from the id when omitted).
        params: Parameters to log at once.
        tags: Tags to set at once.

    Returns:
        The running run; leaving its ``with`` block ends it (``finished``, or ``failed`` if
        the block raised).
    """
    run = tracker.start_run(project=project, name=name, params=params, tags=tags)
    return ActiveRun(tracker, run)
