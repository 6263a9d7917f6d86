"""Commits of CSV files: statistics from per-chunk statistics, equal to a full pass.

Each commit's statistics are checked against one streaming pass over the committed file;
the parsing is counted to show that a commit parses only the chunks its parent lacked.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore, ObjectStore
from synapsenet.errors import ConflictError, InvalidError
from synapsenet.services.dataversion.chunk_stats import (
    STATS_PREFIX,
    CsvChunkStats,
    _Batch,
    stats_file_hash,
)
from synapsenet.services.dataversion.chunking import ChunkingParams, KiB, MiB
from synapsenet.services.dataversion.commit_description import CommitDescription
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.models import Dataset
from synapsenet.services.dataversion.schema import CompatibilityMode
from synapsenet.services.dataversion.sources import SourceFile
from synapsenet.services.dataversion.tabular import (
    DatasetFormat,
    DatasetStats,
    _csv_conversion,
    open_batches,
    table_stats,
)
from tests.services.dataversion.csv_samples import CsvRows, CsvSample, grown, true_row_ends

PARAMS = ChunkingParams(min_size=2 * KiB, avg_size=8 * KiB, max_size=32 * KiB)


@pytest.fixture
def engine(db: Database, objects: LocalObjectStore) -> DatasetVersioningEngine:
    """An engine cutting small chunks, on the parametrized database."""
    return DatasetVersioningEngine(db, objects, chunking=PARAMS)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes of chunks parsed for per-chunk statistics, one entry per chunk."""
    sizes: list[int] = []
    parse = CsvChunkStats._parse

    def counting(self: CsvChunkStats, batch: _Batch) -> pa.Table:
        sizes.extend(end - start for start, end in itertools.pairwise([0, *batch.ends]))
        return parse(self, batch)

    monkeypatch.setattr(CsvChunkStats, "_parse", counting)
    return sizes


def full_pass(path: Path) -> DatasetStats:
    """One streaming pass over the whole file."""
    return table_stats(open_batches(path, DatasetFormat.CSV))


def full_pass_with_quoted_line_ends(path: Path) -> DatasetStats:
    """One pass that allows line ends in quoted values across its 1 MiB blocks."""
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=MiB),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=_csv_conversion(),
    )
    return table_stats(reader)


def stats_keys(store: ObjectStore, file_hash: str) -> list[str]:
    return list(store.list(f"{STATS_PREFIX}{file_hash}/"))


def published(store: ObjectStore) -> set[str]:
    """Every object a reader or a later commit would see: all but packs without an index."""
    keys = set(store.list())
    indexed = {key.removesuffix(".idx") for key in keys if key.endswith(".idx")}
    return {
        key
        for key in keys
        if not (key.startswith("packs/") and key.endswith(".pack"))
        or key.removesuffix(".pack") in indexed
    }


def test_ten_versions_have_the_statistics_of_a_full_pass(
    engine: DatasetVersioningEngine,
    objects: LocalObjectStore,
    tmp_path: Path,
    parsed: list[int],
) -> None:
    engine.create_dataset("orders", format="csv")
    generator = CsvRows(1, quoted_newlines=False, long_strings=0.005)
    sample: CsvSample = generator.sample(30_000)
    versions = []
    files = []
    for number in range(1, 11):
        if number > 1:
            sample = grown(generator, sample, appended=250, edited=25)
        path = tmp_path / f"orders-v{number}.csv"
        path.write_bytes(sample.data)
        parsed.clear()
        version = engine.commit("orders", path, name="orders.csv", message=f"v{number}")
        assert version.number == number
        expected = full_pass(path)
        assert engine.stats(version.ref) == expected
        assert version.rows == expected.rows
        (entry,) = engine.manifest(version.ref).files
        assert len(stats_keys(objects, entry.content_hash)) == 1
        size = path.stat().st_size
        if number == 1:
            assert sum(parsed) == size
        else:
            assert 0 < sum(parsed) < size / 4  # only the chunks v(n-1) lacked
        versions.append(version)
        files.append(path)
    assert files[0].stat().st_size > 2 * MiB
    for version, path in zip(versions, files, strict=True):
        out = tmp_path / "checkout" / str(version.number)
        engine.checkout(version.ref, out)
        assert (out / "orders.csv").read_bytes() == path.read_bytes()
        assert engine.content_root("orders", path, name="orders.csv") == version.root


def test_a_commit_with_a_malformed_row_after_the_first_block_stores_nothing(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    generator = CsvRows(2, quoted_newlines=False, long_strings=0.0)
    sample = generator.sample(16_000)
    good = tmp_path / "good.csv"
    good.write_bytes(sample.data)
    first = engine.commit("orders", good, name="orders.csv")
    lines = list(sample.lines)
    lines[15_000] = generator.row(15_000, count="7a")
    assert sum(len(line.text) for line in lines[:15_000]) > MiB
    bad = tmp_path / "bad.csv"
    bad.write_bytes(CsvSample(tuple(lines)).data)
    before = published(objects)
    with pytest.raises(InvalidError, match=r"Cannot read 'orders\.csv' as CSV.*7a"):
        engine.commit("orders", bad, name="orders.csv")
    assert published(objects) == before
    assert engine.get_dataset("orders").head == first.number
    assert [v.number for v in engine.log("orders")] == [first.number]
    with pytest.raises(InvalidError, match="7a"):
        full_pass(bad)


def test_quoted_values_over_several_lines_get_the_statistics_of_a_full_pass(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path, parsed: list[int]
) -> None:
    # Chunks are parsed on their own only without line ends in quoted values; a small file
    # with some is read whole instead, as the readers load it, and nothing is kept for reuse.
    engine.create_dataset("notes", format="csv")
    generator = CsvRows(3, crlf=0.3)
    sample = generator.sample(2_000)
    assert any("\n" in value for record in sample.records for value in record)
    path = tmp_path / "notes.csv"
    path.write_bytes(sample.data)
    assert path.stat().st_size < MiB
    version = engine.commit("notes", path)
    expected = full_pass(path)
    assert engine.stats(version.ref) == expected == full_pass_with_quoted_line_ends(path)
    assert expected.rows == len(sample.records) - 1 == 2_000
    assert sum(parsed) > 0  # tried, then found out
    (entry,) = engine.manifest(version.ref).files
    assert stats_keys(objects, entry.content_hash) == []
    assert engine.load_table(version.ref).num_rows == 2_000


def _multi_line_rows(count: int) -> bytes:
    """A CSV of ``count`` rows whose text values span four lines each."""
    rows = b"".join(b'%d,"line 1\nline 2\nline 3\nline 4",%d\n' % (i, i % 7) for i in range(count))
    return b"id,text,n\n" + rows


def test_a_committed_csv_with_quoted_line_ends_loads_as_a_table(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("notes", format="csv")
    # Most line ends are inside quotes, and many cuts fall inside values: the full pass
    # gives the statistics, and the version loads as the table it describes.
    path = tmp_path / "notes.csv"
    path.write_bytes(_multi_line_rows(20_000))
    assert path.stat().st_size < MiB
    version = engine.commit("notes", path)
    (entry,) = engine.manifest(version.ref).files
    ends = set(itertools.accumulate(ref.size for ref in entry.chunks))
    assert not ends <= true_row_ends(path.read_bytes())  # some cut inside a value
    assert engine.stats(version.ref) == full_pass(path) == full_pass_with_quoted_line_ends(path)
    assert version.rows == 20_000
    assert stats_keys(objects, entry.content_hash) == []
    table = engine.load_table(version.ref)
    assert table.num_rows == 20_000
    assert table["text"][12_345].as_py() == "line 1\nline 2\nline 3\nline 4"
    # Past the first 1 MiB block the readers split such a file inside its values: the
    # commit is refused, naming the file, as the full pass fails, and nothing is stored.
    large = tmp_path / "large" / "notes.csv"
    large.parent.mkdir()
    large.write_bytes(_multi_line_rows(80_000))
    assert large.stat().st_size > 2 * MiB
    before = published(objects)
    with pytest.raises(InvalidError, match=r"Cannot read '[^']*notes\.csv' as CSV") as caught:
        engine.commit("notes", large)
    assert caught.value.field == "file"
    assert published(objects) == before
    assert [v.number for v in engine.log("notes")] == [version.number]
    assert engine.get_dataset("notes").head == version.number
    with pytest.raises(InvalidError):
        full_pass(large)


def test_files_of_one_commit_pool_their_statistics(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path, parsed: list[int]
) -> None:
    engine.create_dataset("parts", format="csv")
    generator = CsvRows(4, quoted_newlines=False)
    samples = [generator.sample(3_000), generator.sample(2_000)]
    folder = tmp_path / "parts"
    folder.mkdir()
    paths = [folder / "a.csv", folder / "b.csv"]
    for path, sample in zip(paths, samples, strict=True):
        path.write_bytes(sample.data)
    version = engine.commit("parts", folder)
    assert engine.stats(version.ref) == full_pass(paths[0]) + full_pass(paths[1])
    for entry in engine.manifest(version.ref).files:
        assert len(stats_keys(objects, entry.content_hash)) == 1
    # Both files grow; each reuses the chunks of its parent.
    for path, sample in zip(paths, samples, strict=True):
        path.write_bytes(grown(generator, sample, appended=30, edited=3).data)
    parsed.clear()
    version = engine.commit("parts", folder)
    assert engine.stats(version.ref) == full_pass(paths[0]) + full_pass(paths[1])
    assert 0 < sum(parsed) < sum(path.stat().st_size for path in paths) / 3


def test_a_file_not_cut_at_rows_gets_its_statistics_from_a_full_pass(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("wide", format="csv")
    generator = CsvRows(5, quoted_newlines=False)
    sample = generator.sample(1_000)
    lines = list(sample.lines)
    long = "y" * (3 * PARAMS.max_size)
    lines[500] = generator.line(
        ["1", "2.5", "3", long, "false", "2021-02-03", "2021-02-03 04:05:06"]
    )
    path = tmp_path / "wide.csv"
    path.write_bytes(CsvSample(tuple(lines)).data)
    version = engine.commit("wide", path)
    assert engine.stats(version.ref) == full_pass(path)
    (entry,) = engine.manifest(version.ref).files
    assert stats_keys(objects, entry.content_hash) == []
    out = tmp_path / "out"
    engine.checkout(version.ref, out)
    assert (out / "wide.csv").read_bytes() == path.read_bytes()


def test_tables_committed_as_csv_get_their_statistics(
    engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    engine.create_dataset("frame", format="csv")
    table = pa.table({"n": list(range(5000)), "s": [f"v{i % 13}" for i in range(5000)]})
    version = engine.commit("frame", table)
    out = tmp_path / "out"
    engine.checkout(version.ref, out)
    assert engine.stats(version.ref) == full_pass(out / "data.csv")
    assert version.rows == 5000


def test_commits_on_an_explicit_parent_reuse_its_statistics(
    engine: DatasetVersioningEngine, tmp_path: Path, parsed: list[int]
) -> None:
    engine.create_dataset("orders", format="csv")
    generator = CsvRows(6, quoted_newlines=False)
    sample = generator.sample(5_000)
    path = tmp_path / "orders.csv"
    path.write_bytes(sample.data)
    first = engine.commit("orders", path, parent=None)
    assert sum(parsed) == path.stat().st_size
    path.write_bytes(grown(generator, sample, appended=50, edited=5).data)
    parsed.clear()
    second = engine.commit("orders", path, parent=first.number)
    assert engine.stats(second.ref) == full_pass(path)
    assert 0 < sum(parsed) < path.stat().st_size / 4


# --- what a commit description checks besides CSV statistics ---------------------------------


def test_a_commit_of_files_with_other_columns_is_refused(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("parts", format="csv")
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"id,name\n1,x\n")
    (folder / "b.csv").write_bytes(b"id,label\n2,y\n")
    with pytest.raises(InvalidError, match=r"b\.csv has columns \['id', 'label'\], unlike"):
        engine.commit("parts", folder)
    assert published(objects) == set()


def test_a_numpy_dataset_refuses_other_files(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("arrays", format="numpy")
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a\n1\n")
    with pytest.raises(InvalidError, match=r"rows\.csv is not a \.npy file"):
        engine.commit("arrays", path)
    assert published(objects) == set()


def test_a_description_of_other_formats_ignores_chunks(
    objects: LocalObjectStore, tmp_path: Path
) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table({"n": [3, 1, 2]})
    pq.write_table(table, path)
    dataset = Dataset(
        id="d1",
        name="t",
        format=DatasetFormat.PARQUET,
        compatibility=CompatibilityMode.BACKWARD,
        description="",
        created_at=datetime.now(UTC),
        head=0,
    )
    with ThreadPoolExecutor(1) as executor:
        description = CommitDescription(objects, dataset, [SourceFile("t.parquet", path)], executor)
        assert not description.rows
        description.observe("t.parquet", 0, "0" * 64, b"ignored")
        assert description.result() is not None
        description.finish([])
    assert description.stats == table_stats(table)
    assert list(objects.list()) == []


def test_gc_deletes_the_statistics_of_files_no_version_holds(
    engine: DatasetVersioningEngine, objects: LocalObjectStore, tmp_path: Path
) -> None:
    engine.create_dataset("orders", format="csv")
    generator = CsvRows(7, quoted_newlines=False)
    sample = generator.sample(2_000)
    path = tmp_path / "orders.csv"
    for _ in range(2):
        path.write_bytes(sample.data)
        engine.commit("orders", path)
        sample = grown(generator, sample, appended=10, edited=1)
    path.write_bytes(sample.data)
    with pytest.raises(ConflictError):
        engine.commit("orders", path, parent=1)  # the dataset moved on to v2 meanwhile
    held = {
        entry.content_hash for v in engine.log("orders") for entry in engine.manifest(v.ref).files
    }
    stale = set(objects.list(STATS_PREFIX))
    assert {stats_file_hash(key) for key in stale} > held  # the refused commit's too
    stale = {key for key in stale if stats_file_hash(key) not in held}
    dry = engine.gc(grace=timedelta(0), dry_run=True)
    assert dry.stats_deleted == len(stale)
    assert stale <= set(objects.list(STATS_PREFIX))
    assert engine.gc().stats_deleted == 0  # written within the engine's grace: kept
    report = engine.gc(grace=timedelta(0), force=True)
    assert report.stats_deleted == len(stale) == 1
    left = {stats_file_hash(key) for key in objects.list(STATS_PREFIX)}
    assert left == held


_NO_PANDAS_COMMITS = """
import sys
from pathlib import Path
from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.engine import DatasetVersioningEngine

database, objects, first, second = sys.argv[1:]
engine = DatasetVersioningEngine(Database(database), LocalObjectStore(Path(objects)))
for path in (first, second):
    version = engine.commit("typed", path, name="t.csv")
    stats = engine.stats(f"typed@v{version.number}")
    assert stats is not None and stats.rows == 60_000 + (version.number - 1) * 500, stats
assert "pandas" not in sys.modules, "a CSV commit imported pandas"
# Settings are read by the CLI and the service, not by an engine opened directly.
assert "pydantic_settings" not in sys.modules, "a CSV commit imported pydantic-settings"
"""


def test_csv_commits_do_not_import_pandas(tmp_path: Path) -> None:
    # pyarrow's numpy conversions import pandas on first use: ~40 MB resident in a commit;
    # pydantic-settings, ~10 MB more.
    rows = [
        f"{i},{i * 0.5 if i % 7 else ''},s{i % 97},{'true' if i % 3 else 'false'},"
        f"2024-01-{i % 28 + 1:02d},2024-01-01T00:00:{i % 60:02d}Z,,{i % 5 or ''}\n"
        for i in range(60_000)
    ]
    header = "n,x,s,flag,day,at,empty,small\n"
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_text(header + "".join(rows))
    edited = [*rows[:30_000], "7,,edited,true,2024-02-01,,,\n", *rows[30_001:], *rows[:500]]
    second.write_text(header + "".join(edited))
    database = f"sqlite:///{tmp_path / 'meta.sqlite'}"
    db = Database(database)
    db.upgrade()
    DatasetVersioningEngine(db, LocalObjectStore(tmp_path / "objects")).create_dataset(
        "typed", format="csv"
    )
    code = [sys.executable, "-c", _NO_PANDAS_COMMITS, database, str(tmp_path / "objects")]
    subprocess.run([*code, str(first), str(second)], check=True)
