from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.core.storage import LocalObjectStore, ObjectStore
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.chunks import CorruptDataError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine, csv_threads
from synapsenet.services.dataversion.models import DatasetVersion
from synapsenet.services.dataversion.schema import SchemaIncompatibleError
from tests.services.dataversion.conftest import frame


def chunk_keys(store: ObjectStore) -> list[str]:
    """Every object holding chunks: packs, their indexes, and any loose chunks."""
    return [*store.list("chunks/"), *store.list("packs/")]


def test_create_dataset_validates_and_refuses_duplicates(engine: DatasetVersioningEngine) -> None:
    created = engine.create_dataset("orders", format="csv", description="raw orders")
    assert (created.name, created.head, created.format.value) == ("orders", 0, "csv")
    assert engine.list_datasets() == [created]
    with pytest.raises(ConflictError, match="exists already"):
        engine.create_dataset("orders", format="csv")
    with pytest.raises(InvalidError, match="must start with a letter or digit"):
        engine.create_dataset("../evil", format="csv")
    with pytest.raises(InvalidError, match="unknown format 'xlsx'"):
        engine.create_dataset("sheets", format="xlsx")
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        engine.get_dataset("nope")


def test_versions_are_numbered_and_resolvable_every_way(
    engine: DatasetVersioningEngine, db: Database
) -> None:
    engine.create_dataset("orders", format="parquet")
    v1 = engine.commit("orders", frame(500), message="first", author="ana", tags=["golden"])
    v2 = engine.commit("orders", frame(600), message="more rows", author="ben")
    assert (v1.number, v2.number, v2.parent) == (1, 2, 1)
    assert v1.ref == "orders@v1"
    assert v1.rows == 500
    assert v2.committed_at.tzinfo is not None
    for ref in ("orders@v1", "orders@1", "orders@golden", f"orders@{v1.root}"):
        assert engine.resolve(ref).number == 1
    assert engine.resolve("orders").number == 2
    assert [v.number for v in engine.log("orders")] == [2, 1]
    assert engine.log("orders")[1].tags == ("golden",)
    with pytest.raises(NotFoundError, match="no version v9"):
        engine.resolve("orders@v9")
    with db.transaction() as session:
        types = list(session.scalars(select(OutboxRecord.type).order_by(OutboxRecord.id)))
    assert types == [
        "dataversion.dataset.created",
        "dataversion.version.committed",
        "dataversion.version.committed",
    ]


def test_identical_content_is_a_no_op(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    first = engine.commit("orders", frame(100))
    again = engine.commit("orders", frame(100), message="same again")
    assert again == first
    assert engine.get_dataset("orders").head == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda df: df,
        lambda df: pa.Table.from_pandas(df, preserve_index=False),
        lambda df: pl.from_pandas(df),
    ],
    ids=["pandas", "pyarrow", "polars"],
)
def test_commit_from_in_memory_tables(engine: DatasetVersioningEngine, make: object) -> None:
    engine.create_dataset("t", format="parquet")
    df = frame(50)
    version = engine.commit("t", make(df))  # type: ignore[operator]
    loaded = engine.load_dataframe(version.ref)
    assert loaded["id"].tolist() == df["id"].tolist()
    assert version.schema is not None
    assert version.schema.names == ("id", "amount", "country", "score")


def test_commit_a_numpy_array(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("embeddings", format="numpy")
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    version = engine.commit("embeddings", array)
    assert engine.manifest(version.ref).files[0].path == "data.npy"
    blob = b"".join(engine.read_file(version.ref, "data.npy"))
    assert blob.startswith(b"\x93NUMPY")


def test_commit_a_directory_keeps_its_tree(engine: DatasetVersioningEngine, tmp_path: Path) -> None:
    source = tmp_path / "images"
    (source / "cats").mkdir(parents=True)
    (source / "cats" / "1.png").write_bytes(b"\x89PNG cat")
    (source / "dog.png").write_bytes(b"\x89PNG dog")
    engine.create_dataset("pets", format="image_directory")
    version = engine.commit("pets", source)
    assert [f.path for f in engine.manifest(version.ref).files] == ["cats/1.png", "dog.png"]
    out = tmp_path / "out"
    engine.checkout(version.ref, out)
    assert (out / "cats" / "1.png").read_bytes() == b"\x89PNG cat"


def test_files_must_match_the_dataset_format(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    other = tmp_path / "orders.parquet"
    frame(10).to_parquet(other)
    with pytest.raises(InvalidError, match="is parquet, but dataset 'orders' holds csv"):
        engine.commit("orders", other)
    with pytest.raises(InvalidError, match="no file or directory"):
        engine.commit("orders", tmp_path / "missing.csv")


def test_malformed_csv_is_refused_with_the_file_named(
    engine: DatasetVersioningEngine, tmp_path: Path, objects: LocalObjectStore
) -> None:
    engine.create_dataset("orders", format="csv")
    bad = tmp_path / "orders.csv"
    bad.write_text("id,amount\n1,2\n3,4,5\n")
    with pytest.raises(InvalidError, match=r"orders\.csv"):
        engine.commit("orders", bad)
    assert engine.get_dataset("orders").head == 0
    assert chunk_keys(objects) == []


def test_incompatible_schema_lists_every_change_and_stores_nothing(
    engine: DatasetVersioningEngine, objects: LocalObjectStore
) -> None:
    engine.create_dataset("orders", format="parquet", compatibility="full")
    fields: list[pa.Field[pa.DataType]] = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.float64()),
    ]
    schema = pa.schema(fields)
    engine.commit("orders", pa.table({"id": [1, 2], "amount": [1.0, 2.0]}, schema=schema))
    chunks_before = chunk_keys(objects)
    with pytest.raises(SchemaIncompatibleError) as info:
        engine.commit("orders", pa.table({"amount": ["one", "two"]}))
    message = str(info.value)
    assert "'id'" in message
    assert "'amount'" in message
    assert len(info.value.extra["changes"]) == 2
    assert engine.get_dataset("orders").head == 1
    assert chunk_keys(objects) == chunks_before


def test_safe_widening_is_accepted(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("m", format="parquet")
    engine.commit("m", pa.table({"x": pa.array([1, 2], pa.int32())}))
    widened = engine.commit("m", pa.table({"x": pa.array([1, 2, 3], pa.int64())}))
    assert widened.number == 2


def test_a_stale_parent_is_a_conflict(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    engine.commit("orders", frame(10))
    engine.commit("orders", frame(20), parent=1)
    with pytest.raises(ConflictError, match="moved on to v2"):
        engine.commit("orders", frame(30), parent=1)
    assert engine.get_dataset("orders").head == 2


def test_concurrent_commits_on_one_parent_let_one_win(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    engine.commit("orders", frame(10))
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def commit(seed: int) -> None:
        barrier.wait()
        try:
            engine.commit("orders", frame(200, seed=seed), parent=1)
        except ConflictError:
            result = "conflict"
        else:
            result = "committed"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=commit, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["committed"] + ["conflict"] * 3
    assert engine.get_dataset("orders").head == 2


def test_checkout_restores_exact_bytes_and_partial_paths(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    payload = os.urandom(3_000_000)
    (source / "big.bin").write_bytes(payload)
    (source / "small.txt").write_text("hello")
    engine.create_dataset("blobs", format="binary")
    version = engine.commit("blobs", source)
    out = tmp_path / "out"
    written = engine.checkout(version.ref, out)
    assert sorted(p.name for p in written) == ["big.bin", "small.txt"]
    assert (out / "big.bin").read_bytes() == payload
    partial = tmp_path / "partial"
    assert engine.checkout(version.ref, partial, paths=["small.txt"]) == [partial / "small.txt"]
    assert not (partial / "big.bin").exists()
    with pytest.raises(ConflictError, match="exist already"):
        engine.checkout(version.ref, out)
    engine.checkout(version.ref, out, overwrite=True, rehash=True)
    assert (out / "big.bin").read_bytes() == payload
    with pytest.raises(NotFoundError, match=r"nope\.txt"):
        engine.checkout(version.ref, tmp_path / "x", paths=["nope.txt"])


def commit_random_blob(
    engine: DatasetVersioningEngine, tmp_path: Path, size: int
) -> tuple[DatasetVersion, Path]:
    """``size`` random bytes committed to a new binary dataset ``blobs``; version and file."""
    engine.create_dataset("blobs", format="binary")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(size))
    return engine.commit("blobs", data), data


def test_corruption_is_detected_by_verify_and_checkout(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    version, _ = commit_random_blob(engine, tmp_path, 500_000)
    assert engine.verify(version.ref).ok
    victim = objects.root / next(k for k in chunk_keys(objects) if k.endswith(".pack"))
    damaged = bytearray(victim.read_bytes())
    damaged[-1] ^= 0xFF
    victim.write_bytes(bytes(damaged))
    report = engine.verify(version.ref)
    assert not report.ok
    assert report.problems
    out = tmp_path / "out"
    for rehash in (False, True):
        with pytest.raises(CorruptDataError, match="is corrupt"):
            engine.checkout(version.ref, out, rehash=rehash)
        assert list(out.iterdir()) == []  # no partial file under its real name


def test_a_damaged_manifest_is_found_by_verify_while_reads_use_the_one_in_memory(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    version, data = commit_random_blob(engine, tmp_path, 100_000)
    (key,) = objects.list("manifests/")
    objects.put(key, b"{}")
    # The manifest this engine saved is its content, whatever the store holds now.
    assert engine.manifest(version.ref).merkle_root == version.root
    engine.checkout(version.ref, tmp_path / "out")
    assert (tmp_path / "out" / "data.bin").read_bytes() == data.read_bytes()
    report = engine.verify(version.ref)
    assert not report.ok
    assert "manifest" in report.problems[0]
    fresh = DatasetVersioningEngine(engine.db, objects)
    with pytest.raises(CorruptDataError):
        fresh.manifest(version.ref)


def test_statistics_of_a_tabular_version(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    df = frame(1000)
    version = engine.commit("orders", df)
    stats = engine.stats(version.ref)
    assert stats is not None
    assert stats.rows == 1000
    assert stats.columns["score"].null_count == int(df["score"].isna().sum())
    assert stats.columns["id"].min == 0
    assert stats.columns["id"].max == 999


@pytest.mark.parametrize("days_later", [0, 3])
def test_appending_rows_stores_only_new_chunks(
    engine: DatasetVersioningEngine,
    objects: LocalObjectStore,
    db: Database,
    tmp_path: Path,
    days_later: int,
) -> None:
    engine.create_dataset("events", format="csv")
    path = tmp_path / "events.csv"
    frame(100_000).to_csv(path, index=False)
    engine.commit("events", path)
    size_v1 = sum(objects.stat(k).size for k in chunk_keys(objects))
    if days_later:
        # A new process, days later: nothing in memory of the first commit, old packs.
        then = (datetime.now(UTC) - timedelta(days=days_later)).timestamp()
        for key in objects.list("packs/"):
            os.utime(objects.root / key, (then, then))
        engine = DatasetVersioningEngine(db, objects)
    with open(path, "a") as handle:
        frame(1000, seed=5, start=100_000).to_csv(handle, index=False, header=False)
    v2 = engine.commit("events", path)
    size_v2 = sum(objects.stat(k).size for k in chunk_keys(objects))
    assert v2.rows == 101_000
    assert size_v2 - size_v1 < 0.1 * size_v1


def test_gc_deletes_an_unreferenced_chunk_one_grace_period_after_condemning_it(
    db: Database, objects: LocalObjectStore, tmp_path: Path
) -> None:
    now = [datetime.now(UTC)]
    engine = DatasetVersioningEngine(db, objects, clock=lambda: now[0])
    engine.create_dataset("blobs", format="binary")
    kept = tmp_path / "kept.bin"
    kept.write_bytes(os.urandom(200_000))
    version = engine.commit("blobs", kept)
    orphan = engine.chunks.put(os.urandom(1000))
    first = engine.gc()
    assert (first.deleted, first.kept_recent) == (0, 1)
    now[0] += engine.gc_grace / 2
    assert engine.gc().deleted == 0  # condemned less than a grace period ago
    now[0] += engine.gc_grace
    assert engine.gc().deleted == 1
    assert not engine.chunks.exists(orphan.address)
    assert engine.verify(version.ref).ok


def test_gc_removes_only_unreferenced_chunks(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("blobs", format="binary")
    kept = tmp_path / "kept.bin"
    kept.write_bytes(os.urandom(200_000))
    version = engine.commit("blobs", kept)
    orphan = engine.chunks.put(os.urandom(1000))
    report = engine.gc(grace=timedelta(0), dry_run=True, force=True)
    assert report.deleted == 1
    assert objects.exists(f"chunks/{orphan.address[:2]}/{orphan.address[2:]}")
    report = engine.gc(grace=timedelta(0), force=True)
    assert report.deleted == 1
    assert not engine.chunks.exists(orphan.address)
    assert engine.verify(version.ref).ok
    recent = engine.chunks.put(os.urandom(1000))
    assert engine.gc(grace=timedelta(hours=1)).kept_recent >= 1
    assert engine.chunks.exists(recent.address)


def test_gc_removes_the_statistics_of_files_no_version_holds(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("events", format="csv")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    frame(2_000).to_csv(first, index=False)
    frame(2_000, seed=1).to_csv(second, index=False)
    version = engine.commit("events", first)
    live = list(objects.list("chunk-stats/"))
    assert len(live) == 1
    # A commit that loses the race has stored its file's statistics before it failed.
    with pytest.raises(ConflictError):
        engine.commit("events", second, parent=None)
    orphans = sorted(set(objects.list("chunk-stats/")) - set(live))
    assert len(orphans) == 1
    assert engine.gc(grace=timedelta(hours=1)).stats_deleted == 0  # recent: kept
    assert engine.gc(grace=timedelta(0), force=True, dry_run=True).stats_deleted == 1
    assert objects.exists(orphans[0])
    assert engine.gc(grace=timedelta(0), force=True).stats_deleted == 1
    assert list(objects.list("chunk-stats/")) == live
    assert engine.stats(version.ref) is not None


def test_as_of_needs_an_aware_time(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    before = datetime.now(UTC) - timedelta(seconds=1)
    engine.commit("orders", frame(5))
    assert engine.versions_at("orders", before) is None
    assert engine.versions_at("orders", datetime.now(UTC)).number == 1  # type: ignore[union-attr]
    with pytest.raises(InvalidError, match="no time zone"):
        engine.versions_at("orders", datetime(2026, 1, 1))


def test_deprecation_is_recorded_and_announced(
    engine: DatasetVersioningEngine, db: Database
) -> None:
    engine.create_dataset("orders", format="parquet")
    version = engine.commit("orders", frame(5))
    deprecated = engine.deprecate(version.ref, reason="PII leak", impact={"runs": ["r1"]})
    assert deprecated.deprecation_reason == "PII leak"
    with pytest.raises(ConflictError, match="deprecated already"):
        engine.deprecate(version.ref, reason="again")
    with db.transaction() as session:
        record = session.scalars(
            select(OutboxRecord).where(OutboxRecord.type == "dataversion.version.deprecated")
        ).one()
    assert '"runs":["r1"]' in record.envelope


def test_tags_move_and_can_be_removed(engine: DatasetVersioningEngine) -> None:
    engine.create_dataset("orders", format="parquet")
    engine.commit("orders", frame(5), tags=["production"])
    engine.commit("orders", frame(6))
    assert engine.tag("orders@v2", "production").tags == ("production",)
    assert engine.resolve("orders@production").number == 2
    engine.untag("orders", "production")
    with pytest.raises(NotFoundError):
        engine.resolve("orders@production")
    with pytest.raises(NotFoundError, match="no tag"):
        engine.untag("orders", "production")
    with pytest.raises(InvalidError, match="not look like a version number"):
        engine.tag("orders@v1", "v7")


def test_s3_backend_round_trip(db: Database, s3_store: ObjectStore, tmp_path: Path) -> None:
    engine = DatasetVersioningEngine(db, s3_store)
    engine.create_dataset("blobs", format="binary")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(1_500_000))
    version = engine.commit("blobs", data)
    assert engine.verify(version.ref).ok
    engine.checkout(version.ref, tmp_path / "out")
    assert (tmp_path / "out" / "data.bin").read_bytes() == data.read_bytes()


CRASHING_COMMIT = """
import os, signal, sys
from pathlib import Path
from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.engine import DatasetVersioningEngine, csv_threads

db_url, objects, path = sys.argv[1:4]
engine = DatasetVersioningEngine(Database(db_url), LocalObjectStore(Path(objects)))
engine.chunks.pack_size = 1 << 20  # so that whole packs are stored before the kill
stored = 0

def die_midway(size: int) -> None:
    global stored
    stored += size
    if stored > 2_000_000:
        os.kill(os.getpid(), signal.SIGKILL)

engine.commit("blobs", path, progress=die_midway)
"""


def test_a_commit_killed_midway_leaves_no_version_and_gc_cleans_up(
    engine: DatasetVersioningEngine, db: Database, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("blobs", format="binary")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(6_000_000))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_COMMIT, db.url, str(objects.root), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert engine.get_dataset("blobs").head == 0
    # Whole packs made it before the kill, but no index: nothing can reference them.
    assert [k for k in chunk_keys(objects) if k.endswith(".pack")]
    assert [k for k in chunk_keys(objects) if not k.endswith(".pack")] == []
    assert list(objects.list("manifests/")) == []
    engine.gc(grace=timedelta(0), force=True)
    assert chunk_keys(objects) == []
    version = engine.commit("blobs", data)
    assert engine.verify(version.ref).ok


@pytest.mark.parametrize(("threads", "expected"), [(0, 0), (1, 1), (2, 1), (4, 3)])
def test_a_csv_commit_leaves_one_core_to_the_statistics(threads: int, expected: int) -> None:
    assert csv_threads(threads) == expected
