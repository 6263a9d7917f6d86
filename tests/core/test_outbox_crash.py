"""A relay killed mid-batch loses nothing: the real Redis bus, a real process, SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy.orm import Session

from synapsenet.core.db import Database
from synapsenet.core.events import Event
from synapsenet.core.outbox import Inbox, OutboxRelay, record_event
from synapsenet.core.redis_bus import RedisStreamsEventBus


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    name = f"synapsenet-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name, f"{name}:dead")
    client.close()


def test_relay_killed_mid_batch_loses_nothing(db: Database, redis_url: str, stream: str) -> None:
    events = [Event(type="test.item.added", source="/tests", data={"n": n}) for n in range(20)]
    with db.transaction() as session:
        for event in events:
            record_event(session, event)

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.core.outbox_relay_proc", db.url, redis_url, stream, "7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(stream) == 7  # published before the kill, never marked as sent

    bus = RedisStreamsEventBus(redis_url, stream=stream, start="earliest")
    relay = OutboxRelay(db, bus)
    assert relay.pending_count() == 20
    assert relay.drain() == 20
    assert relay.pending_count() == 0
    assert client.xlen(stream) == 27  # at least once: the first 7 went out twice
    client.close()

    handled: Counter[str] = Counter()

    def consume(event: Event, session: Session) -> None:
        handled[event.id] += 1

    handler = Inbox(db).handler("ledger", consume)
    total = 0
    while (result := bus.consume_once("test.*", handler, "ledger")).total:
        total += result.total
    bus.close()
    assert total == 27
    assert set(handled) == {e.id for e in events}
    assert max(handled.values()) == 1
