"""Fixtures for run tracking: a tracker on each database, over a real data versioning engine."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.experiments.ports import EngineDatasetResolver
from synapsenet.services.experiments.tracker import RunTracker

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class TickingClock:
    """A clock that moves one second forward each time it is read (also across threads)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=1)
            return self.now


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def engine(db: Database, tmp_path: Path) -> DatasetVersioningEngine:
    """A data versioning engine on the parametrized database (SQLite and PostgreSQL)."""
    return DatasetVersioningEngine(db, LocalObjectStore(tmp_path / "objects"))


@pytest.fixture
def lineage(db: Database) -> LineageGraph:
    return LineageGraph(db)


@pytest.fixture
def tracker(
    db: Database, engine: DatasetVersioningEngine, lineage: LineageGraph, clock: TickingClock
) -> RunTracker:
    """A tracker that resolves references with the engine and links runs in the lineage."""
    return RunTracker(db, lineage=lineage, datasets=EngineDatasetResolver(engine), clock=clock)
