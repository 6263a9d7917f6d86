"""The event-bus contract, run over every EventBus implementation.

Each test drives the bus through the public protocol only (publish, subscribe, close). The
Redis bus delivers from worker threads, so tests wait with bounded polling, then ``settle``
until the groups have nothing unread or unacknowledged: after that no delivery can still come,
so counting deliveries proves "exactly once".
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis

from synapsenet.core.events import Event, EventBus, InMemoryEventBus
from synapsenet.core.redis_bus import RedisStreamsEventBus
from tests.fixtures.redis import wait_until


@dataclass
class BusHarness:
    """A bus under test, and how to wait until it has finished delivering."""

    bus: EventBus
    settle: Callable[[Sequence[str]], None]


@dataclass
class Recorder:
    """A handler that records what it receives (from any thread)."""

    fail_first: int = 0
    events: list[Event] = field(default_factory=list)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                raise RuntimeError(f"transient failure {self.attempts}")
            self.events.append(event)

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return [event.id for event in self.events]


def _settle_redis(client: redis.Redis, stream: str) -> Callable[[Sequence[str]], None]:
    def group_done(group: str) -> bool:
        for info in client.xinfo_groups(stream):
            if info["name"] == group:
                return int(info["pending"]) == 0 and info["lag"] == 0
        return False

    def settle(groups: Sequence[str]) -> None:
        wait_until(lambda: all(group_done(g) for g in groups), message=f"groups {groups} drained")

    return settle


@pytest.fixture(params=["in-memory", "redis-streams"])
def harness(request: pytest.FixtureRequest) -> Iterator[BusHarness]:
    if request.param == "in-memory":
        memory_bus = InMemoryEventBus()
        yield BusHarness(memory_bus, lambda groups: None)
        memory_bus.close()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    stream: str = request.getfixturevalue("redis_stream")
    client: redis.Redis = request.getfixturevalue("redis_client")
    # Short timings keep redelivery (claim after idle) well under a second.
    bus = RedisStreamsEventBus(
        redis_url, stream=stream, block_ms=50, claim_idle_ms=150, batch_size=10
    )
    yield BusHarness(bus, _settle_redis(client, stream))
    bus.close()


def _event(event_type: str = "abtesting.experiment.started", **data: object) -> Event:
    return Event(type=event_type, source="/tests", data=dict(data))


def _wait_for(recorder: Recorder, count: int) -> None:
    wait_until(lambda: len(recorder.ids) >= count, message=f"{count} deliveries")


def test_each_group_receives_each_event_exactly_once(harness: BusHarness) -> None:
    recorder = Recorder()
    harness.bus.subscribe("abtesting.*", recorder, group="analytics")
    events = [_event(n=i) for i in range(12)]
    for event in events:
        harness.bus.publish(event)

    _wait_for(recorder, len(events))
    harness.settle(["analytics"])

    assert recorder.ids == [event.id for event in events]


def test_two_groups_both_receive_every_event(harness: BusHarness) -> None:
    audit, rollback = Recorder(), Recorder()
    harness.bus.subscribe("*", audit, group="audit")
    harness.bus.subscribe("*", rollback, group="rollback")
    events = [_event(n=i) for i in range(5)]
    for event in events:
        harness.bus.publish(event)

    _wait_for(audit, len(events))
    _wait_for(rollback, len(events))
    harness.settle(["audit", "rollback"])

    assert audit.ids == rollback.ids == [event.id for event in events]


def test_members_of_one_group_share_events_without_duplicates(harness: BusHarness) -> None:
    first, second = Recorder(), Recorder()
    harness.bus.subscribe("abtesting.*", first, group="workers")
    harness.bus.subscribe("abtesting.*", second, group="workers")
    events = [_event(n=i) for i in range(20)]
    for event in events:
        harness.bus.publish(event)

    wait_until(lambda: len(first.ids) + len(second.ids) >= len(events), message="20 deliveries")
    harness.settle(["workers"])

    handled = Counter(first.ids + second.ids)
    assert set(handled) == {event.id for event in events}
    assert set(handled.values()) == {1}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("abtesting.*", ["abtesting.experiment.started", "abtesting.experiment.rolled_back"]),
        ("*.rolled_back", ["dataversion.rolled_back", "abtesting.experiment.rolled_back"]),
        (
            "*",
            [
                "dataversion.version.committed",
                "abtesting.experiment.started",
                "dataversion.rolled_back",
                "abtesting.experiment.rolled_back",
            ],
        ),
    ],
)
def test_pattern_selects_event_types(
    harness: BusHarness, pattern: str, expected: list[str]
) -> None:
    recorder = Recorder()
    harness.bus.subscribe(pattern, recorder, group="filtered")
    # The last type matches every pattern, so once it arrives all earlier ones were seen.
    for event_type in [
        "dataversion.version.committed",
        "abtesting.experiment.started",
        "dataversion.rolled_back",
        "abtesting.experiment.rolled_back",
    ]:
        harness.bus.publish(_event(event_type))

    _wait_for(recorder, len(expected))
    harness.settle(["filtered"])

    assert [event.type for event in recorder.events] == expected


def test_event_that_failed_once_is_delivered_again(harness: BusHarness) -> None:
    recorder = Recorder(fail_first=1)
    harness.bus.subscribe("*", recorder, group="flaky")
    event = _event()

    harness.bus.publish(event)
    _wait_for(recorder, 1)
    harness.settle(["flaky"])

    assert recorder.attempts == 2
    assert recorder.ids == [event.id]


def test_closed_subscription_receives_nothing_more(harness: BusHarness) -> None:
    closing, staying = Recorder(), Recorder()
    subscription = harness.bus.subscribe("*", closing, group="closing")
    harness.bus.subscribe("*", staying, group="staying")
    first = _event(n=1)
    harness.bus.publish(first)
    _wait_for(closing, 1)
    _wait_for(staying, 1)

    subscription.close()
    harness.bus.publish(_event(n=2))
    # The other group receiving the second event shows the bus has delivered it.
    _wait_for(staying, 2)
    harness.settle(["staying"])

    assert closing.ids == [first.id]


def test_event_attributes_round_trip_exactly(harness: BusHarness) -> None:
    recorder = Recorder()
    harness.bus.subscribe("*", recorder, group="roundtrip")
    event = Event(
        type="explainability.explanation.completed",
        source="/explainability",
        subject="explanation-42",
        time=datetime(
            2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
        ),
        data={
            "shap": [0.25, -1.5e-12, 3],
            "nested": {"ok": True, "none": None, "text": "café ✓ \u2028"},
            "big": 2**53 + 1,
        },
    )
    plain = Event(type="core.ping", source="/tests", time=datetime(2024, 1, 1, tzinfo=UTC))

    harness.bus.publish(event)
    harness.bus.publish(plain)
    _wait_for(recorder, 2)

    received, received_plain = recorder.events
    assert received == event
    assert received.time.utcoffset() == event.time.utcoffset()
    assert received.to_json() == event.to_json()
    assert received_plain == plain
    assert received_plain.subject is None
