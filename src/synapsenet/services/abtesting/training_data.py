"""Experiments whose models were trained on a dataset version that was just deprecated.

The data versioning service announces a deprecation with ``dataversion.version.deprecated``,
whose ``impact`` lists every model version downstream of the version in the lineage graph
(``model:<name>@<version>``). :class:`TrainingDataWatcher` consumes that event and, for
every experiment that has not ended and serves one of those model versions in an arm:

* writes a ``lifecycle`` decision naming the dataset version, the reason and the arms;
* holds the ramp of a ramped experiment when a *treatment* arm is affected (no more traffic
  moves to a model trained on bad data until someone releases the hold; a control trained
  on it is production already and is only reported);
* publishes ``abtesting.experiment.training_data_deprecated`` with the same facts.

The changes are written in the inbox's transaction, so a redelivered event changes nothing
twice, and an event the consumer fails on is delivered again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from synapsenet.core.events import Event, EventBus, Subscription
from synapsenet.core.outbox import Inbox
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import ExperimentStatus, TrafficAllocationStrategy
from synapsenet.services.abtesting.store import ExperimentRecord, experiment_from_record

logger = logging.getLogger(__name__)

DEPRECATED_EVENT = "dataversion.version.deprecated"
"""The event this watcher consumes."""

CONSUMER_GROUP = "abtesting.training-data"
"""Its consumer group on the bus (and its inbox group)."""

_MODEL_PREFIX = "model:"

_ACTIVE = (ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)


def affected_model_versions(impact: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(model name, version)`` pairs named by an impact report's ``model_versions``.

    Entries that are not ``model:<name>@<version>`` are ignored (logged).
    """
    pairs: set[tuple[str, str]] = set()
    for node in impact.get("model_versions") or ():
        text = str(node)
        name, at, version = text.removeprefix(_MODEL_PREFIX).rpartition("@")
        if not text.startswith(_MODEL_PREFIX) or not at or not name or not version:
            logger.warning("ignored a model version %r in an impact report", text)
            continue
        pairs.add((name, version))
    return pairs


class TrainingDataWatcher:
    """Reacts to deprecated training data in the experiments it affects.

    Args:
        engine: The A/B testing engine (its routing cache is refreshed after a change).
        bus: The platform's event bus.
        inbox: The platform's inbox (one record per handled event).
    """

    def __init__(self, engine: ABTestingEngine, bus: EventBus, inbox: Inbox) -> None:
        self.engine = engine
        self.bus = bus
        self.inbox = inbox
        self._subscription: Subscription | None = None

    def start(self) -> None:
        """Subscribe to deprecations (idempotent)."""
        if self._subscription is None:
            consume = self.inbox.handler(CONSUMER_GROUP, self.consume)

            def handle(event: Event) -> None:
                consume(event)
                self.engine.router.forget()

            self._subscription = self.bus.subscribe(DEPRECATED_EVENT, handle, CONSUMER_GROUP)

    def stop(self) -> None:
        """Unsubscribe."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def consume(self, event: Event, session: Session) -> None:
        """Record the deprecation in every experiment it affects (in the inbox's session)."""
        data = event.data if isinstance(event.data, Mapping) else {}
        affected = affected_model_versions(data.get("impact") or {})
        if not affected:
            return
        dataset_ref = f"{data.get('dataset')}@v{data.get('version')}"
        reason = str(data.get("reason") or "")
        records = session.scalars(
            select(ExperimentRecord)
            .where(
                ExperimentRecord.model_name.in_(sorted({name for name, _ in affected})),
                ExperimentRecord.status.in_([s.value for s in _ACTIVE]),
            )
            .order_by(ExperimentRecord.id)
            .with_for_update()
        )
        for record in records:
            experiment = experiment_from_record(record)
            arms = [
                v for v in experiment.variants if (record.model_name, v.model_version) in affected
            ]
            if arms:
                self._record(session, record, dataset_ref, reason, [v.name for v in arms])

    def _record(
        self,
        session: Session,
        record: ExperimentRecord,
        dataset_ref: str,
        reason: str,
        arms: Sequence[str],
    ) -> None:
        experiment = experiment_from_record(record)
        treatments = [name for name in arms if not experiment.variant(name).is_control]
        hold = (
            bool(treatments)
            and record.strategy == TrafficAllocationStrategy.RAMPING.value
            and not record.ramp_held
        )
        now = self.engine.clock()
        why = f"training data {dataset_ref} was deprecated" + (f": {reason}" if reason else "")
        evidence = {"dataset_version": dataset_ref, "variants": list(arms), "ramp_held": hold}
        self.engine.log_decision_in(
            session, record.id, now, "lifecycle", "training_data_deprecated", why, evidence
        )
        if hold:
            record.ramp_held = True
            record.version += 1
            self.engine.log_decision_in(session, record.id, now, "ramp", "held", why, {})
        self.engine.emit_in(
            session,
            record,
            "training_data_deprecated",
            {
                "dataset_version": dataset_ref,
                "reason": reason,
                "variants": list(arms),
                "ramp_held": hold,
            },
        )
