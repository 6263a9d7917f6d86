"""The transactional outbox, its relay to the event bus, and idempotent consumption.

A service adds its events with :func:`record_event` through the same session that changes its
state, so the event exists if and only if the change commits. :class:`OutboxRelay` publishes
pending events in order and marks them sent; a relay killed mid-batch publishes the unmarked
ones again on its next run (at-least-once). :class:`Inbox` makes a consumer idempotent: it
records each handled event id in the consumer's own transaction and skips ids it has seen.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, event, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from synapsenet.core.db import Base, Database, UTCDateTime, utcnow
from synapsenet.core.events import Event, EventBus, EventHandler

logger = logging.getLogger(__name__)

# Arbitrary constant naming the PostgreSQL advisory lock that elects one relay at a time.
_RELAY_LOCK_KEY = 0x5359_4E41_5053
_PENDING = "synapsenet.outbox_pending"


class OutboxRecord(Base):
    """One event waiting in (or relayed from) the outbox."""

    __tablename__ = "core_outbox"
    __table_args__ = (Index("ix_core_outbox_pending", "published_at", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(255))
    envelope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProcessedEvent(Base):
    """An event id a consumer group has handled (the idempotent-consumer inbox)."""

    __tablename__ = "core_processed_events"

    group: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())


def record_event(session: Session, event: Event) -> None:
    """Add ``event`` to the outbox in the caller's transaction.

    The event is published only if that transaction commits.

    Args:
        session: The session carrying the state change the event describes.
        event: The event to publish after commit.
    """
    session.add(
        OutboxRecord(
            event_id=event.id,
            type=event.type,
            envelope=event.to_json(),
            created_at=utcnow(),
            attempts=0,
        )
    )
    session.info[_PENDING] = True


_wakers: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        for relay in list(_wakers):
            relay.wake()


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


class OutboxRelay:
    """Publishes outbox events to the bus, oldest first, and marks them sent.

    Args:
        db: The database holding the outbox.
        bus: Where events go.
        batch_size: Events read per round.
        poll_seconds: Pause between rounds when idle (a commit with events wakes it early).
    """

    def __init__(
        self, db: Database, bus: EventBus, *, batch_size: int = 100, poll_seconds: float = 0.5
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def relay_once(self) -> int:
        """Publish one batch of pending events.

        Events are read in one short transaction, published in order, then marked sent in
        another; a publish failure stops the batch (keeping order) and records the error on
        that event. On PostgreSQL an advisory lock lets one relay at a time publish.

        Returns:
            How many events were published and marked.
        """
        if self.db.dialect == "postgresql":
            with self.db.engine.connect() as lock_conn:
                got = lock_conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": _RELAY_LOCK_KEY}
                ).scalar()
                if not got:
                    return 0
                try:
                    return self._relay_batch()
                finally:
                    lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _RELAY_LOCK_KEY})
                    lock_conn.commit()
        return self._relay_batch()

    def _relay_batch(self) -> int:
        with self.db.transaction() as session:
            pending = session.execute(
                select(OutboxRecord.id, OutboxRecord.envelope)
                .where(OutboxRecord.published_at.is_(None))
                .order_by(OutboxRecord.id)
                .limit(self.batch_size)
            ).all()
        published: list[int] = []
        failure: tuple[int, str] | None = None
        for row_id, envelope in pending:
            try:
                self.bus.publish(Event.from_json(envelope))
            except Exception as exc:
                failure = (row_id, f"{type(exc).__name__}: {exc}")
                logger.warning("outbox relay could not publish record %s: %s", *failure)
                break
            published.append(row_id)
        with self.db.transaction() as session:
            if published:
                session.execute(
                    update(OutboxRecord)
                    .where(OutboxRecord.id.in_(published))
                    .values(published_at=utcnow())
                )
            if failure is not None:
                session.execute(
                    update(OutboxRecord)
                    .where(OutboxRecord.id == failure[0])
                    .values(attempts=OutboxRecord.attempts + 1, last_error=failure[1])
                )
        return len(published)

    def drain(self, max_rounds: int = 1000) -> int:
        """Relay until nothing is pending (or a round publishes nothing).

        Returns:
            How many events were published in all.
        """
        total = 0
        for _ in range(max_rounds):
            sent = self.relay_once()
            total += sent
            if sent < self.batch_size:
                break
        return total

    def pending_count(self) -> int:
        """How many events wait in the outbox."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(OutboxRecord.id).where(OutboxRecord.published_at.is_(None))
            ).all()
        return len(rows)

    def wake(self) -> None:
        """Ask the background loop to run a round now."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        _wakers.add(self)
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.drain()
            except Exception:
                logger.exception("outbox relay round failed; retrying")
                sent = 0
            if sent == 0:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread, letting the current round finish."""
        _wakers.discard(self)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


ConsumerHandler = Callable[[Event, Session], None]
"""A consumer that changes state through the given session (the inbox's transaction)."""


class _AlreadyHandledError(Exception):
    """Another delivery of the same event won the race to record it."""


class Inbox:
    """Makes consumers idempotent by event id.

    Args:
        db: The database where handled event ids are recorded.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def handler(self, group: str, consume: ConsumerHandler) -> EventHandler:
        """Wrap ``consume`` so each event id is handled at most once per ``group``.

        The id is recorded in the same transaction as the consumer's changes: if the consumer
        raises, neither is kept and the bus delivers the event again.

        Args:
            group: The consumer group (one record per group and event id).
            consume: The consumer; it receives the event and the transaction's session.

        Returns:
            An event handler to pass to :meth:`EventBus.subscribe`.
        """

        def handle(event: Event) -> None:
            try:
                with self.db.transaction(write=True) as session:
                    if session.get(ProcessedEvent, (group, event.id)) is not None:
                        return
                    session.add(
                        ProcessedEvent(group=group, event_id=event.id, processed_at=utcnow())
                    )
                    try:
                        session.flush()
                    except IntegrityError as exc:
                        # A concurrent delivery of the same event committed first.
                        raise _AlreadyHandledError from exc
                    consume(event, session)
            except _AlreadyHandledError:
                logger.info("event %s already handled by group %s", event.id, group)

        return handle

    def seen(self, group: str, event_id: str) -> bool:
        """Whether ``group`` has handled ``event_id``."""
        with self.db.transaction() as session:
            return session.get(ProcessedEvent, (group, event_id)) is not None
