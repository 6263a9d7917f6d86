from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from synapsenet.core.db import Database, normalise_url, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import OutboxRecord, ProcessedEvent, record_event
from synapsenet.errors import ConfigurationError, UnavailableError
from synapsenet.migrations.metadata import Base


def test_migrations_build_exactly_the_declared_schema(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert db.current_revision() == db.head_revision()


def test_upgrade_is_idempotent(db: Database) -> None:
    db.upgrade()
    assert db.current_revision() == db.head_revision()


def test_transaction_commits_on_success(db: Database) -> None:
    with db.transaction() as session:
        session.add(ProcessedEvent(group="g", event_id="e1", processed_at=utcnow()))
    with db.transaction() as session:
        assert session.scalars(select(ProcessedEvent.event_id)).all() == ["e1"]


def test_transaction_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(ProcessedEvent(group="g", event_id="e1", processed_at=utcnow()))
        session.flush()
        raise RuntimeError("boom")
    with db.transaction() as session:
        assert session.scalars(select(ProcessedEvent)).all() == []


def test_timestamps_come_back_aware_utc(db: Database) -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 13, 30, tzinfo=paris)
    with db.transaction() as session:
        session.add(ProcessedEvent(group="g", event_id="e1", processed_at=moment))
    with db.transaction() as session:
        stored = session.scalars(select(ProcessedEvent.processed_at)).one()
    assert stored == moment
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"), db.transaction() as session:
        session.add(ProcessedEvent(group="g", event_id="e1", processed_at=datetime(2026, 1, 1)))
        session.flush()


def test_ping_answers_on_a_live_database(db: Database) -> None:
    db.ping()


def test_unreachable_database_names_the_setting() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError) as info:
        database.check_reachable()
    assert info.value.setting == "SYNAPSENET_DATABASE_URL"
    assert "cannot connect" in info.value.detail
    with pytest.raises(UnavailableError):
        database.ping()


def test_password_is_hidden_in_connection_errors() -> None:
    database = Database("postgresql://user:hunter2@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError) as info:
        database.check_reachable()
    assert "hunter2" not in str(info.value)


def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    database.upgrade()
    assert (tmp_path / "deep" / "er" / "x.db").exists()
    assert database.dialect == "sqlite"
    database.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalise_url_picks_psycopg(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


def test_utcnow_is_aware() -> None:
    assert utcnow().tzinfo is UTC


def test_concurrent_read_check_write_transactions_serialize(db: Database) -> None:
    """Writers read a counter and write it back + 1 in Python: no update may be lost."""
    with db.transaction() as session:
        record_event(session, Event(type="test.counter", source="/tests", id="counter"))

    def increment() -> None:
        for _ in range(10):
            with db.transaction(write=True) as session:
                record = session.scalars(
                    select(OutboxRecord).where(OutboxRecord.event_id == "counter").with_for_update()
                ).one()
                record.attempts = record.attempts + 1

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.transaction() as session:
        assert session.scalars(select(OutboxRecord.attempts)).one() == 40
