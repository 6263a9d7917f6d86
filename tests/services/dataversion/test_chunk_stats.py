"""Tests of per-chunk CSV statistics: quoting checks, row counts, reuse across versions.

The oracle is the full streaming pass, :func:`table_stats` over :func:`open_batches`; files
are written by the real :class:`ChunkStore` on a local object store, cut at rows.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.core.storage import LocalObjectStore, ObjectStore
from synapsenet.errors import InvalidError
from synapsenet.services.dataversion import chunk_stats
from synapsenet.services.dataversion.chunk_stats import (
    _PARSE_BYTES,
    STATS_PREFIX,
    CsvChunkStats,
    _Batch,
    _RowScan,
    line_counts,
    rows_problem,
    stats_file_hash,
    sweep_stats,
)
from synapsenet.services.dataversion.chunking import (
    ChunkingParams,
    KiB,
    MiB,
    chunk_address,
)
from synapsenet.services.dataversion.chunks import ChunkStore, WrittenFile
from synapsenet.services.dataversion.entries import ChunkRef, FileEntry
from synapsenet.services.dataversion.stream_cutter import StreamCutter
from synapsenet.services.dataversion.tabular import (
    DatasetFormat,
    DatasetStats,
    csv_schema,
    open_batches,
    table_stats,
)
from tests.services.dataversion.csv_samples import (
    CsvRows,
    CsvSample,
    Line,
    csv_records,
    grown,
    true_row_ends,
)

PARAMS = ChunkingParams(min_size=512, avg_size=2 * KiB, max_size=8 * KiB)
LOGGER = "synapsenet.services.dataversion.chunk_stats"
_P = ParamSpec("_P")
_T = TypeVar("_T")


def full_pass(path: Path) -> DatasetStats:
    """The statistics of one streaming pass over the whole file."""
    return table_stats(open_batches(path, DatasetFormat.CSV))


def assert_summarised_by_chunks(written: Written, path: Path, *, rows: int) -> None:
    """The chunks gave the file's statistics, those of a full pass, with ``rows`` rows."""
    assert written.found is not None
    assert written.found[0] == full_pass(path)
    assert written.found[0].rows == rows


def pyarrow_rows(data: bytes, columns: int) -> int:
    """How many rows pyarrow's CSV reader finds in headerless ``data``."""
    if not data:
        return 0
    table = pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=[f"c{i}" for i in range(columns)]),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
    )
    return int(table.num_rows)


class RecordingExecutor(ThreadPoolExecutor):
    """A one-thread executor that notes every chunk and batch handed to it for parsing."""

    def __init__(self) -> None:
        super().__init__(1)
        self.parsed: list[tuple[str, bool]] = []
        self.batches: list[int] = []

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        if args and isinstance(args[0], _Batch):
            batch = args[0]
            data = bytes(batch.data())
            starts = [0, *batch.ends[:-1]]
            for i, (start, end) in enumerate(zip(starts, batch.ends, strict=True)):
                # Only a batch's first piece can be the file's first chunk.
                self.parsed.append((chunk_address(data[start:end]), batch.first and i == 0))
            self.batches.append(len(data))
        return super().submit(fn, *args, **kwargs)


@dataclass
class Written:
    """One CSV file written with rows=True and its statistics gathered chunk by chunk."""

    stats: CsvChunkStats
    entry: FileEntry
    rows_aligned: bool
    found: tuple[DatasetStats, pa.Table] | None
    parsed: list[tuple[str, bool]]
    batches: list[int]

    @property
    def keys(self) -> list[tuple[str, bool]]:
        """(address, first) of each chunk, as the statistics are keyed."""
        return [(ref.address, i == 0) for i, ref in enumerate(self.entry.chunks)]


def write_csv(
    store: ObjectStore,
    path: Path,
    *,
    parents: Sequence[str] = (),
    params: ChunkingParams = PARAMS,
    rows: bool = True,
    schema: pa.Schema | None = None,
) -> Written:
    """Write ``path`` to a chunk store, feeding its chunks to per-chunk statistics.

    The columns are those of the file's first block, as a commit infers them, unless
    ``schema`` is given.
    """
    if schema is None:
        schema = csv_schema(path)
    stats = CsvChunkStats(store, schema)
    stats.remember(parents)
    found: list[tuple[DatasetStats, pa.Table] | None] = []
    files: list[WrittenFile] = []
    with RecordingExecutor() as executor:
        file_stats = stats.start_file(path.name, executor)

        def observe(name: str, position: int, address: str, data: bytes | memoryview) -> None:
            assert name == path.name
            file_stats.add(position, address, data)

        def accept(written: Sequence[WrittenFile]) -> None:
            (file,) = written
            files.append(file)
            found.append(file_stats.finish(file.entry, rows_aligned=file.rows_aligned or not rows))

        ChunkStore(store).write_paths(
            [(path.name, path)], params=params, rows=rows, observe=observe, accept=accept
        )
    (file,) = files
    return Written(
        stats, file.entry, file.rows_aligned, found[0], executor.parsed, executor.batches
    )


@pytest.fixture(params=["scanner", "pyarrow"], autouse=True)
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with new chunks read by the compiled scanner where it reads them, and
    again with every chunk parsed by pyarrow (the scanner declining all input)."""
    if request.param == "pyarrow":
        monkeypatch.setattr(chunk_stats, "scan_segment_stats", lambda *args: None)
    return str(request.param)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def save(path: Path, sample: CsvSample | bytes) -> Path:
    path.write_bytes(sample if isinstance(sample, bytes) else sample.data)
    return path


# --- quoting checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ends", "problem"),
    [
        (b"", (), None),
        (b"a,b\n1,2\n", (), None),
        (b"a,b\r\n1,2\r\n", (), None),
        (b'"a",b\n"1","x, y"\n', (), None),
        (b'"say ""hi""",2\n""""\n', (), None),  # doubled quotes, a field of one quote
        (b'"a\r\nb",1\r\n', (), None),  # CRLF inside quotes
        (b'1,"a"', (), None),  # a quote at the very end
        (b"a,b\r1,2\n", (), "a carriage return that does not end a line"),
        (b'"a\rb",1\r\n', (), "a carriage return that does not end a line"),
        (b"a,b\n1,2\r", (), "a carriage return that does not end a line"),
        (b'a,"b\n', (), "a quoted field that does not end"),
        (b'a,5 inch",x\n', (), "a quoted field that does not end"),
        (b'"a\nb",1\n"c",2\n', (3, 16), "a quoted field that does not end"),
        (b'"a\nb",1\n"c",2\n', (8, 16), None),
        (b'a,5 inch",6 inch"\n', (), "a quote inside an unquoted field, or after a quoted one"),
        (b'"ab"c,d\n', (), "a quote inside an unquoted field, or after a quoted one"),
        (b'x,"ab" ,d\n', (), "a quote inside an unquoted field, or after a quoted one"),
    ],
)
def test_rows_problem_finds_what_breaks_rfc_4180_quoting(
    data: bytes, ends: tuple[int, ...], problem: str | None
) -> None:
    assert rows_problem(data, ends) == problem
    assert rows_problem(bytearray(data), list(ends)) == problem


def test_rows_problem_accepts_generated_csv() -> None:
    for seed in range(10):
        sample = CsvRows(seed, crlf=0.5, long_strings=0.05).sample(300, empty_lines=0.1)
        assert rows_problem(sample.data, sample.row_ends) is None


# --- row counts -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    rows=st.integers(0, 200),
    crlf=st.sampled_from([0.0, 0.5, 1.0]),
    empty_lines=st.sampled_from([0.0, 0.2]),
    trailing_newline=st.booleans(),
    pieces=st.integers(1, 8),
)
def test_row_counts_match_pyarrow_on_generated_csv(
    seed: int, rows: int, crlf: float, empty_lines: float, trailing_newline: bool, pieces: int
) -> None:
    generator = CsvRows(seed, crlf=crlf)
    sample = generator.sample(rows, empty_lines=empty_lines, trailing_newline=trailing_newline)
    data = sample.data
    # Pieces end at row ends, the last at the end of the data.
    inner = sorted(generator.rng.sample(sample.row_ends, min(pieces - 1, len(sample.row_ends))))
    ends = [*inner, len(data)]
    counts, quoted_newlines = _RowScan(data).row_counts(np.asarray(ends, dtype=np.int64))
    starts = [0, *ends[:-1]]
    columns = len(sample.lines[0].fields or ())
    pieces_rows = [pyarrow_rows(data[s:e], columns) for s, e in zip(starts, ends, strict=True)]
    assert counts.tolist() == pieces_rows
    assert int(counts.sum()) == len(sample.records)
    values = [value for record in sample.records for value in record]
    assert quoted_newlines == any("\n" in value for value in values)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    rows=st.integers(0, 120),
    quoted_newlines=st.booleans(),
    empty_lines=st.sampled_from([0.0, 0.1]),
    trailing_newline=st.booleans(),
    pieces=st.integers(1, 8),
)
def test_line_counts_are_the_rows_exactly_when_the_parse_finds_as_many(
    seed: int,
    rows: int,
    quoted_newlines: bool,
    empty_lines: float,
    trailing_newline: bool,
    pieces: int,
) -> None:
    generator = CsvRows(seed, crlf=0.0, quoted_newlines=quoted_newlines)
    sample = generator.sample(rows, empty_lines=empty_lines, trailing_newline=trailing_newline)
    data = sample.data
    inner = sorted(generator.rng.sample(sample.row_ends, min(pieces - 1, len(sample.row_ends))))
    ends = np.asarray([*inner, len(data)], dtype=np.int64)
    counts = line_counts(data, ends)
    if counts is None:
        assert b"\r" in data  # a quoted value holds one
        return
    columns = len(sample.lines[0].fields or ())
    found = pyarrow_rows(data, columns)
    exact, _ = _RowScan(data).row_counts(ends)
    # The rule the parse relies on: equal totals mean equal counts, piece by piece.
    assert (int(counts.sum()) == found) == (counts.tolist() == exact.tolist())
    assert int(counts.sum()) >= found
    if not quoted_newlines and not empty_lines:
        assert counts.tolist() == exact.tolist()


def test_line_counts_leave_carriage_returns_to_the_quote_scan() -> None:
    ends = np.asarray([4, 8], dtype=np.int64)
    assert line_counts(b"a,b\r\nc,d\r\n", ends) is None
    counts = line_counts(b"a,b\nc,d", np.asarray([4, 7], dtype=np.int64))
    assert counts is not None
    assert counts.tolist() == [1, 1]
    empty = line_counts(b"", np.asarray([0], dtype=np.int64))
    assert empty is not None
    assert empty.tolist() == [0]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"a\n\nb\n",
        b"a\r\n\r\nb",
        b"a\n\r",
        b"a",
        b'"x\ny"\n\n"\n"',
        b"a\nb\n\n",
    ],
)
def test_row_counts_skip_empty_lines_and_count_a_last_row_without_line_end(data: bytes) -> None:
    counts, _ = _RowScan(data).row_counts(np.asarray([len(data)], dtype=np.int64))
    assert counts.tolist() == [pyarrow_rows(data, 1)]


# --- statistics of one file -------------------------------------------------------------------


def test_stats_of_a_file_cut_at_rows_equal_the_full_pass(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    sample = CsvRows(1, long_strings=0.02, quoted_newlines=False).sample(3000, empty_lines=0.01)
    path = save(tmp_path / "orders.csv", sample)
    written = write_csv(store, path)
    assert written.rows_aligned
    assert written.found is not None
    stats, table = written.found
    assert stats == full_pass(path)
    assert stats.rows == 3000
    assert len(written.entry.chunks) > 50
    assert written.parsed == written.keys  # every chunk parsed, once, in order
    assert table.num_rows == len(written.entry.chunks)
    assert table["address"].to_pylist() == [bytes.fromhex(a) for a, _ in written.keys]
    assert table["first"].to_pylist() == [first for _, first in written.keys]


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_a_last_row_without_line_end_is_counted(
    store: LocalObjectStore, tmp_path: Path, trailing_newline: bool
) -> None:
    sample = CsvRows(2, quoted_newlines=False).sample(500, trailing_newline=trailing_newline)
    path = save(tmp_path / "t.csv", sample)
    written = write_csv(store, path)
    assert written.found is not None
    assert written.found[0] == full_pass(path)
    assert written.found[0].rows == 500


def test_a_file_of_only_a_header_has_no_rows(store: LocalObjectStore, tmp_path: Path) -> None:
    path = save(tmp_path / "empty.csv", b"id,name\n")
    assert_summarised_by_chunks(write_csv(store, path), path, rows=0)


def test_a_header_without_line_end_needs_a_full_pass(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(tmp_path / "header.csv", b"id,name")
    schema = pa.schema([("id", pa.string()), ("name", pa.string())])
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path, schema=schema)
    assert written.rows_aligned
    assert written.found is None
    assert "the header row does not end in the first chunk" in caplog.text


def test_a_quoted_header_ends_after_its_quoted_line_ends(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    path = save(tmp_path / "q.csv", b'"multi\nline",b\n1,2\n3,4\n')
    written = write_csv(store, path)
    assert written.found is not None
    assert written.found[0] == full_pass(path)
    assert written.found[0].rows == 2


def chunk_ends(entry: FileEntry) -> list[int]:
    """Where each chunk of ``entry`` but the last ends, as offsets in the file."""
    return list(accumulate(ref.size for ref in entry.chunks))[:-1]


def test_a_quoted_value_over_several_lines_needs_a_full_pass(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The tabular readers split CSV at every line end, so such files are read whole, as
    # before per-chunk statistics (and refused past their first block).
    generator = CsvRows(3, crlf=0.5, quoted_newlines=False)
    lines = list(generator.sample(800).lines)
    lines[400] = generator.line(["400", "1.5", "2", "two\nlines", "true", "2001-01-01", None])
    sample = CsvSample(tuple(lines))
    path = save(tmp_path / "quoted.csv", sample)
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path)
    assert written.rows_aligned
    assert set(chunk_ends(written.entry)) <= true_row_ends(sample.data)  # all cut at rows
    assert written.found is None
    assert "need a full pass: a quoted value spans lines" in caplog.text
    assert full_pass(path).rows == len(sample.records) - 1 == 800


def test_a_chunk_cut_inside_a_quoted_value_needs_a_full_pass(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Most line ends are inside quotes: a cut in a value's second line ends its chunk inside
    # that value, and the chunk's quotes do not pair up.
    rows = b"".join(b'%d,"line 1\nline 2\nline 3",%d\n' % (i, i % 7) for i in range(3000))
    data = b"id,text,n\n" + rows
    path = save(tmp_path / "lines.csv", data)
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path)
    assert written.rows_aligned  # every chunk ends after a newline
    assert not set(chunk_ends(written.entry)) <= true_row_ends(data)
    assert written.found is None
    assert "need a full pass: a quoted field that does not end" in caplog.text
    assert full_pass(path).rows == len(csv_records(data)) - 1 == 3000


# --- reuse across versions --------------------------------------------------------------------


def test_a_second_version_parses_only_its_new_chunks(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    generator = CsvRows(4, quoted_newlines=False)
    first_sample = generator.sample(4000)
    first = write_csv(store, save(tmp_path / "v1.csv", first_sample))
    assert first.found is not None
    first.stats.save(first.entry, first.found[1])
    key = f"{STATS_PREFIX}{first.entry.content_hash}/{first.stats.fingerprint}"
    assert first.stats.key(first.entry.content_hash) == key
    assert store.exists(key)
    assert stats_file_hash(key) == first.entry.content_hash

    second_sample = grown(generator, first_sample, appended=40, edited=4)
    path = save(tmp_path / "v2.csv", second_sample)
    second = write_csv(store, path, parents=[first.entry.content_hash])
    assert second.found is not None
    assert second.found[0] == full_pass(path)
    known = set(first.keys)
    assert second.parsed == [key for key in second.keys if key not in known]
    assert 0 < len(second.parsed) < len(second.keys) / 4
    # The table it saves for the next version covers every chunk, reused or parsed.
    _stats, table = second.found
    assert table.num_rows == len(second.entry.chunks)
    second.stats.save(second.entry, table)

    path = save(tmp_path / "v3.csv", grown(generator, second_sample, appended=10, edited=10))
    third = write_csv(store, path, parents=[first.entry.content_hash, second.entry.content_hash])
    assert third.found is not None
    assert third.found[0] == full_pass(path)
    # Chunks new in v2 (its edits and appended rows) come from v2's table, the second one.
    assert set(third.keys) & (set(second.keys) - known)
    known |= set(second.keys)
    assert third.parsed == [key for key in third.keys if key not in known]


def test_an_identical_file_parses_nothing(store: LocalObjectStore, tmp_path: Path) -> None:
    path = save(tmp_path / "same.csv", CsvRows(5, quoted_newlines=False).sample(1000))
    first = write_csv(store, path)
    assert first.found is not None
    first.stats.save(first.entry, first.found[1])
    again = write_csv(store, path, parents=[first.entry.content_hash])
    assert again.parsed == []
    assert again.found is not None
    assert again.found[0] == first.found[0] == full_pass(path)


def test_a_first_chunk_is_reused_only_as_a_first_chunk(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    # The statistics of a first chunk leave its header out: the same bytes anywhere else
    # hold one more row, so they are parsed again.
    data = b"a,b\n" + b"".join(b"x%d,y%d\n" % (i, i % 5) for i in range(3000))
    first = write_csv(store, save(tmp_path / "a.csv", data))
    assert first.found is not None
    first.stats.save(first.entry, first.found[1])
    head = first.entry.chunks[0]
    head_bytes = data[: head.size]
    assert len(first.entry.chunks) > 1
    doubled = save(tmp_path / "doubled.csv", head_bytes + head_bytes)
    stats = CsvChunkStats(store, first.stats.schema)
    stats.remember([first.entry.content_hash])
    with RecordingExecutor() as executor:
        file_stats = stats.start_file("doubled.csv", executor)
        file_stats.add(0, head.address, head_bytes)
        file_stats.add(1, head.address, memoryview(head_bytes))
        digest = blake3.blake3(doubled.read_bytes()).hexdigest()
        entry = FileEntry("doubled.csv", 2 * head.size, digest, (head, head))
        found = file_stats.finish(entry, rows_aligned=True)
    assert executor.parsed == [(head.address, False)]
    assert found is not None
    assert found[0] == full_pass(doubled)


def test_stats_of_another_column_layout_are_not_reused(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    data = b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(3000))
    first = write_csv(store, save(tmp_path / "a.csv", data))
    assert first.found is not None
    first.stats.save(first.entry, first.found[1])
    # The same bytes under another schema (the ids read as strings): another fingerprint.
    schema = pa.schema([("id", pa.string()), ("name", pa.string())])
    again = write_csv(store, tmp_path / "a.csv", parents=[first.entry.content_hash], schema=schema)
    assert again.stats.fingerprint != first.stats.fingerprint
    assert again.parsed == again.keys
    assert again.found is not None
    assert again.found[0].columns["id"].type == "string"


# --- damaged, missing and foreign statistics objects ------------------------------------------


def _second_version(tmp_path: Path, store: LocalObjectStore) -> tuple[Written, Path]:
    generator = CsvRows(6, quoted_newlines=False)
    sample = generator.sample(2000)
    first = write_csv(store, save(tmp_path / "v1.csv", sample))
    assert first.found is not None
    first.stats.save(first.entry, first.found[1])
    path = save(tmp_path / "v2.csv", grown(generator, sample, appended=20, edited=2))
    return first, path


def _checked(body: bytes) -> bytes:
    """A statistics object's bytes: the BLAKE3 of ``body``, then ``body``."""
    return blake3.blake3(body).digest() + body


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda blob: blob[:40] + bytes([blob[40] ^ 1]) + blob[41:], "checksum mismatch"),
        (lambda blob: bytes([blob[0] ^ 0xFF]) + blob[1:], "checksum mismatch"),
        (lambda blob: blob[:20], "checksum mismatch"),
        (lambda blob: _checked(b"not arrow"), ""),
        (
            lambda blob: _checked(_ipc(pa.table({"address": [b"x"], "other": [1]}))),
            "unexpected columns",
        ),
    ],
    ids=["flipped-body-byte", "flipped-checksum-byte", "truncated", "not-arrow", "other-columns"],
)
def test_damaged_or_foreign_stats_objects_are_ignored_and_logged(
    store: LocalObjectStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[bytes], bytes],
    reason: str,
) -> None:
    first, path = _second_version(tmp_path, store)
    key = first.stats.key(first.entry.content_hash)
    store.put(key, damage(store.get(key)))
    with caplog.at_level(logging.WARNING, LOGGER):
        second = write_csv(store, path, parents=[first.entry.content_hash])
    assert f"ignoring damaged per-chunk statistics {key}: {reason}" in caplog.text
    assert second.found is not None
    assert second.found[0] == full_pass(path)
    assert second.parsed == second.keys  # nothing reused


def test_missing_stats_objects_only_cost_parsing(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, path = _second_version(tmp_path, store)
    store.delete(first.stats.key(first.entry.content_hash))
    with caplog.at_level(logging.WARNING, LOGGER):
        second = write_csv(store, path, parents=[first.entry.content_hash, "0" * 64])
    assert caplog.text == ""
    assert second.found is not None
    assert second.found[0] == full_pass(path)
    assert second.parsed == second.keys


class ConcurrentlySweptStore(LocalObjectStore):
    """A local store where another sweep deletes ``vanishing`` right after it is listed."""

    vanishing = ""

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = list(super().list(prefix))
        if self.vanishing in keys:
            self.delete(self.vanishing)
        return iter(keys)


def test_sweep_deletes_only_old_statistics_of_files_no_version_holds(tmp_path: Path) -> None:
    store = ConcurrentlySweptStore(tmp_path / "objects")
    keys = {name: f"{STATS_PREFIX}{name * 64}/{'f' * 32}" for name in "abcd"}
    for key in keys.values():
        store.put(key, b"stats")
    store.put(f"chunks/{'e' * 64}", b"not statistics")
    old = datetime.now(UTC) - timedelta(days=1)
    for name in "bd":
        os.utime(tmp_path / "objects" / keys[name], (old.timestamp(), old.timestamp()))
    store.vanishing = keys["d"]  # an old one that another sweep deletes meanwhile
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    # a: held by a version; b: old and held by none; c: recent (a commit in flight).
    assert sweep_stats(store, {"a" * 64}, older_than=cutoff, dry_run=True) == 1
    assert set(store.list(STATS_PREFIX)) == {keys["a"], keys["b"], keys["c"]}
    assert sweep_stats(store, {"a" * 64}, older_than=cutoff) == 1
    assert set(store.list(STATS_PREFIX)) == {keys["a"], keys["c"]}
    assert sweep_stats(store, set(), older_than=datetime.now(UTC) + timedelta(hours=1)) == 2
    assert list(store.list()) == [f"chunks/{'e' * 64}"]


def test_stats_file_hash_reads_only_per_chunk_statistics_keys() -> None:
    assert stats_file_hash(f"{STATS_PREFIX}{'a' * 64}/{'b' * 32}") == "a" * 64
    assert stats_file_hash(STATS_PREFIX) is None
    assert stats_file_hash(f"chunks/{'a' * 64}") is None


# --- files that cannot be parsed chunk by chunk -----------------------------------------------


def test_chunks_not_cut_at_rows_need_a_full_pass(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generator = CsvRows(7, quoted_newlines=False)
    sample = generator.sample(2000)
    lines = list(sample.lines)
    long = "x" * (3 * PARAMS.max_size)
    lines[1000] = generator.line(
        ["1", "1.5", "2", long, "true", "2020-01-01", "2020-01-01 00:00:00"]
    )
    path = save(tmp_path / "long.csv", CsvSample(tuple(lines)))
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path)
    assert not written.rows_aligned
    assert written.found is None
    assert "need a full pass: chunks not cut at rows" in caplog.text


def test_chunks_cut_without_rows_are_found_out_by_their_line_ends(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(tmp_path / "plain.csv", CsvRows(8, quoted_newlines=False).sample(2000))
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path, rows=False)  # claims rows_aligned all the same
    assert written.found is None
    assert "a chunk that does not end at a row end" in caplog.text


@pytest.mark.parametrize(
    "row", [b'%d,a 5 inch" pipe,6 inch" cap', b'%d,a 5 inch" pipe,cap', b'%d,"a",b "c"']
)
def test_quotes_inside_unquoted_fields_are_values_when_every_line_is_a_row(
    store: LocalObjectStore, tmp_path: Path, row: bytes
) -> None:
    # The reader takes such quotes as they are; one row per line end proves it (with one
    # quote per line, the cutter's quote count keeps two lines together: still row ends).
    rows = b"".join(row % i + b"\n" for i in range(2000))
    path = save(tmp_path / "inches.csv", b"id,a,b\n" + rows)
    assert_summarised_by_chunks(write_csv(store, path), path, rows=2000)


def test_chunks_with_bad_quoting_and_carriage_returns_need_a_full_pass(
    store: LocalObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = b"".join(b'%d,a 5 inch" pipe,6 inch" cap\r\n' % i for i in range(2000))
    path = save(tmp_path / "inches.csv", b"id,a,b\r\n" + rows)
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path)
    assert written.found is None
    assert "a quote inside an unquoted field" in caplog.text
    assert full_pass(path).rows == 2000


@pytest.mark.parametrize("reader", ["pyarrow"], indirect=True)  # the reader at fault
def test_rows_the_reader_skips_unlike_the_count_need_a_full_pass(
    store: LocalObjectStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No input is known to make the reader skip a row the count holds (a leading byte order
    # mark, which it used to drop, is kept: see below); a reader that loses one anyway
    # is caught by the count and costs a full pass rather than wrong statistics.
    read_csv = pa_csv.read_csv

    def losing_the_last_row(*args: Any, **kwargs: Any) -> pa.Table:
        table = read_csv(*args, **kwargs)
        return table.slice(0, table.num_rows - 1)

    path = save(tmp_path / "ids.csv", b"n\n" + b"".join(b"%d\n" % i for i in range(2000)))
    monkeypatch.setattr(pa_csv, "read_csv", losing_the_last_row)
    with caplog.at_level(logging.INFO, LOGGER):
        written = write_csv(store, path)
    assert written.found is None
    assert "need a full pass: 1999 rows parsed, 2000 counted" in caplog.text  # one batch
    monkeypatch.undo()
    assert full_pass(path).rows == 2000


@pytest.mark.parametrize(
    "data",
    [
        "name,n\n\ufeffzzz,1\nabc,2\n",  # a value starting with one
        "n\n\ufeff\n2\n",  # a value of only one
        "name,n\n" + "".join(f"\ufeff{i:05d},{i}\n" for i in range(3000)),  # at every chunk
    ],
    ids=["value", "whole-value", "every-row"],
)
def test_a_value_starting_with_a_byte_order_mark_keeps_it(
    store: LocalObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str
) -> None:
    # pyarrow drops a byte order mark at the start of what it parses; each batch is parsed
    # on its own, and here (one byte per batch) every chunk is a batch of its own.
    monkeypatch.setattr(chunk_stats, "_PARSE_BYTES", 1)
    path = save(tmp_path / "bom.csv", data.encode())
    written = write_csv(store, path)
    expected = full_pass(path)
    assert expected.rows == len(data.splitlines()) - 1
    first_column = expected.columns[next(iter(expected.columns))]
    assert str(first_column.max).startswith("\ufeff")
    assert written.found is not None
    assert written.found[0] == expected
    assert len(written.parsed) == len(written.entry.chunks)


def test_an_entry_with_other_chunks_than_those_added_needs_a_full_pass(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    data = b"id\n" + b"".join(b"%d\n" % i for i in range(100))
    stats = CsvChunkStats(store, pa.schema([("id", pa.int64())]))
    with ThreadPoolExecutor(1) as executor:
        file_stats = stats.start_file("ids.csv", executor)
        address = chunk_address(data)
        file_stats.add(0, address, data)
        refs = (ChunkRef(address, len(data)), ChunkRef(address, len(data)))
        entry = FileEntry("ids.csv", 2 * len(data), blake3.blake3(data + data).hexdigest(), refs)
        assert file_stats.finish(entry, rows_aligned=True) is None


def test_a_value_that_does_not_fit_its_column_names_the_file(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    generator = CsvRows(9, quoted_newlines=False, long_strings=0.0)
    sample = generator.sample(16_000)
    lines = list(sample.lines)
    lines[14_000] = generator.row(14_000, count="12x")  # after the first 1 MiB block
    path = save(tmp_path / "bad.csv", CsvSample(tuple(lines)))
    assert sum(len(line.text) for line in lines[:14_000]) > MiB
    with pytest.raises(InvalidError, match=r"Cannot read 'bad\.csv' as CSV") as caught:
        write_csv(store, path)
    assert caught.value.field == "file"
    assert "12x" in caught.value.detail
    with pytest.raises(InvalidError, match="12x"):
        full_pass(path)


# --- batches of fresh chunks ------------------------------------------------------------------


def test_a_large_file_is_parsed_in_batches_while_it_is_cut(
    store: LocalObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = CsvRows(10, quoted_newlines=False).sample(12_000)
    body = b"".join(line.text for line in block.lines[1:])
    header = block.lines[0].text
    repeats = 8
    data = header + body * repeats
    assert len(data) > 3 * _PARSE_BYTES
    # The block's statistics, pooled once per repeat: the file's.
    once = full_pass(save(tmp_path / "once.csv", header + body))
    expected = once
    for _ in range(repeats - 1):
        expected = expected + once
    schema = open_batches(tmp_path / "once.csv", DatasetFormat.CSV).schema
    stats = CsvChunkStats(store, schema)
    # Parsing waits behind a gate until the cutting has to wait for it: with one batch
    # being parsed, the next is filled, and then the cutting waits for the first one.
    gate = threading.Event()
    added_when_waiting: list[int] = []
    pending_when_waiting: list[int] = []

    def wait_opening_the_gate(futures: Any, *args: Any, **kwargs: Any) -> Any:
        added_when_waiting.append(len(file_stats._picks))
        pending_when_waiting.append(len(futures))
        gate.set()
        return wait(futures, *args, **kwargs)

    monkeypatch.setattr(chunk_stats, "wait", wait_opening_the_gate)
    cutter = StreamCutter(ChunkingParams(), rows=True)
    refs: list[ChunkRef] = []
    with RecordingExecutor() as executor:
        executor.submit(gate.wait, 60)  # a timeout, so that a failure cannot hang
        file_stats = stats.start_file("big.csv", executor)
        for position, view in enumerate(cutter.cut(io.BytesIO(data))):
            address = chunk_address(view)
            file_stats.add(position, address, view)
            refs.append(ChunkRef(address, len(view)))
        entry = FileEntry("big.csv", len(data), blake3.blake3(data).hexdigest(), tuple(refs))
        found = file_stats.finish(entry, rows_aligned=cutter.rows_aligned)
    assert found is not None
    assert found[0] == expected
    # Batches of at least _PARSE_BYTES (the last one less), parsed one at a time.
    assert len(executor.batches) >= 3
    assert all(size >= _PARSE_BYTES for size in executor.batches[:-1])
    assert sum(executor.batches) == len(data)
    assert pending_when_waiting  # the cutting did wait for the parsing
    assert all(pending == 1 for pending in pending_when_waiting)
    # The cutting went on while the first batch waited, until a second one was full.
    assert sum(ref.size for ref in refs[: added_when_waiting[0]]) >= 2 * _PARSE_BYTES


@pytest.mark.parametrize("batch_bytes", [1, 8 * KiB])
def test_the_statistics_of_many_batches_are_merged_and_stay_exact(
    store: LocalObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    # Small batches (one chunk each with batch_bytes=1: a chunk larger than its batch's
    # buffer), merged every 3 batches; a second version parses some and reuses the rest.
    monkeypatch.setattr(chunk_stats, "_PARSE_BYTES", batch_bytes)
    monkeypatch.setattr(chunk_stats, "_MERGE_BATCHES", 3)
    generator = CsvRows(12, quoted_newlines=False)
    sample = generator.sample(3000)
    path = save(tmp_path / "v1.csv", sample)
    first = write_csv(store, path)
    assert len(first.parsed) > 40
    assert len(first.batches) > 3 * chunk_stats._MERGE_BATCHES
    assert first.found is not None
    assert first.found[0] == full_pass(path)
    assert first.found[1].num_rows == len(first.entry.chunks)
    assert first.found[1]["address"].to_pylist() == [bytes.fromhex(a) for a, _ in first.keys]
    first.stats.save(first.entry, first.found[1])
    path = save(tmp_path / "v2.csv", grown(generator, sample, appended=200, edited=30))
    second = write_csv(store, path, parents=[first.entry.content_hash])
    assert second.found is not None
    assert second.found[0] == full_pass(path)
    assert 0 < len(second.parsed) < len(second.keys)


def test_batches_refill_the_buffers_of_batches_already_parsed(
    store: LocalObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    # Parsed one batch at a time while the next fills: two buffers serve every batch, and
    # the statistics stay exact (each batch's bytes are its own, whatever filled it before).
    monkeypatch.setattr(chunk_stats, "_PARSE_BYTES", 8 * KiB)
    buffers: set[int] = set()
    batches = 0

    class Recorded(chunk_stats._Batch):
        def __init__(self, first: bool, buffer: bytearray | None = None) -> None:
            nonlocal batches
            super().__init__(first, buffer)
            buffers.add(id(self.view().obj))
            batches += 1

    monkeypatch.setattr(chunk_stats, "_Batch", Recorded)
    path = save(tmp_path / "v1.csv", CsvRows(12, quoted_newlines=False).sample(3000))
    written = write_csv(store, path)
    assert written.found is not None
    assert written.found[0] == full_pass(path)
    assert batches > 10
    assert len(buffers) == 2


@pytest.mark.parametrize("problem", ["quoting", "value"])
def test_an_early_failing_batch_among_many_is_not_merged_away(
    store: LocalObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    # One chunk per batch, merged every 2: the failing batch (not the first, which is never
    # merged) is in the window of later merges, which leave it be.
    monkeypatch.setattr(chunk_stats, "_PARSE_BYTES", 1)
    monkeypatch.setattr(chunk_stats, "_MERGE_BATCHES", 2)
    generator = CsvRows(13, quoted_newlines=False, long_strings=0.0)
    sample = generator.sample(3000)
    # The column types of the file without the bad row, as its first block would give.
    schema = open_batches(save(tmp_path / "good.csv", sample), DatasetFormat.CSV).schema
    lines = list(sample.lines)
    if problem == "quoting":
        lines[300] = Line(None, b'300,1.0,1,a 5 inch" pipe,true,2001-01-01 6 inch",\n')
    else:
        lines[300] = generator.row(300, count="3x")
    path = save(tmp_path / "early.csv", CsvSample(tuple(lines)))
    # Row-aligned chunks hold at most 2 * max_size bytes: the bad row is not in the first.
    assert sum(len(line.text) for line in lines[:300]) >= 2 * PARAMS.max_size
    with caplog.at_level(logging.INFO, LOGGER):
        if problem == "quoting":
            written = write_csv(store, path, schema=schema)
            assert len(written.batches) > 3 * chunk_stats._MERGE_BATCHES
            assert written.found is None
            assert "a quote inside an unquoted field" in caplog.text
        else:
            with pytest.raises(InvalidError, match=r"Cannot read 'early\.csv' as CSV.*3x"):
                write_csv(store, path, schema=schema)
