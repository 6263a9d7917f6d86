from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from synapsenet.core.db import Database
from synapsenet.core.events import Event, InMemoryEventBus
from synapsenet.core.outbox import Inbox, OutboxRecord, OutboxRelay, ProcessedEvent, record_event
from tests.fixtures.databases import empty_tables


def make_event(n: int, type_: str = "test.thing.happened") -> Event:
    return Event(type=type_, source="/tests", subject=str(n), data={"n": n})


def commit_events(db: Database, count: int) -> list[Event]:
    events = [make_event(n) for n in range(count)]
    with db.transaction() as session:
        for event in events:
            record_event(session, event)
    return events


class RecordingBus(InMemoryEventBus):
    """The in-process bus, remembering every publish (duplicates included)."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        super().__init__()
        self.published: list[Event] = []
        self.fail_on = fail_on or set()
        self._lock_published = threading.Lock()

    def publish(self, event: Event) -> None:
        if event.data.get("n") in self.fail_on:
            raise ConnectionError("bus down")
        with self._lock_published:
            self.published.append(event)
        super().publish(event)


def test_committed_events_are_published_in_order_and_marked(db: Database) -> None:
    events = commit_events(db, 5)
    bus = RecordingBus()
    relay = OutboxRelay(db, bus, batch_size=2)
    assert relay.pending_count() == 5
    assert relay.drain() == 5
    assert [e.id for e in bus.published] == [e.id for e in events]
    assert bus.published == events
    assert relay.pending_count() == 0
    assert relay.relay_once() == 0


def test_event_of_a_rolled_back_transaction_is_never_published(db: Database) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(db, bus)
    with pytest.raises(RuntimeError), db.transaction() as session:
        record_event(session, make_event(1))
        session.flush()
        raise RuntimeError("state change failed")
    assert relay.drain() == 0
    assert bus.published == []
    with db.transaction() as session:
        assert session.scalars(select(OutboxRecord)).all() == []


def test_publish_failure_stops_the_batch_and_keeps_order(db: Database) -> None:
    commit_events(db, 4)
    bus = RecordingBus(fail_on={2})
    relay = OutboxRelay(db, bus)
    assert relay.relay_once() == 2
    with db.transaction() as session:
        failed = session.scalars(
            select(OutboxRecord)
            .where(OutboxRecord.published_at.is_(None))
            .order_by(OutboxRecord.id)
        ).first()
    assert failed is not None
    assert failed.attempts == 1
    assert failed.last_error == "ConnectionError: bus down"
    bus.fail_on.clear()
    assert relay.drain() == 2
    assert [e.data["n"] for e in bus.published] == [0, 1, 2, 3]


def test_background_relay_publishes_soon_after_commit(db: Database) -> None:
    bus = RecordingBus()
    delivered = threading.Event()
    bus.subscribe("test.*", lambda _e: delivered.set(), group="watcher")
    relay = OutboxRelay(db, bus, poll_seconds=30)
    relay.start()
    try:
        commit_events(db, 1)
        # The commit wakes the relay: no need to wait for the 30 s poll.
        assert delivered.wait(10)
    finally:
        relay.stop()
    assert relay.pending_count() == 0


def test_inbox_handles_each_event_once_per_group(db: Database) -> None:
    inbox = Inbox(db)
    handled: Counter[str] = Counter()

    def consume(event: Event, session: Session) -> None:
        handled[event.id] += 1

    handler = inbox.handler("billing", consume)
    event = make_event(1)
    handler(event)
    handler(event)
    inbox.handler("audit", consume)(event)
    assert handled[event.id] == 2
    assert inbox.seen("billing", event.id)
    assert inbox.seen("audit", event.id)
    assert not inbox.seen("other", event.id)


def test_inbox_forgets_an_event_whose_handler_failed(db: Database) -> None:
    inbox = Inbox(db)
    calls: list[str] = []

    def flaky(event: Event, session: Session) -> None:
        calls.append(event.id)
        session.add(ProcessedEvent(group="side-effect", event_id=event.id, processed_at=event.time))
        if len(calls) == 1:
            raise RuntimeError("crash mid-handler")

    handler = inbox.handler("g", flaky)
    event = make_event(1)
    with pytest.raises(RuntimeError):
        handler(event)
    assert not inbox.seen("g", event.id)
    assert not inbox.seen("side-effect", event.id)
    handler(event)
    assert inbox.seen("g", event.id)
    assert inbox.seen("side-effect", event.id)
    assert len(calls) == 2


def test_concurrent_deliveries_of_one_event_are_handled_once(db: Database) -> None:
    inbox = Inbox(db)
    handled: list[str] = []
    lock = threading.Lock()

    def consume(event: Event, session: Session) -> None:
        with lock:
            handled.append(event.id)

    handler = inbox.handler("g", consume)
    event = make_event(7)
    threads = [threading.Thread(target=handler, args=(event,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert handled == [event.id]


def test_two_relays_on_postgresql_publish_each_event_once(postgres_database: Database) -> None:
    # SQLite deployments run one relay in one process; PostgreSQL ones may run several.
    db = postgres_database
    empty_tables(db)
    commit_events(db, 300)
    bus = RecordingBus()
    relays = [OutboxRelay(db, bus, batch_size=25) for _ in range(2)]
    barrier = threading.Barrier(2)

    def run(relay: OutboxRelay) -> None:
        barrier.wait()
        while relay.pending_count():
            relay.relay_once()

    threads = [threading.Thread(target=run, args=(r,)) for r in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(e.id for e in bus.published)
    assert len(counts) == 300
    assert max(counts.values()) == 1
