"""Stored cuts: a version's chunk first bytes, guiding commits of another engine."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.chunking import ChunkingParams, KiB, chunk_address
from synapsenet.services.dataversion.chunks import WrittenFile
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.entries import ChunkRef, FileEntry
from synapsenet.services.dataversion.models import DatasetVersion
from synapsenet.services.dataversion.stored_cuts import (
    CUTS_PREFIX,
    cuts_key,
    load_guides,
    save_cuts,
    sweep_cuts,
)
from synapsenet.services.dataversion.stream_cutter import CutGuide, StreamCutter
from tests.services.dataversion.csv_samples import id_value_csv

PARAMS = ChunkingParams(min_size=256, avg_size=KiB, max_size=4 * KiB)


def new_engine(db: Database, objects: LocalObjectStore) -> DatasetVersioningEngine:
    return DatasetVersioningEngine(db, objects, chunking=PARAMS)


@pytest.fixture
def guided_calls(monkeypatch: pytest.MonkeyPatch) -> list[CutGuide]:
    """The guides every StreamCutter.cut_guided call of the test was given."""
    calls: list[CutGuide] = []
    original = StreamCutter.cut_guided

    def recording(
        self: StreamCutter, stream: object, guide: CutGuide, **kwargs: object
    ) -> Iterator[object]:
        calls.append(guide)
        return original(self, stream, guide, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(StreamCutter, "cut_guided", recording)
    return calls


def committed_twice(
    db: Database, objects: LocalObjectStore, tmp_path: Path
) -> tuple[DatasetVersion, DatasetVersion, Path]:
    """v1 and v2 (one row edited, one appended) of a CSV, committed by one engine."""
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_bytes(id_value_csv(20_000, 3))
    lines = first.read_bytes().splitlines(keepends=True)
    lines[5000:5001] = [b"5000,edited\n"]
    second.write_bytes(b"".join(lines) + b"20000,appended\n")
    engine = new_engine(db, objects)
    engine.create_dataset("events", format="csv")
    v1 = engine.commit("events", first, name="events.csv")
    v2 = engine.commit("events", second, name="events.csv")
    third = tmp_path / "v3.csv"
    third.write_bytes(second.read_bytes() + b"20001,appended again\n")
    return v1, v2, third


def test_a_commit_stores_the_cuts_its_engine_remembers(
    db: Database, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine = new_engine(db, objects)
    engine.create_dataset("events", format="csv")
    source = tmp_path / "v1.csv"
    source.write_bytes(id_value_csv(5_000, 1))
    version = engine.commit("events", source, name="events.csv")
    files = engine.manifest(version.ref).files
    remembered = engine._cuts.guides(version.root, PARAMS, True)
    assert len(files[0].chunks) > 10
    assert load_guides(objects, version.root, files, PARAMS, True) == remembered
    assert list(objects.list(CUTS_PREFIX)) == [cuts_key(version.root)]


def test_another_engine_commits_guided_by_the_stored_cuts(
    db: Database, objects: LocalObjectStore, tmp_path: Path, guided_calls: list[CutGuide]
) -> None:
    _, v2, third = committed_twice(db, objects, tmp_path)
    assert len(guided_calls) == 1  # v2, by the engine that committed v1
    restarted = new_engine(db, objects)
    v3 = restarted.commit("events", third, name="events.csv")
    (guide,) = guided_calls[1:]
    (parent,) = restarted.manifest(v2.ref).files
    assert list(guide.addresses) == [ref.address for ref in parent.chunks]
    assert restarted.verify(v3.ref).ok
    # The chunks are those of an unguided commit of the same bytes.
    with third.open("rb") as stream:
        sizes = [len(chunk) for chunk in StreamCutter(PARAMS, rows=True).cut(stream)]
    assert [ref.size for ref in restarted.manifest(v3.ref).files[0].chunks] == sizes


def test_without_stored_cuts_a_new_engine_commits_unguided(
    db: Database, objects: LocalObjectStore, tmp_path: Path, guided_calls: list[CutGuide]
) -> None:
    _, v2, third = committed_twice(db, objects, tmp_path)
    assert objects.delete(cuts_key(v2.root))
    restarted = new_engine(db, objects)
    v3 = restarted.commit("events", third, name="events.csv")
    assert len(guided_calls) == 1  # only v2's
    assert restarted.verify(v3.ref).ok


def test_cuts_made_another_way_guide_nothing(
    db: Database, objects: LocalObjectStore, tmp_path: Path
) -> None:
    v1, _, _ = committed_twice(db, objects, tmp_path)
    files = new_engine(db, objects).manifest(v1.ref).files
    assert load_guides(objects, v1.root, files, PARAMS, True)
    assert load_guides(objects, v1.root, files, PARAMS, False) == {}
    assert load_guides(objects, v1.root, files, ChunkingParams(), True) == {}
    assert load_guides(objects, "0" * 64, files, PARAMS, True) == {}  # none stored


def test_damaged_or_mismatched_cuts_are_ignored_and_logged(
    db: Database,
    objects: LocalObjectStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    guided_calls: list[CutGuide],
) -> None:
    _, v2, third = committed_twice(db, objects, tmp_path)
    key = cuts_key(v2.root)
    files = new_engine(db, objects).manifest(v2.ref).files
    document = bytearray(objects.get(key))
    document[30] ^= 1
    objects.put(key, bytes(document))
    with caplog.at_level(logging.WARNING):
        assert load_guides(objects, v2.root, files, PARAMS, True) == {}
    assert "checksum" in caplog.text
    assert key in caplog.text
    # Sealed, but with one chunk fewer than the version's file.
    (entry,) = files
    save_cuts(
        objects, v2.root, PARAMS, True, [WrittenFile(entry, True, bytes(len(entry.chunks) - 1))]
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_guides(objects, v2.root, files, PARAMS, True) == {}
    count = len(entry.chunks)
    assert f"it holds {count - 1} chunks, the version's files {count}" in caplog.text
    # A commit on it cuts unguided, and stores the same chunks.
    restarted = new_engine(db, objects)
    v3 = restarted.commit("events", third, name="events.csv")
    assert len(guided_calls) == 1
    assert restarted.verify(v3.ref).ok


def test_the_files_of_a_directory_line_up_with_their_bytes(
    local_store: LocalObjectStore,
) -> None:
    written = []
    for path, seed in (("b/second.csv", 2), ("a/first.csv", 1), ("c.csv", 3)):
        with io.BytesIO(id_value_csv(400 * seed, seed)) as stream:
            chunks = [bytes(chunk) for chunk in StreamCutter(PARAMS, rows=True).cut(stream)]
        refs = tuple(ChunkRef(chunk_address(chunk), len(chunk)) for chunk in chunks)
        entry = FileEntry(path, sum(ref.size for ref in refs), "0" * 64, refs)
        written.append(WrittenFile(entry, True, bytes(chunk[0] for chunk in chunks)))
    save_cuts(local_store, "e" * 64, PARAMS, True, written)
    guides = load_guides(local_store, "e" * 64, [file.entry for file in written], PARAMS, True)
    assert guides == {file.entry.path: file.guide() for file in written}


def test_gc_deletes_the_cuts_of_versions_not_recorded_after_the_grace(
    db: Database, objects: LocalObjectStore, tmp_path: Path
) -> None:
    v1, v2, _ = committed_twice(db, objects, tmp_path)
    orphan = cuts_key("f" * 64)  # a commit that lost its race stored its cuts
    objects.put(orphan, objects.get(cuts_key(v1.root)))
    engine = new_engine(db, objects)
    assert engine.gc(grace=timedelta(hours=1)).cuts_deleted == 0  # recent: kept
    assert engine.gc(grace=timedelta(0), force=True, dry_run=True).cuts_deleted == 1
    assert objects.exists(orphan)
    assert engine.gc(grace=timedelta(0), force=True).cuts_deleted == 1
    assert sorted(objects.list(CUTS_PREFIX)) == sorted([cuts_key(v1.root), cuts_key(v2.root)])
    assert sweep_cuts(objects, set(), older_than=engine.clock() - timedelta(hours=1)) == 0
