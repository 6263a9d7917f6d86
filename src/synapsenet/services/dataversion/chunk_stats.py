"""CSV statistics from per-chunk statistics, so that a commit parses only its new chunks.

A CSV file committed with row-aligned chunks (see :mod:`.stream_cutter`) is summarised chunk
by chunk: each chunk's rows are read with the file's column types and summarised, and the
file's statistics pool its chunks'. New chunks are read a batch at a time by the compiled
scanner of :mod:`.csv_scan` where it reads them (the common column types and value shapes),
else parsed by pyarrow and summarised by :func:`.segment_stats.segment_stats`; both give the
same per-chunk statistics. The per-chunk table is kept beside the data, one object per file
and column layout, ``chunk-stats/<file BLAKE3>/<layout fingerprint>``: a BLAKE3 checksum and
an Arrow IPC stream. The next commit of the dataset loads its parent's tables and parses
only the chunks they do not hold; a file that grew by 1% and had 0.1% of its rows edited
parses about a fifth of itself. The statistics are exactly those of a full pass
(:func:`~._stats.table_stats`), checked by the tests on every type CSV inference yields.

Chunks are parsed apart from the rest of their file only where each is known to end at a
row end. Mostly every line is a row: no carriage return, no empty line and no line end
inside a quoted value, the last two confirmed by the parse finding one row per line end
(:func:`line_counts`); every chunk ends at a line end (the cutter's rule), so at a row end.
Otherwise :func:`rows_problem` must find nothing wrong: quoting as RFC 4180 has it and
carriage returns only in CRLF line ends, so that each chunk ends outside quotes, and rows
are counted from the quotes. Since the first chunk starts at the file's start, by induction
every chunk starts at a row. A file with any chunk that fails, or whose parsed rows do not
match the rows counted in its bytes, is read in one full pass instead.

These objects are a cache: a missing or damaged one only costs a full parse, and
:meth:`~.engine.DatasetVersioningEngine.gc` deletes those of files no version holds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import tempfile
from array import array
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import Executor, Future, wait
from datetime import datetime
from typing import Any, Final

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion._arrow_numpy import array_of
from synapsenet.services.dataversion._derived import sweep_derived
from synapsenet.services.dataversion._stats import DatasetStats
from synapsenet.services.dataversion.chunking import DIGEST_HEX_LENGTH, MiB
from synapsenet.services.dataversion.csv_scan import scan_segment_stats
from synapsenet.services.dataversion.entries import FileEntry
from synapsenet.services.dataversion.segment_stats import (
    pool_segments,
    segment_schema,
    segment_stats,
)
from synapsenet.services.dataversion.tabular import DatasetFormat, _csv_conversion, _reading

__all__ = [
    "STATS_PREFIX",
    "CsvChunkStats",
    "CsvFileStats",
    "line_counts",
    "rows_problem",
    "stats_file_hash",
]

log = logging.getLogger(__name__)

STATS_PREFIX: Final = "chunk-stats/"
"""Every per-chunk statistics object's key starts with this."""
# Part of every fingerprint: bump it whenever what a chunk's statistics mean changes (the
# CSV conversion options of tabular._csv_conversion, segment_stats, the stored columns), so
# that no commit reuses statistics computed the old way.
_LAYOUT_VERSION: Final = b"synapsenet.chunk-stats/1"
_ADDRESS: Final = "address"
_FIRST: Final = "first"
_PARSE_BYTES: Final = 2 * MiB
# The statistics of every few batches are merged into one table: kept apart, each batch's
# small arrays would pin allocator pages among the parser's large short-lived ones, and
# memory would grow by about a kilobyte per chunk (measured on a 2 GB commit).
_MERGE_BATCHES: Final = 32
_NEWLINE: Final = ord("\n")
_RETURN: Final = ord("\r")
_QUOTE: Final = ord('"')
_BOM: Final = "\ufeff".encode()
_DELIMITER: Final = ord(",")
_NEIGHBOURS = np.zeros(256, dtype=bool)  # bytes that may stand next to a quote
_NEIGHBOURS[[_DELIMITER, _NEWLINE, _RETURN, _QUOTE]] = True


_SAVE_ROWS: Final = 8192
"""Rows per record batch of a stored per-chunk statistics table."""
_SPOOL_PIECE: Final = MiB


def _release_unused() -> None:
    """Hand memory Arrow's allocator keeps cached back to the system.

    Parsing runs on other threads than the cutting, and Arrow's default allocator
    (mimalloc) keeps what each thread freed for its later use: without this, a 2 GB CSV
    commit's resident memory holds ~30 MB of such pages by its end.
    """
    pa.default_memory_pool().release_unused()


class _NotRowsError(Exception):
    """The chunks cannot be parsed one by one; read the file in one pass."""


def stats_file_hash(key: str) -> str | None:
    """The file hash a per-chunk statistics key names, or None for other keys."""
    if not key.startswith(STATS_PREFIX):
        return None
    file_hash, _, _layout = key[len(STATS_PREFIX) :].partition("/")
    return file_hash or None


def sweep_stats(
    store: ObjectStore, live_files: Collection[str], *, older_than: datetime, dry_run: bool = False
) -> int:
    """Delete the per-chunk statistics of files no version holds, written before a cutoff.

    A commit writes its files' statistics before it records its version, so objects
    written at or after ``older_than`` are kept: they may belong to a commit in flight.

    Args:
        store: The object store.
        live_files: BLAKE3 hashes of the files of every recorded version.
        older_than: The cutoff (aware).
        dry_run: Count, delete nothing.

    Returns:
        How many objects were deleted (or would have been).
    """
    return sweep_derived(
        store, STATS_PREFIX, stats_file_hash, live_files, older_than=older_than, dry_run=dry_run
    )


def rows_problem(data: bytes | bytearray, ends: Iterable[int] = ()) -> str | None:
    """Why row-aligned CSV bytes cannot be parsed apart from the rest of their file.

    ``data`` must start at a row. Nothing is wrong when every quote opens a field (after a
    delimiter, a line end or the start), closes one (before a delimiter, a line end or the
    end) or is doubled inside one, the quotes pair up (also within each piece ending at one
    of ``ends``), and every carriage return is followed by a newline.

    Returns:
        What is wrong, or None.
    """
    return _RowScan(data).problem(np.asarray(list(ends), dtype=np.int64))


class _RowScan:
    """Where the quotes and row ends of row-aligned CSV bytes are."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data
        self.array = np.frombuffer(data, dtype=np.uint8)
        self.quotes = np.flatnonzero(self.array == _QUOTE) if b'"' in data else np.empty(0, np.intp)

    def problem(self, ends: np.ndarray) -> str | None:
        data, quotes = self.data, self.quotes
        returns = data.count(b"\r")
        if returns and returns != data.count(b"\r\n"):
            return "a carriage return that does not end a line"
        if not quotes.size:
            return None
        if quotes.size % 2 or (np.searchsorted(quotes, ends) % 2).any():
            return "a quoted field that does not end"
        padded = np.empty(len(self.array) + 2, dtype=np.uint8)
        padded[0] = padded[-1] = _NEWLINE
        padded[1:-1] = self.array
        opening, closing = quotes[0::2], quotes[1::2]
        if not (_NEIGHBOURS[padded[opening]].all() and _NEIGHBOURS[padded[closing + 2]].all()):
            return "a quote inside an unquoted field, or after a quoted one"
        return None

    def row_counts(self, ends: np.ndarray) -> tuple[np.ndarray, bool]:
        """Rows per piece (pieces end at ``ends``), and whether a value holds a newline.

        A row ends at a newline outside quotes; empty lines (also a lone CR before the
        newline) are no rows, as the CSV reader skips them; bytes after the last newline
        are one more row.
        """
        counts = np.zeros(len(ends), dtype=np.int64)
        if not self.data:
            return counts, False
        array = self.array
        newlines = np.flatnonzero(array == _NEWLINE)
        inside = np.searchsorted(self.quotes, newlines) % 2 == 1
        row_ends = newlines[~inside]
        starts = np.concatenate([[0], row_ends[:-1] + 1])
        lengths = row_ends - starts
        blank = (lengths == 0) | ((lengths == 1) & (array[np.maximum(row_ends - 1, 0)] == _RETURN))
        pieces = np.searchsorted(ends, row_ends[~blank], side="right")
        counts += np.bincount(pieces, minlength=len(ends))[: len(ends)]
        tail = self.data[int(row_ends[-1]) + 1 if row_ends.size else 0 :]
        if tail and tail != b"\r":
            counts[-1] += 1
        return counts, bool(inside.any())


def line_counts(data: bytes | bytearray, ends: np.ndarray) -> np.ndarray | None:
    """Lines per piece of CSV bytes (pieces end at ``ends``): their rows if every line is one.

    Every line is a row when the bytes have no carriage return (checked here), no empty
    line and no line end inside a quoted value. The caller checks the last two by parsing
    the bytes: each makes the parse find fewer rows than these counts add up to, and
    nothing else does, since without carriage returns only line ends end rows. Bytes after
    the last line end are one more row.

    Returns:
        The lines of each piece, or None if the bytes hold a carriage return.
    """
    if b"\r" in data:
        return None
    bounds = [0, *ends.tolist()]
    counts = np.array(
        [data.count(b"\n", bounds[k], bounds[k + 1]) for k in range(len(ends))], dtype=np.int64
    )
    if data and not data.endswith(b"\n"):
        counts[-1] += 1  # the last row has no line end
    return counts


class CsvChunkStats:
    """Statistics of CSV files of one column layout, reusing known chunks' statistics.

    Args:
        store: The object store holding the per-chunk statistics objects.
        schema: The files' columns, as inferred from their first block.
        name: The file's name in errors (see :meth:`file_stats`).
    """

    def __init__(self, store: ObjectStore, schema: pa.Schema) -> None:
        self.store = store
        self.schema = schema
        self.layout = segment_schema(schema)
        self.fingerprint = blake3.blake3(
            _LAYOUT_VERSION + b"\0" + schema.serialize().to_pybytes()
        ).hexdigest()[:32]
        self._known: list[pa.Table] = []
        self._known_rows = 0
        # Rows of the known statistics by chunk address: of first chunks (which hold a
        # header row), and of the others.
        self._index: tuple[dict[str, int], dict[str, int]] = ({}, {})

    def key(self, file_hash: str) -> str:
        """The object key of the per-chunk statistics of the file with ``file_hash``."""
        return f"{STATS_PREFIX}{file_hash}/{self.fingerprint}"

    def remember(self, file_hashes: Iterable[str]) -> None:
        """Load the per-chunk statistics of these files, where stored, for reuse.

        Missing objects, objects of another layout and damaged ones are skipped (a damaged
        one is logged): they only mean more parsing.
        """
        for file_hash in file_hashes:
            table = self._load(file_hash)
            if table is None:
                continue
            digests = table[_ADDRESS].combine_chunks()
            width = DIGEST_HEX_LENGTH // 2
            start = digests.offset * width
            data = digests.buffers()[1]
            raw = b"" if data is None else data.to_pybytes()
            text = raw[start : start + width * len(digests)].hex()
            firsts: list[Any] = table[_FIRST].to_pylist()
            for row, first in enumerate(firsts):
                address = text[row * DIGEST_HEX_LENGTH : (row + 1) * DIGEST_HEX_LENGTH]
                self._index[first].setdefault(address, self._known_rows + row)
            self._known.append(table.select(self.layout.names))
            self._known_rows += table.num_rows

    def _load(self, file_hash: str) -> pa.Table | None:
        key = self.key(file_hash)
        try:
            blob = self.store.get(key)
        except NotFoundError:
            return None
        digest, body = blob[:32], blob[32:]
        try:
            if blake3.blake3(body).digest() != digest:
                raise ValueError("checksum mismatch")
            table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
            if table.schema.remove_metadata() != self._stored_schema():
                raise ValueError("unexpected columns")
        except (ValueError, pa.ArrowException) as exc:
            log.warning("ignoring damaged per-chunk statistics %s: %s", key, exc)
            return None
        return table

    def _stored_schema(self) -> pa.Schema:
        keys: list[pa.Field[Any]] = [
            pa.field(_ADDRESS, pa.binary(32)),
            pa.field(_FIRST, pa.bool_()),
        ]
        return pa.schema(keys + list(self.layout))

    def save(self, entry: FileEntry, table: pa.Table) -> None:
        """Store ``table`` (from :meth:`file_stats`) as the per-chunk statistics of ``entry``.

        The compressed stream is spooled to a temporary file, hashed, and streamed to the
        store from there: for a large file it is tens of MB that memory need not hold.
        """
        options = pa.ipc.IpcWriteOptions(compression="zstd", use_threads=False)
        with tempfile.TemporaryFile() as spool:
            with pa.ipc.new_stream(
                pa.PythonFile(spool, mode="w"), table.schema, options=options
            ) as writer:
                writer.write_table(table, max_chunksize=_SAVE_ROWS)
            spool.seek(0)
            hasher = blake3.blake3()
            for piece in iter(lambda: spool.read(_SPOOL_PIECE), b""):
                hasher.update(piece)
            spool.seek(0)
            pieces = iter(lambda: spool.read(_SPOOL_PIECE), b"")
            self.store.put(self.key(entry.content_hash), itertools.chain([hasher.digest()], pieces))
        _release_unused()

    def start_file(self, name: str, executor: Executor) -> CsvFileStats:
        """Begin the statistics of one CSV file, fed its chunks as they are cut.

        Args:
            name: The file's name in errors.
            executor: Where the new chunks are parsed, a batch at a time, while the file is
                still being cut.
        """
        return CsvFileStats(self, name, executor)

    def _assemble(
        self, entry: FileEntry, picks: Sequence[int], parsed: list[pa.Table]
    ) -> tuple[DatasetStats, pa.Table]:
        combined = pa.concat_tables([pa.Table.from_batches([], self.layout), *self._known, *parsed])
        indices = np.array(picks, dtype=np.int64)
        indices[indices < 0] = self._known_rows - 1 - indices[indices < 0]
        if np.array_equal(indices, np.arange(combined.num_rows)):
            rows = combined  # a first commit: every chunk parsed, in order; no copy
        else:
            rows = combined.take(array_of(indices, pa.int64()))
        addresses = pa.py_buffer(bytes.fromhex("".join(ref.address for ref in entry.chunks)))
        firsts = np.zeros(len(entry.chunks), dtype=bool)
        firsts[:1] = True
        keys: list[Any] = [
            pa.Array.from_buffers(pa.binary(32), len(entry.chunks), [None, addresses]),
            array_of(firsts, pa.bool_()),
        ]
        table = pa.Table.from_arrays(keys + rows.columns, schema=self._stored_schema())
        return pool_segments(rows, self.schema), table

    def _parse(self, batch: _Batch) -> pa.Table:
        """Per-chunk statistics of a batch of chunks, parsed together."""
        try:
            return self._parse_rows(batch)
        finally:
            # On the parsing thread, whose pages these are: 0.06 ms a batch, and the 2 GB
            # commit's peak is 20-23 MB lower than with a release every 32 batches.
            _release_unused()

    def _parse_rows(self, batch: _Batch) -> pa.Table:
        # The file's first chunk holds its header row, which is no data.
        header = _header_end(batch.buffer, batch.size) if batch.first else 0
        ends = np.asarray(batch.ends, dtype=np.int64) - header
        with batch.view(header) as view:
            scanned = self._scan(view, ends)
        batch.parsed = True  # no view of its buffer is left: the buffer may be refilled
        if scanned is not None:
            return scanned
        data = batch.data(header)
        # Mostly every line is a row: counting line ends is then enough, and the parse
        # confirms it. Otherwise (or if the parse fails) the quotes are followed.
        counts = line_counts(data, ends)
        table = None
        if counts is not None:
            with contextlib.suppress(pa.ArrowInvalid):
                table = self._read(data)
            if table is None or table.num_rows != int(counts.sum()):
                counts = table = None
        if counts is None:
            scan = _RowScan(data)
            problem = scan.problem(ends)
            if problem is not None:
                raise _NotRowsError(problem)
            counts, quoted_newlines = scan.row_counts(ends)
            if quoted_newlines:
                # The tabular readers split CSV at every newline (pyarrow's default), so a
                # version whose values hold line ends could not be loaded back as a table:
                # the full pass refuses such files as before.
                raise _NotRowsError("a quoted value spans lines")
        if table is None:
            table = self._read(data)
        if table.num_rows != int(counts.sum()):
            raise _NotRowsError(f"{table.num_rows} rows parsed, {int(counts.sum())} counted")
        return segment_stats(table, counts)

    def _scan(self, view: memoryview, ends: np.ndarray) -> pa.Table | None:
        """The compiled scanner's statistics of a batch's rows, read in place, or None.

        Raises:
            _NotRowsError: If a chunk does not end at a row end.
        """
        starts = np.concatenate([[0], ends[:-1]])
        inner = (ends > starts)[:-1]  # non-empty pieces before the last one
        if len(view) and (np.frombuffer(view, np.uint8)[ends[:-1][inner] - 1] != _NEWLINE).any():
            raise _NotRowsError("a chunk that does not end at a row end")
        return scan_segment_stats(view, ends, self.schema)

    def _read(self, data: bytes | bytearray) -> pa.Table:
        """The rows of headerless CSV bytes, with the file's column types."""
        if not data:
            return pa.Table.from_batches([], self.schema)
        conversion = _csv_conversion()
        conversion.column_types = self.schema
        if data.startswith(_BOM):
            # The reader drops a byte order mark at the start of its input; here it is a
            # value's first character. An empty line before it is skipped instead.
            data = b"\n" + data
        source: Any = pa.py_buffer(data)
        return pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=self.schema.names, use_threads=False),
            convert_options=conversion,
        )


class _Batch:
    """New chunks to parse together: their bytes back to back, and where each ends.

    The buffer is allocated at its full size (growing it chunk by chunk would reallocate
    and copy it over and over), or is the buffer of a batch already parsed: a fresh 4 MiB
    buffer costs its pages' first touch, which is most of the time the calling thread
    spends copying new chunks.
    """

    def __init__(self, first: bool, buffer: bytearray | None = None) -> None:
        self._buffer = bytearray(2 * _PARSE_BYTES) if buffer is None else buffer
        self.size = 0
        self.ends: list[int] = []
        self.first = first  # starts with the file's first chunk (and so its header)
        self.parsed = False  # parsed, and no view of the buffer is left

    @property
    def buffer(self) -> bytearray:
        """The buffer: the chunks' bytes in its first :attr:`size` bytes."""
        return self._buffer

    def data(self, start: int = 0) -> bytearray:
        """A copy of the chunks' bytes from ``start``, which the buffer's next batch leaves."""
        return self._buffer[start : self.size]

    def view(self, start: int = 0) -> memoryview:
        """The chunks' bytes from ``start``, in place; release it before the buffer is refilled."""
        return memoryview(self._buffer)[start : self.size]

    def spare(self) -> bytearray | None:
        """The buffer, for a later batch, once this batch is parsed; None before that."""
        return self._buffer if self.parsed else None

    def add(self, chunk: bytes | memoryview) -> None:
        end = self.size + len(chunk)
        if end > len(self._buffer):
            self._buffer.extend(bytes(end - len(self._buffer)))
        with memoryview(self._buffer) as buffer:  # one copy (see StreamCutter's _refill)
            buffer[self.size : end] = chunk
        self.size = end
        self.ends.append(end)


def _header_end(data: bytes | bytearray, size: int) -> int:
    """Where the header row of the row-aligned ``data[:size]`` ends, after its line end."""
    newline = data.find(b"\n", 0, size)
    quotes = 0
    start = 0
    while newline != -1:
        quotes += data.count(b'"', start, newline)
        if quotes % 2 == 0:
            return newline + 1
        start = newline
        newline = data.find(b"\n", newline + 1, size)
    raise _NotRowsError("the header row does not end in the first chunk")


class CsvFileStats:
    """The statistics of one CSV file, gathered chunk by chunk as the file is cut.

    Chunks whose statistics are known are only noted; the others are copied into batches
    of about 2 MiB, each parsed on the executor while the cutting goes on (one batch at a
    time is parsed while the next fills, so memory stays bounded).
    """

    def __init__(self, owner: CsvChunkStats, name: str, executor: Executor) -> None:
        self.owner = owner
        self.name = name
        self.executor = executor
        # Per chunk: its known row, or -1 - its fresh number (8 bytes each, not an int object).
        self._picks = array("q")
        self._fresh = 0
        self._batch: _Batch | None = None
        self._parsing: list[Future[pa.Table]] = []
        self._submitted: _Batch | None = None  # the batch parsing, or parsed last
        self._spare: bytearray | None = None  # the buffer of a parsed batch, to refill

    def add(self, position: int, address: str, data: bytes | memoryview) -> None:
        """Note the chunk at ``position`` (0 for the first) of the file, in order."""
        row = self.owner._index[position == 0].get(address)
        if row is not None:
            self._picks.append(row)
            return
        self._picks.append(-1 - self._fresh)
        self._fresh += 1
        if self._batch is None:
            self._batch = _Batch(first=position == 0, buffer=self._spare)
            self._spare = None
        self._batch.add(data)
        if self._batch.size >= _PARSE_BYTES:
            self._submit()

    def _submit(self) -> None:
        batch, self._batch = self._batch, None
        assert batch is not None
        pending = [future for future in self._parsing if not future.done()]
        if pending:
            wait(pending)  # not result(): a failure is for finish() to judge
        if self._submitted is not None:
            self._spare = self._submitted.spare()
        self._submitted = batch
        if len(self._parsing) > _MERGE_BATCHES:
            self._merge()
        self._parsing.append(self.executor.submit(self.owner._parse, batch))

    def _merge(self) -> None:
        """Put the finished batches' statistics into one table (see :data:`_MERGE_BATCHES`)."""
        done = self._parsing[-_MERGE_BATCHES:]
        if any(future.exception() is not None for future in done):
            return  # for finish() to judge
        merged: Future[pa.Table] = Future()
        merged.set_result(pa.concat_tables([f.result() for f in done]).combine_chunks())
        self._parsing[-_MERGE_BATCHES:] = [merged]
        _release_unused()

    def finish(
        self, entry: FileEntry, *, rows_aligned: bool
    ) -> tuple[DatasetStats, pa.Table] | None:
        """The file's statistics and per-chunk statistics table (for :meth:`CsvChunkStats.save`).

        Args:
            entry: The file as stored: the chunks given to :meth:`add`, in order.
            rows_aligned: Whether the cutter found every chunk to end at a row end.

        Returns:
            None if the chunks cannot be parsed one by one: read the file whole instead.

        Raises:
            InvalidError: Naming the file, if a row does not parse with the column types.
        """
        if self._batch is not None:
            self._submit()
        if not rows_aligned or len(self._picks) != len(entry.chunks):
            wait(self._parsing)
            log.info("statistics of %s need a full pass: chunks not cut at rows", self.name)
            return None
        try:
            with _reading(self.name, DatasetFormat.CSV):
                parsed = [future.result() for future in self._parsing]
        except _NotRowsError as exc:
            log.info("statistics of %s need a full pass: %s", self.name, exc)
            return None
        return self.owner._assemble(entry, self._picks, parsed)
