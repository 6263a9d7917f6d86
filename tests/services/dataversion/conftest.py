"""Fixtures for data versioning: an engine on each database, over a local object store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph


@pytest.fixture
def objects(tmp_path: Path) -> LocalObjectStore:
    """The object store behind the engine (tests inspect and damage it)."""
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def engine(db: Database, objects: LocalObjectStore) -> DatasetVersioningEngine:
    """An engine on the parametrized database (SQLite and PostgreSQL)."""
    return DatasetVersioningEngine(db, objects)


@pytest.fixture
def lineage(db: Database) -> LineageGraph:
    """The lineage graph on the same database."""
    return LineageGraph(db)


def frame(rows: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """A reproducible table with int, float, string and nullable columns."""
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + rows)
    return pd.DataFrame(
        {
            "id": ids,
            "amount": rng.normal(100, 20, rows).round(2),
            "country": rng.choice(["FR", "DE", "US", "JP"], rows),
            "score": np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows)),
        }
    )
