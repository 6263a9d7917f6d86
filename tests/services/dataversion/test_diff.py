"""diff_versions: files from the manifests, schema changes, rows as multisets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion.diff import diff_versions, row_hashes
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.schema import ChangeKind
from tests.services.dataversion.api_fixtures import orders_csv
from tests.services.dataversion.conftest import frame


@pytest.fixture
def engine(sqlite_database: Database, objects: LocalObjectStore) -> DatasetVersioningEngine:
    """Diffs are pure over the engine: one database backend is enough."""
    return DatasetVersioningEngine(sqlite_database, objects)


def commit_csv(
    engine: DatasetVersioningEngine, tmp_path: Path, data: bytes, name: str = "orders.csv"
) -> str:
    local = tmp_path / "upload" / name
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(data)
    return engine.commit("orders", local).ref


def test_append_and_edit_count_as_added_and_removed_rows(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    old = commit_csv(engine, tmp_path, orders_csv(20_000))
    rng = np.random.default_rng(7)
    edited = rng.choice(20_000, size=20, replace=False)  # 0.1% of the rows
    new = commit_csv(engine, tmp_path, orders_csv(20_200, edited=edited.tolist()))  # +1%

    diff = diff_versions(engine, old, new)

    assert (diff.old, diff.new) == ("orders@v1", "orders@v2")
    assert diff.changed == ("orders.csv",)
    assert (diff.added, diff.removed, diff.unchanged) == ((), (), 0)
    assert diff.schema_changes == ()
    assert diff.rows_added == 200 + 20
    assert diff.rows_removed == 20
    backwards = diff_versions(engine, new, old)
    assert (backwards.rows_added, backwards.rows_removed) == (20, 220)


def test_identical_versions_differ_in_nothing(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    ref = commit_csv(engine, tmp_path, orders_csv(50))
    diff = diff_versions(engine, ref, "orders@head")
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == ((), (), (), 1)
    assert (diff.rows_added, diff.rows_removed) == (0, 0)


def test_files_added_removed_and_changed_without_rows_for_binary_data(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("blobs", format="binary")
    first, second = tmp_path / "v1", tmp_path / "v2"
    for directory, files in (
        (first, {"keep.bin": b"same", "edit.bin": b"before", "gone.bin": b"x"}),
        (second, {"keep.bin": b"same", "edit.bin": b"after", "sub/new.bin": b"y"}),
    ):
        for name, data in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)
    engine.commit("blobs", first)
    engine.commit("blobs", second)

    diff = diff_versions(engine, "blobs@v1", "blobs@v2")

    assert diff.added == ("sub/new.bin",)
    assert diff.removed == ("gone.bin",)
    assert diff.changed == ("edit.bin",)
    assert diff.unchanged == 1
    assert diff.rows_added is None
    assert diff.rows_removed is None


def test_only_differing_files_are_read_and_rows_of_moved_files_cancel(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    (first / "a.csv").write_bytes(orders_csv(100))
    (first / "b.csv").write_bytes(orders_csv(100, start=100))
    (second / "a.csv").write_bytes(orders_csv(100))
    # b.csv's rows moved to c.csv, plus 5 new ones.
    (second / "c.csv").write_bytes(orders_csv(105, start=100))
    engine.commit("orders", first)
    engine.commit("orders", second)

    diff = diff_versions(engine, "orders@v1", "orders@v2")

    assert (diff.added, diff.removed, diff.unchanged) == (("c.csv",), ("b.csv",), 1)
    assert (diff.rows_added, diff.rows_removed) == (5, 0)


def test_an_added_column_is_a_schema_change_not_a_changed_row(
    engine: DatasetVersioningEngine,
) -> None:
    engine.create_dataset("features", format="parquet")
    base = frame(300)
    engine.commit("features", base)
    engine.commit("features", base.assign(extra=np.arange(300) % 7))

    diff = diff_versions(engine, "features@v1", "features@v2")

    assert [(c.column, c.kind) for c in diff.schema_changes] == [("extra", ChangeKind.ADDED)]
    assert (diff.rows_added, diff.rows_removed) == (0, 0)


def test_widened_columns_compare_by_value(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("counts", format="parquet")
    values = np.arange(1_000)
    engine.commit("counts", pa.table({"n": pa.array(values, pa.int32())}))
    engine.commit("counts", pa.table({"n": pa.array(np.append(values, 5_000), pa.int64())}))

    diff = diff_versions(engine, "counts@v1", "counts@v2")

    assert [c.kind for c in diff.schema_changes] == [ChangeKind.TYPE_CHANGED]
    assert (diff.rows_added, diff.rows_removed) == (1, 0)


def test_duplicate_rows_count_as_a_multiset(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("events", format="parquet")
    engine.commit("events", pd.DataFrame({"k": ["a", "a", "b"], "v": [1, 1, 2]}))
    engine.commit("events", pd.DataFrame({"k": ["a", "b", "b"], "v": [1, 2, 2]}))

    diff = diff_versions(engine, "events@v1", "events@v2")

    assert (diff.rows_added, diff.rows_removed) == (1, 1)


def test_unknown_versions_are_not_found(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="csv")
    with pytest.raises(NotFoundError):
        diff_versions(engine, "orders@v1", "orders@v2")


def test_row_hashes_depend_on_values_not_storage() -> None:
    dense = pa.table({"n": pa.array([1, 2, 3]), "s": pa.array(["x", "y", "z"])})
    sparse = pa.table({"n": pa.array([1, None, 3]), "s": pa.array(["x", None, "z"])})
    large = pa.table({"n": pa.array([1, 2, 3], pa.int16()), "s": pa.array(["x", "y", "z"])})
    swapped = pa.table({"s": pa.array(["x", "y", "z"]), "n": pa.array([1, 2, 3])})

    assert row_hashes(dense)[[0, 2]].tolist() == row_hashes(sparse)[[0, 2]].tolist()
    assert row_hashes(dense)[1] != row_hashes(sparse)[1]
    assert row_hashes(dense).tolist() == row_hashes(large).tolist()
    assert row_hashes(dense).tolist() != row_hashes(swapped).tolist()
    assert row_hashes(None).size == 0
    nested = pa.table({"tags": pa.array([["a"], ["b"], ["a"]])})
    hashes = row_hashes(nested)
    assert hashes[0] == hashes[2] != hashes[1]
