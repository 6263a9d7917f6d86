"""The registry's reaction to experiment outcomes, received through the event bus.

The A/B testing service announces its decisions as events; the registry acts on them here,
never through a direct call:

- ``abtesting.experiment.rolled_back``: every treatment version of the experiment's model is
  demoted (archived), so a rolled-back model cannot be promoted by accident;
- ``abtesting.experiment.completed`` with a winner: the winner's version is promoted (the
  previous production version is archived).

Delivery is at least once; the platform :class:`~synapsenet.core.outbox.Inbox` records each
handled event id in the same transaction as the stage change, so a redelivery changes
nothing. Versions the registry does not know (an experiment on a model registered elsewhere)
are skipped with a log line rather than retried forever.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlalchemy.orm import Session

from synapsenet.core.events import Event, EventBus, Subscription
from synapsenet.core.outbox import Inbox
from synapsenet.errors import NotFoundError
from synapsenet.services.registry.models import ModelStage, parse_version
from synapsenet.services.registry.registry import ModelRegistry
from synapsenet.services.registry.store import ModelRecord, ModelVersionRecord

__all__ = [
    "COMPLETED_EVENT",
    "CONSUMER_GROUP",
    "EXPERIMENT_EVENTS",
    "ROLLED_BACK_EVENT",
    "ExperimentOutcomeConsumer",
]

logger = logging.getLogger(__name__)

ROLLED_BACK_EVENT: Final = "abtesting.experiment.rolled_back"
COMPLETED_EVENT: Final = "abtesting.experiment.completed"
EXPERIMENT_EVENTS: Final = "abtesting.experiment.*"
CONSUMER_GROUP: Final = "registry.experiment-outcomes"


class ExperimentOutcomeConsumer:
    """Promotes experiment winners and demotes rolled-back treatments.

    Args:
        registry: The registry whose stages change.
        bus: Where experiment events arrive.
        inbox: Makes handling idempotent by event id.
        group: The consumer group (one delivery of each event per group).
    """

    def __init__(
        self, registry: ModelRegistry, bus: EventBus, inbox: Inbox, *, group: str = CONSUMER_GROUP
    ) -> None:
        self.registry = registry
        self.bus = bus
        self.inbox = inbox
        self.group = group
        self._subscription: Subscription | None = None

    def start(self) -> None:
        """Subscribe (once) to the A/B testing service's experiment events."""
        if self._subscription is None:
            self._subscription = self.bus.subscribe(
                EXPERIMENT_EVENTS, self.inbox.handler(self.group, self.handle), self.group
            )

    def stop(self) -> None:
        """Stop receiving events."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def handle(self, event: Event, session: Session) -> None:
        """Act on one experiment event inside the inbox's transaction."""
        data: dict[str, Any] = event.data
        model_name = data.get("model_name")
        if not isinstance(model_name, str):
            return
        name = data.get("name", event.subject)
        if event.type == ROLLED_BACK_EVENT:
            reason = f"rolled back in experiment {name}: {data.get('reason', '')}".rstrip(": ")
            for version in data.get("treatment_model_versions") or ():
                self._move(session, model_name, str(version), ModelStage.ARCHIVED, reason)
        elif event.type == COMPLETED_EVENT:
            winner = data.get("winner_model_version")
            if winner is not None:
                reason = f"won experiment {name}"
                self._move(session, model_name, str(winner), ModelStage.PRODUCTION, reason)

    def _move(
        self, session: Session, model_name: str, version: str, stage: ModelStage, reason: str
    ) -> None:
        if not _registered(session, model_name, version):
            logger.info(
                "experiment outcome names %s@%s, which is not registered; skipped",
                model_name,
                version,
            )
            return
        self.registry.apply_transition(session, model_name, version, stage, reason=reason)


def _registered(session: Session, model_name: str, version: str) -> bool:
    try:
        number = parse_version(version)
    except NotFoundError:
        return False
    if session.get(ModelRecord, model_name) is None:
        return False
    return session.get(ModelVersionRecord, (model_name, number)) is not None
