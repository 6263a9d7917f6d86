"""Folding observations into sufficient statistics, once per event (or batch) id."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.models import Experiment, MetricKind, Observation
from synapsenet.services.abtesting.store import (
    MetricDelta,
    add_exposures,
    add_metric_deltas,
    claim_keys,
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingestion did.

    Attributes:
        accepted: Observations counted now.
        duplicates: Observations skipped because their event id (or batch id) was counted
            before.
    """

    accepted: int
    duplicates: int


def validate_observations(experiment: Experiment, observations: Sequence[Observation]) -> None:
    """Check every observation before anything is stored.

    Raises:
        InvalidError: Naming the first bad observation by index and what is wrong with it.
    """
    variants = {v.name for v in experiment.variants}
    metrics = {m.name: m for m in experiment.spec.metrics}
    for index, obs in enumerate(observations):
        where = f"observation {index} ({obs.event_id!r})"
        if not obs.event_id:
            raise InvalidError(f"observation {index} has no event id", field="event_id")
        if obs.variant not in variants:
            raise InvalidError(
                f"{where}: unknown variant {obs.variant!r}; the experiment has {sorted(variants)}",
                field="variant",
            )
        if obs.time.tzinfo is None or obs.time.utcoffset() is None:
            raise InvalidError(f"{where}: time must be timezone-aware", field="time")
        if obs.metric is None:
            continue
        metric = metrics.get(obs.metric)
        if metric is None:
            raise InvalidError(
                f"{where}: unknown metric {obs.metric!r}; the experiment has {sorted(metrics)}",
                field="metric",
            )
        if obs.value is None or not math.isfinite(obs.value):
            raise InvalidError(
                f"{where}: metric {obs.metric!r} needs a finite value", field="value"
            )
        if metric.kind is MetricKind.BINARY and obs.value not in (0, 1):
            raise InvalidError(
                f"{where}: binary metric {obs.metric!r} takes 0 or 1, got {obs.value!r}",
                field="value",
            )
        if obs.covariate is not None and not math.isfinite(obs.covariate):
            raise InvalidError(f"{where}: covariate must be finite", field="covariate")


def fold_observations(
    session: Session,
    experiment: Experiment,
    observations: Sequence[Observation],
    *,
    batch_id: str | None,
    now: datetime,
) -> IngestResult:
    """Validate, deduplicate and aggregate a batch inside the caller's transaction.

    Args:
        session: The transaction.
        experiment: The experiment the observations belong to.
        observations: Exposures (no metric) and outcomes.
        batch_id: When given, the batch as a whole is counted at most once; otherwise each
            observation at most once per event id.
        now: The ingestion time (stamps the aggregates).

    Returns:
        How many observations were counted and how many were duplicates.
    """
    validate_observations(experiment, observations)
    if batch_id is not None:
        if not claim_keys(session, experiment.id, [f"batch:{batch_id}"]):
            return IngestResult(accepted=0, duplicates=len(observations))
        fresh = list(observations)
        duplicates = 0
    else:
        seen: set[str] = set()
        unique = []
        for obs in observations:
            if obs.event_id not in seen:
                seen.add(obs.event_id)
                unique.append(obs)
        claimed = claim_keys(session, experiment.id, (f"event:{o.event_id}" for o in unique))
        fresh = [o for o in unique if f"event:{o.event_id}" in claimed]
        duplicates = len(observations) - len(fresh)
    exposures: Counter[str] = Counter()
    deltas: dict[tuple[str, str], MetricDelta] = {}
    for obs in fresh:
        if obs.metric is None:
            exposures[obs.variant] += 1
            continue
        assert obs.value is not None
        delta = deltas.setdefault((obs.variant, obs.metric), MetricDelta())
        value = obs.value
        delta.n += 1
        delta.sum += value
        delta.sum_squares += value * value
        if obs.covariate is not None:
            x = obs.covariate
            delta.n_covariate += 1
            delta.sum_cov_y += value
            delta.sum_cov_y2 += value * value
            delta.sum_x += x
            delta.sum_x2 += x * x
            delta.sum_xy += x * value
    add_exposures(session, experiment.id, dict(exposures), now)
    add_metric_deltas(session, experiment.id, deltas, now)
    return IngestResult(accepted=len(fresh), duplicates=duplicates)
