"""Events: CloudEvents 1.0 envelopes, the event bus contract and the in-process bus.

Services never publish directly: they add events to the transactional outbox
(:mod:`synapsenet.core.outbox`) in the same transaction as their state change, and the relay
publishes them to a bus. Delivery is at least once; consumers are idempotent by event id.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from synapsenet.core.db import utcnow
from synapsenet.errors import InvalidError

logger = logging.getLogger(__name__)

SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

EventHandler = Callable[["Event"], None]
"""A consumer of events. Raising means "not processed": the bus delivers the event again."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event, with the CloudEvents 1.0 context attributes.

    Attributes:
        type: Dotted event type, e.g. ``abtesting.experiment.rolled_back``.
        source: URI reference of the producer, e.g. ``/abtesting``.
        data: JSON-serialisable payload.
        subject: The resource the event is about (e.g. an experiment id).
        id: Unique id; consumers deduplicate on it.
        time: Aware UTC time the event happened.
        specversion: CloudEvents version, always ``1.0``.
        datacontenttype: Media type of ``data``, always ``application/json``.
    """

    type: str
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=utcnow)
    specversion: str = SPEC_VERSION
    datacontenttype: str = JSON_CONTENT_TYPE

    def __post_init__(self) -> None:
        if not self.type or any(not part for part in self.type.split(".")):
            raise InvalidError(f"event type {self.type!r} must be dotted words", field="type")
        if not self.source:
            raise InvalidError("event source must not be empty", field="source")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise InvalidError("event time must be timezone-aware", field="time")

    def to_dict(self) -> dict[str, Any]:
        """The event in CloudEvents structured JSON form."""
        envelope: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(),
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }
        if self.subject is not None:
            envelope["subject"] = self.subject
        return envelope

    def to_json(self) -> str:
        """Serialise as a CloudEvents structured-mode JSON document."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, envelope: dict[str, Any]) -> Event:
        """Rebuild an event from its structured JSON form.

        Raises:
            InvalidError: When a required attribute is missing or malformed.
        """
        try:
            return cls(
                type=envelope["type"],
                source=envelope["source"],
                data=dict(envelope.get("data") or {}),
                subject=envelope.get("subject"),
                id=envelope["id"],
                time=datetime.fromisoformat(envelope["time"]),
                specversion=envelope.get("specversion", SPEC_VERSION),
                datacontenttype=envelope.get("datacontenttype", JSON_CONTENT_TYPE),
            )
        except KeyError as exc:
            raise InvalidError(f"event is missing {exc.args[0]!r}", field=exc.args[0]) from None
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"malformed event: {exc}") from None

    @classmethod
    def from_json(cls, document: str | bytes) -> Event:
        """Parse a CloudEvents structured-mode JSON document."""
        return cls.from_dict(json.loads(document))


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches a subscription pattern.

    Patterns are shell-style globs over the dotted type: ``abtesting.experiment.*``,
    ``*.rolled_back``, ``*`` for everything.
    """
    return fnmatch.fnmatchcase(event_type, pattern)


class Subscription(Protocol):
    """A live subscription; close it to stop receiving events."""

    def close(self) -> None:
        """Stop delivering events to this subscription."""


class EventBus(Protocol):
    """Where published events go, and how consumers receive them.

    Every subscriber ``group`` receives each matching event; within one group, each event
    goes to one consumer. A handler that raises leaves the event unacknowledged, and the bus
    delivers it again.
    """

    def publish(self, event: Event) -> None:
        """Publish one event; returns once the bus has accepted it durably (for its kind)."""

    def subscribe(self, type_pattern: str, handler: EventHandler, group: str) -> Subscription:
        """Deliver events whose type matches ``type_pattern`` to ``handler`` within ``group``."""

    def ping(self) -> None:
        """Raise :class:`~synapsenet.errors.UnavailableError` when the bus is unreachable."""

    def close(self) -> None:
        """Release connections and stop consumers."""


@dataclass
class _LocalSubscription:
    bus: InMemoryEventBus
    pattern: str
    handler: EventHandler
    group: str

    def close(self) -> None:
        self.bus._remove(self)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a handler kept failing on, with the last error."""

    event: Event
    group: str
    error: str


class InMemoryEventBus:
    """The embedded bus: delivers synchronously in the publishing thread.

    A handler that raises is retried up to ``max_attempts`` times; an event that still fails
    is kept in :attr:`dead_letters` (and logged) rather than dropped silently. Within a group,
    subscriptions take turns (round robin), like consumers of one group on a real broker.

    Args:
        max_attempts: Deliveries of one event to one group before it is dead-lettered.
    """

    def __init__(self, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise InvalidError(
                f"The 'max_attempts' parameter of InMemoryEventBus must be an int >= 1. "
                f"Got {max_attempts!r} instead.",
                field="max_attempts",
            )
        self.max_attempts = max_attempts
        self.dead_letters: list[DeadLetter] = []
        self._subscriptions: list[_LocalSubscription] = []
        self._turn: dict[str, int] = {}
        self._lock = threading.RLock()

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to one subscription of every group whose pattern matches it."""
        with self._lock:
            groups: dict[str, list[_LocalSubscription]] = {}
            for sub in self._subscriptions:
                if type_matches(sub.pattern, event.type):
                    groups.setdefault(sub.group, []).append(sub)
            chosen = []
            for group, members in groups.items():
                turn = self._turn.get(group, 0)
                self._turn[group] = turn + 1
                chosen.append(members[turn % len(members)])
        for sub in chosen:
            self._deliver(sub, event)

    def _deliver(self, sub: _LocalSubscription, event: Event) -> None:
        error = ""
        for _attempt in range(self.max_attempts):
            try:
                sub.handler(event)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("handler of group %s failed on %s: %s", sub.group, event.id, error)
            else:
                return
        logger.error("event %s dead-lettered for group %s: %s", event.id, sub.group, error)
        self.dead_letters.append(DeadLetter(event=event, group=sub.group, error=error))

    def subscribe(self, type_pattern: str, handler: EventHandler, group: str) -> Subscription:
        """Register ``handler`` for events matching ``type_pattern`` in ``group``."""
        if not group:
            raise InvalidError("subscriber group must not be empty", field="group")
        sub = _LocalSubscription(self, type_pattern, handler, group)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def _remove(self, sub: _LocalSubscription) -> None:
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

    def ping(self) -> None:
        """The in-process bus is always reachable."""

    def close(self) -> None:
        """Drop every subscription."""
        with self._lock:
            self._subscriptions.clear()
