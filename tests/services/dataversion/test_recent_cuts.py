"""Guides for the next commit's cutting, from the cuts of the last ones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.chunking import ChunkingParams, KiB, chunk_address
from synapsenet.services.dataversion.chunks import ChunkStore, WrittenFile
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.recent_cuts import RecentCuts
from synapsenet.services.dataversion.stored_cuts import cuts_key
from synapsenet.services.dataversion.stream_cutter import CutGuide, StreamCutter
from tests.services.dataversion.csv_samples import id_value_csv

PARAMS = ChunkingParams(min_size=256, avg_size=KiB, max_size=4 * KiB)


def written(local_store: LocalObjectStore, data: bytes, path: str = "t.csv") -> WrittenFile:
    files: list[WrittenFile] = []
    ChunkStore(local_store).write_files(
        [(path, lambda: io.BytesIO(data))],
        params=PARAMS,
        rows=True,
        accept=files.extend,
    )
    return files[0]


def test_a_written_file_is_its_own_guide(local_store: LocalObjectStore) -> None:
    data = id_value_csv(3000, 1)
    file = written(local_store, data)
    with io.BytesIO(data) as stream:
        chunks = [bytes(c) for c in StreamCutter(PARAMS, rows=True).cut(stream)]
    assert file.guide() == CutGuide(
        [chunk_address(c) for c in chunks], [len(c) for c in chunks], bytes(c[0] for c in chunks)
    )


def test_guides_are_kept_for_the_last_versions_and_the_same_cutting_only(
    local_store: LocalObjectStore,
) -> None:
    cuts = RecentCuts(keep=2)
    files = {
        root: written(local_store, id_value_csv(500, n), f"f{n}.csv")
        for n, root in enumerate("abc")
    }
    for root, file in files.items():
        cuts.remember(root, PARAMS, True, [file])
    assert cuts.guides("a", PARAMS, True) == {}  # forgotten: two are kept
    assert cuts.guides("c", PARAMS, True) == {"f2.csv": files["c"].guide()}
    assert cuts.guides("b", PARAMS, True) == {"f1.csv": files["b"].guide()}
    assert cuts.guides("b", PARAMS, False) == {}
    assert cuts.guides("b", ChunkingParams(), True) == {}
    assert cuts.guides(None, PARAMS, True) == {}


@pytest.mark.parametrize("remembered", [True, False])
def test_a_commit_guided_by_its_parent_stores_what_an_unguided_one_does(
    db: Database, tmp_path: Path, remembered: bool
) -> None:
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_bytes(id_value_csv(20_000, 3))
    lines = first.read_bytes().splitlines(keepends=True)
    lines[5000:5001] = [b"5000,edited\n"]
    second.write_bytes(b"".join(lines) + b"20000,appended\n")
    guided = DatasetVersioningEngine(db, LocalObjectStore(tmp_path / "guided"), chunking=PARAMS)
    guided.create_dataset("events", format="csv")
    v1 = guided.commit("events", first, name="events.csv")
    assert set(guided._cuts.guides(v1.root, PARAMS, True)) == {"events.csv"}
    if not remembered:
        guided = DatasetVersioningEngine(db, LocalObjectStore(tmp_path / "guided"), chunking=PARAMS)
    v2 = guided.commit("events", second, name="events.csv")
    fresh_objects = LocalObjectStore(tmp_path / "fresh")
    fresh = DatasetVersioningEngine(db, fresh_objects, chunking=PARAMS)
    fresh.create_dataset("events-fresh", format="csv")
    fresh_v1 = fresh.commit("events-fresh", first, name="events.csv")
    fresh._cuts = RecentCuts(keep=0)  # no guides at all: none remembered, none stored
    assert fresh_objects.delete(cuts_key(fresh_v1.root))
    fresh.commit("events-fresh", second, name="events.csv")
    assert guided.manifest(v2.ref).files == fresh.manifest("events-fresh@v2").files
    assert guided.stats("events@v2") == fresh.stats("events-fresh@v2")
