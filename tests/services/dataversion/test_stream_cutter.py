"""Tests of StreamCutter: FastCDC chunks as views of read windows, optionally cut at row ends.

The oracle for plain cutting is :func:`chunking.chunk_bytes`. For row cutting there are two:
:func:`documented_row_chunks`, the module's rule computed the slow way over the whole data,
holds for any bytes; and for CSV without line ends inside quoted values, where that rule
finds the true row ends, :func:`expected_row_chunks` moves each FastCDC cut to the first row
end at or after it, with the row ends known from how the CSV sample was built (and its
records checked with the ``csv`` module).
"""

from __future__ import annotations

import bisect
import io
import random
import re
import threading
from typing import Any, BinaryIO, cast

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunking import (
    MAX_CHUNK_SIZE,
    ChunkingParams,
    KiB,
    MiB,
    chunk_address,
    chunk_bytes,
)
from synapsenet.services.dataversion.stream_cutter import (
    WINDOW_BYTES,
    CutGuide,
    StreamCutter,
    _Window,
)
from tests.services.dataversion.csv_samples import (
    CsvRows,
    CsvSample,
    Line,
    csv_records,
    true_row_ends,
)
from tests.services.dataversion.test_chunking import ReadOnly, ShortReads

SMALL = ChunkingParams(min_size=64, avg_size=256, max_size=KiB)
ROWS = ChunkingParams(min_size=256, avg_size=KiB, max_size=4 * KiB)


def cut(
    data: bytes,
    params: ChunkingParams,
    *,
    rows: bool = False,
    window: int | None = None,
    stream: object = None,
    quote: bytes = b'"',
) -> tuple[list[bytes], bool]:
    """The chunks (copied once the cut is over: the views must stay valid) and rows_aligned."""
    cutter = StreamCutter(
        params, rows=rows, quote=quote, window=WINDOW_BYTES if window is None else window
    )
    source = io.BytesIO(data) if stream is None else stream
    views = list(cutter.cut(cast(BinaryIO, source)))
    assert all(isinstance(view, memoryview) and view.readonly for view in views)
    return [bytes(view) for view in views], cutter.rows_aligned


def expected_row_chunks(
    data: bytes, params: ChunkingParams, row_ends: list[int]
) -> tuple[list[bytes], bool]:
    """The chunks a row cutter should give, from FastCDC and the true row ends.

    Each chunk ends at the first row end at or after its FastCDC cut if that is at most
    ``max_size`` past the cut, else at the end of the data if that is at most as far;
    otherwise the cutter gives up on rows: that chunk ends at the cut, later chunks may
    start inside a row, and only the chunks up to there are predicted.
    """
    chunks: list[bytes] = []
    start = 0
    while start < len(data):
        fastcdc = start + len(chunk_bytes(data[start : start + params.max_size], params)[0])
        following = bisect.bisect_left(row_ends, fastcdc)
        if fastcdc == len(data):
            end = fastcdc
        elif following < len(row_ends) and row_ends[following] <= fastcdc + params.max_size:
            end = row_ends[following]
        elif len(data) <= fastcdc + params.max_size:
            end = len(data)
        else:
            chunks.append(data[start:fastcdc])
            return chunks, False
        chunks.append(data[start:end])
        start = end
    return chunks, True


def documented_row_chunks(
    data: bytes, params: ChunkingParams, quote: bytes = b'"'
) -> tuple[list[bytes], bool]:
    """The chunks and ``rows_aligned`` of the rule the module documents, for any bytes.

    The line a FastCDC cut falls in (the one holding the byte before the cut; counted from
    the chunk's start if it began earlier) is taken to start a row: the chunk ends after the
    first newline at or past the byte before the cut with an even number of quotes since
    that line's start, if that is at most ``max_size`` past the cut; else at the end of the
    data if that is as near; else at the cut, and the cutting is not row aligned. Neither is
    it if the first chunk holds no newline and is not all of the data.
    """
    chunks: list[bytes] = []
    aligned = True
    start = 0
    while start < len(data):
        cut = start + len(chunk_bytes(data[start : start + params.max_size], params)[0])
        end = cut
        if cut < len(data):
            line = max(start, data.rfind(b"\n", 0, cut - 1) + 1)
            reach = min(len(data), cut + params.max_size)
            newlines = [m.start() for m in re.finditer(b"\n", data[:reach])]
            even = [n for n in newlines if n >= cut - 1 and data.count(quote, line, n) % 2 == 0]
            if even:
                end = even[0] + 1
            elif reach == len(data):
                end = len(data)
            else:
                aligned = False
        if start == 0 and b"\n" not in data[:end] and end < len(data):
            aligned = False
        chunks.append(data[start:end])
        start = end
    return chunks, aligned


def assert_cut_at_rows(sample: CsvSample, chunks: list[bytes], aligned: bool) -> None:
    data = sample.data
    assert b"".join(chunks) == data
    assert aligned
    ends = set(sample.row_ends)
    offsets = [sum(map(len, chunks[: i + 1])) for i in range(len(chunks))]
    assert all(offset in ends for offset in offsets[:-1])
    assert all(0 < len(chunk) <= 2 * ROWS.max_size for chunk in chunks)


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("quote", [b"", b"''", b"\n", b"\r"])
def test_a_quote_that_is_not_one_byte_other_than_a_line_end_is_refused(quote: bytes) -> None:
    with pytest.raises(InvalidError, match="quote of a StreamCutter") as caught:
        StreamCutter(SMALL, rows=True, quote=quote)
    assert caught.value.field == "quote"


def test_a_window_smaller_than_two_max_sizes_is_refused() -> None:
    with pytest.raises(InvalidError, match=r"at least 2 \* max_size \(2048 bytes\)") as caught:
        StreamCutter(SMALL, window=2 * KiB - 1)
    assert caught.value.field == "window"
    assert StreamCutter(SMALL, window=2 * KiB).window == 2 * KiB


def test_the_default_window_grows_with_the_largest_chunk() -> None:
    large = ChunkingParams(min_size=64 * KiB, avg_size=256 * KiB, max_size=MAX_CHUNK_SIZE)
    assert StreamCutter(SMALL).window == WINDOW_BYTES
    assert StreamCutter(large).window == 2 * MAX_CHUNK_SIZE
    data = random.Random(3).randbytes(5 * MAX_CHUNK_SIZE // 2)
    assert [bytes(v) for v in StreamCutter(large).cut(io.BytesIO(data))] == chunk_bytes(data, large)


def test_text_streams_are_refused() -> None:
    cutter = StreamCutter(SMALL)
    with pytest.raises(InvalidError, match="binary stream") as caught:
        list(cutter.cut(cast(BinaryIO, io.StringIO("a,b\n"))))
    assert caught.value.field == "stream"


def test_an_empty_stream_gives_no_chunks() -> None:
    assert cut(b"", SMALL) == ([], False)
    assert cut(b"", SMALL, rows=True) == ([], True)
    assert cut(b"", SMALL, stream=ReadOnly(b"")) == ([], False)


# --- plain cutting --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=12_000),
    window=st.integers(min_value=2 * KiB, max_value=9 * KiB),
    step=st.integers(min_value=1, max_value=5000),
)
def test_plain_cuts_are_fastcdc_cuts_whatever_the_window_and_read_sizes(
    data: bytes, window: int, step: int
) -> None:
    expected = chunk_bytes(data, SMALL)
    assert cut(data, SMALL, window=window) == (expected, False)
    assert cut(data, SMALL, window=window, stream=ShortReads(data, step)) == (expected, False)
    assert cut(data, SMALL, window=window, stream=ReadOnly(data, step)) == (expected, False)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=30_000),
    window=st.integers(min_value=2 * KiB, max_value=9 * KiB),
    step=st.integers(min_value=1, max_value=5000),
    rows=st.booleans(),
)
def test_the_digest_sees_every_byte_of_the_stream_in_order(
    data: bytes, window: int, step: int, rows: bool
) -> None:
    digest = blake3.blake3()
    cutter = StreamCutter(SMALL, rows=rows, window=window)
    chunks = [bytes(c) for c in cutter.cut(cast(BinaryIO, ShortReads(data, step)), digest=digest)]
    assert b"".join(chunks) == data
    assert digest.hexdigest() == blake3.blake3(data).hexdigest()


def test_plain_cuts_of_several_windows_with_default_sizes_are_fastcdc_cuts() -> None:
    data = random.Random(1).randbytes(3 * MiB + 12_345)
    chunks, aligned = cut(data, ChunkingParams(), stream=ShortReads(data, 100_000))
    assert chunks == chunk_bytes(data)
    assert not aligned


def test_random_bytes_cut_by_rows_still_reassemble() -> None:
    # No structure at all: quotes and newlines at random. The cut points may give up on
    # rows, but the bytes always come back whole and chunks stay within two max sizes.
    for seed in range(20):
        data = random.Random(seed).randbytes(20_000)
        chunks, _ = cut(data, SMALL, rows=True, window=2 * KiB + seed)
        assert b"".join(chunks) == data
        assert all(0 < len(chunk) <= 2 * SMALL.max_size for chunk in chunks)


# --- cutting at rows ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    rows=st.integers(min_value=0, max_value=250),
    crlf=st.sampled_from([0.0, 0.3, 1.0]),
    empty_lines=st.sampled_from([0.0, 0.1]),
    trailing_newline=st.booleans(),
    window=st.sampled_from([8 * KiB, 8 * KiB + 1, 13 * KiB, WINDOW_BYTES]),
    step=st.integers(min_value=1, max_value=20_000),
)
def test_rows_cuts_end_at_row_ends_of_generated_csv(
    seed: int,
    rows: int,
    crlf: float,
    empty_lines: float,
    trailing_newline: bool,
    window: int,
    step: int,
) -> None:
    # Quoted commas and doubled quotes, but no line end inside a quoted value: every line
    # end is a row end, and every cut is one.
    generator = CsvRows(seed, crlf=crlf, quoted_newlines=False, long_strings=0.05)
    sample = generator.sample(rows, empty_lines=empty_lines, trailing_newline=trailing_newline)
    data = sample.data
    assert csv_records(data) == sample.records  # the row ends are those of a CSV reader
    expected = expected_row_chunks(data, ROWS, sample.row_ends)
    assert documented_row_chunks(data, ROWS) == expected
    chunks, aligned = cut(data, ROWS, rows=True, window=window, stream=ShortReads(data, step))
    assert (chunks, aligned) == expected
    assert_cut_at_rows(sample, chunks, aligned)
    assert cut(data, ROWS, rows=True, stream=ReadOnly(data, step)) == expected


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    rows=st.integers(min_value=0, max_value=250),
    crlf=st.sampled_from([0.0, 0.3, 1.0]),
    trailing_newline=st.booleans(),
    window=st.sampled_from([8 * KiB, 8 * KiB + 1, 13 * KiB, WINDOW_BYTES]),
    step=st.integers(min_value=1, max_value=20_000),
)
def test_rows_cuts_of_csv_with_quoted_line_ends_follow_the_documented_rule(
    seed: int, rows: int, crlf: float, trailing_newline: bool, window: int, step: int
) -> None:
    generator = CsvRows(seed, crlf=crlf, long_strings=0.05)
    sample = generator.sample(rows, empty_lines=0.05, trailing_newline=trailing_newline)
    data = sample.data
    assert csv_records(data) == sample.records
    assert true_row_ends(data) == set(sample.row_ends)
    expected = documented_row_chunks(data, ROWS)
    chunks, aligned = cut(data, ROWS, rows=True, window=window, stream=ShortReads(data, step))
    assert (chunks, aligned) == expected
    assert cut(data, ROWS, rows=True, stream=ReadOnly(data, step)) == expected
    assert b"".join(chunks) == data
    if aligned:  # every chunk ends after a newline (or at the end), the header in the first
        assert all(chunk.endswith(b"\n") for chunk in chunks[:-1])
        assert not chunks or b"\n" in chunks[0] or len(chunks) == 1


def test_cuts_may_fall_inside_quoted_values_that_span_lines() -> None:
    # Most line ends are inside quotes. The cut's line is taken to start a row, so a cut in
    # a value's second line ends the chunk after that line, inside the value: the cutter
    # cannot tell, and still reports the chunks row aligned (they end after newlines).
    rows = b"".join(b'%d,"line 1\nline 2\nline 3\nline 4",%d\n' % (i, i % 7) for i in range(3000))
    data = b"id,text,n\n" + rows
    chunks, aligned = cut(data, ROWS, rows=True)
    assert (chunks, aligned) == documented_row_chunks(data, ROWS)
    assert aligned
    ends = [sum(map(len, chunks[: i + 1])) for i in range(len(chunks) - 1)]
    row_ends = true_row_ends(data)
    inside = [end for end in ends if end not in row_ends]
    assert inside
    assert len(inside) < len(ends)
    # The first chunk to end inside a value starts at a row, so its quotes do not pair up:
    # that is how the per-chunk statistics find it out.
    first = ends.index(inside[0])
    assert chunks[first].count(b'"') % 2 == 1
    assert all(end in row_ends for end in ends[:first])


_FIELD = st.text(alphabet='ab,"\n\r é', max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    table=st.lists(st.lists(_FIELD | st.none(), min_size=1, max_size=4), max_size=120),
    seed=st.integers(min_value=0, max_value=1000),
    trailing_newline=st.booleans(),
)
def test_rows_cuts_follow_quoting_of_any_field_values(
    table: list[list[str | None]], seed: int, trailing_newline: bool
) -> None:
    generator = CsvRows(seed, crlf=0.5)
    lines: list[Line] = []
    for values in table:
        lines.append(generator.line(values) if values != [None] else generator.empty_line())
    sample = CsvSample(tuple(lines), trailing_newline=trailing_newline or not lines)
    data = sample.data
    assert csv_records(data) == sample.records
    chunks = cut(data, SMALL, rows=True, window=2 * KiB + seed)
    assert chunks == documented_row_chunks(data, SMALL)
    if not any("\n" in value for record in sample.records for value in record):
        # Quoted commas, quotes and carriage returns only: the cuts are at true row ends.
        expected = expected_row_chunks(data, SMALL, sample.row_ends)
        assert expected[1]  # rows are shorter than max_size
        assert chunks == expected


def test_rows_cuts_honour_another_quote_character() -> None:
    sample = CsvRows(5, quote="'", quoted_newlines=False).sample(300)
    data = sample.data
    assert csv_records(data, quote="'") == sample.records
    chunks, aligned = cut(data, ROWS, rows=True, quote=b"'")
    assert (chunks, aligned) == expected_row_chunks(data, ROWS, sample.row_ends)
    assert_cut_at_rows(sample, chunks, aligned)
    # With line ends in quoted values the quote decides which newlines end the chunks.
    quoted = CsvRows(5, quote="'").sample(300).data
    right = cut(quoted, ROWS, rows=True, quote=b"'")
    assert right == documented_row_chunks(quoted, ROWS, b"'")
    wrong = cut(quoted, ROWS, rows=True)
    assert wrong == documented_row_chunks(quoted, ROWS, b'"')
    assert b"".join(wrong[0]) == quoted
    assert wrong[0] != right[0]


def test_a_csv_without_any_line_end_is_one_chunk_if_short_enough() -> None:
    data = b"a,b,c"
    assert cut(data, SMALL, rows=True) == ([data], True)


def test_a_last_row_without_line_end_within_max_size_ends_the_last_chunk() -> None:
    generator = CsvRows(8, crlf=0.0, quoted_newlines=False)
    sample = generator.sample(120, trailing_newline=False)
    chunks, aligned = cut(sample.data, ROWS, rows=True)
    assert (chunks, aligned) == expected_row_chunks(sample.data, ROWS, sample.row_ends)
    assert chunks[-1].endswith(sample.lines[-1].text.rstrip(b"\r\n"))


def _with_long_line(sample: CsvSample, index: int, length: int) -> CsvSample:
    long = Line(("x" * length,), b"x" * length + b"\n")
    lines = list(sample.lines)
    lines[index] = long
    return CsvSample(tuple(lines), sample.trailing_newline)


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_a_row_longer_than_max_size_gives_up_on_rows_and_still_round_trips(where: str) -> None:
    sample = CsvRows(3, quoted_newlines=False).sample(400)
    index = {"header": 0, "middle": 200, "last": len(sample.lines) - 1}[where]
    long = _with_long_line(sample, index, 3 * ROWS.max_size)
    long = CsvSample(long.lines, trailing_newline=where != "last")
    data = long.data
    chunks, aligned = cut(data, ROWS, rows=True)
    assert b"".join(chunks) == data
    assert not aligned
    expected, expected_aligned = expected_row_chunks(data, ROWS, long.row_ends)
    assert not expected_aligned
    assert chunks[: len(expected)] == expected
    assert (chunks, aligned) == documented_row_chunks(data, ROWS)
    assert all(len(chunk) <= 2 * ROWS.max_size for chunk in chunks)


def test_a_header_that_does_not_end_in_the_first_chunk_is_not_row_aligned() -> None:
    header = ",".join(f"column_{i}" for i in range(800)).encode() + b"\n"
    assert len(header) > 2 * ROWS.max_size
    data = header + b"1,2\n" * 100
    chunks, aligned = cut(data, ROWS, rows=True)
    assert not aligned
    assert b"\n" not in chunks[0]
    assert b"".join(chunks) == data


def test_a_row_just_under_max_size_past_the_cut_keeps_rows_aligned() -> None:
    sample = CsvRows(4, quoted_newlines=False).sample(200)
    long = _with_long_line(sample, 100, ROWS.max_size - 10)
    chunks, aligned = cut(long.data, ROWS, rows=True)
    assert (chunks, aligned) == expected_row_chunks(long.data, ROWS, long.row_ends)
    assert aligned


def test_rows_cuts_are_deterministic_and_independent_of_the_window() -> None:
    data = CsvRows(11, long_strings=0.02).sample(4000).data
    first = cut(data, ROWS, rows=True)
    assert first[1]
    assert cut(data, ROWS, rows=True) == first
    assert cut(data, ROWS, rows=True, window=2 * ROWS.max_size) == first
    assert cut(data, ROWS, rows=True, stream=ShortReads(data, 777)) == first


def test_an_edit_in_the_middle_of_a_large_csv_changes_only_nearby_chunks() -> None:
    params = ChunkingParams(min_size=KiB, avg_size=4 * KiB, max_size=16 * KiB)
    generator = CsvRows(21)
    sample = generator.sample(20_000)
    lines = list(sample.lines)
    lines[10_000] = generator.row(99_999)  # an edit
    lines.insert(15_000, generator.row(100_000))  # an insert
    del lines[5_000]  # a delete
    edited = CsvSample(tuple(lines))
    before, aligned_before = cut(sample.data, params, rows=True)
    after, aligned_after = cut(edited.data, params, rows=True)
    assert aligned_before
    assert aligned_after
    assert len(sample.data) > WINDOW_BYTES  # cut across several read windows
    known = {chunk_address(chunk) for chunk in before}
    new = [chunk for chunk in after if chunk_address(chunk) not in known]
    assert len(after) > 200
    assert len(new) <= 12
    assert sum(map(len, new)) < 0.02 * len(edited.data)


# --- guided cutting -------------------------------------------------------------------------


def guide_of(chunks: list[bytes]) -> CutGuide:
    """The guide a cut into ``chunks`` leaves for the next version."""
    return CutGuide(
        [chunk_address(c) for c in chunks], [len(c) for c in chunks], bytes(c[0] for c in chunks)
    )


def guided(
    data: bytes, guide: CutGuide, params: ChunkingParams, *, rows: bool, window: int | None = None
) -> tuple[list[bytes], list[str], bool]:
    """Chunks, addresses and rows_aligned of a guided cut (chunks copied as they come)."""
    cutter = StreamCutter(params, rows=rows, window=WINDOW_BYTES if window is None else window)
    digest = blake3.blake3()
    pairs = [(bytes(c), a) for c, a in cutter.cut_guided(io.BytesIO(data), guide, digest=digest)]
    assert digest.hexdigest() == blake3.blake3(data).hexdigest()
    return [c for c, _ in pairs], [a for _, a in pairs], cutter.rows_aligned


def edit(rng: random.Random, data: bytes, edits: int, *, rows: bool) -> bytes:
    """``data`` with ``edits`` random replacements, insertions and deletions (lines if rows)."""
    if rows:
        lines = data.splitlines(keepends=True)
        for _ in range(edits):
            where = rng.randrange(len(lines) + 1)
            fresh = [
                b"%d,%s\n"
                % (rng.randrange(10**6), rng.randbytes(rng.randrange(1, 20)).hex().encode())
            ]
            lines[where : where + rng.randrange(2)] = fresh if rng.random() < 0.8 else []
        return b"".join(lines)
    out = bytearray(data)
    for _ in range(edits):
        where = rng.randrange(len(out) + 1)
        out[where : where + rng.randrange(40)] = rng.randbytes(rng.randrange(40))
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), rows=st.booleans(), edits=st.integers(0, 12))
def test_a_guided_cut_gives_the_chunks_of_a_plain_cut(seed: int, rows: bool, edits: int) -> None:
    rng = random.Random(seed)
    if rows:
        parent = b"".join(
            b"%d,%s\n" % (n, rng.randbytes(rng.randrange(1, 30)).hex().encode())
            for n in range(2000)
        )
        params = ROWS
    else:
        parent = rng.randbytes(60_000)
        params = SMALL
    child = edit(rng, parent, edits, rows=rows)
    parent_chunks, _ = cut(parent, params, rows=rows, window=8 * params.max_size)
    expected, aligned = cut(child, params, rows=rows, window=8 * params.max_size)
    chunks, addresses, guided_aligned = guided(
        child, guide_of(parent_chunks), params, rows=rows, window=8 * params.max_size
    )
    assert chunks == expected
    assert addresses == [chunk_address(c) for c in chunks]
    assert guided_aligned == aligned


def test_a_guided_cut_follows_the_guide_and_searches_only_around_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(5)
    parent = b"".join(
        b"%d,%s\n" % (n, rng.randbytes(rng.randrange(1, 30)).hex().encode()) for n in range(20_000)
    )
    lines = parent.splitlines(keepends=True)
    lines[10_000] = b"10000,changed\n"
    child = b"".join(lines) + b"20000,appended\n"
    parent_chunks, _ = cut(parent, ROWS, rows=True)
    expected, _ = cut(child, ROWS, rows=True)
    searches = 0
    search = StreamCutter._ends

    def counted(self: StreamCutter, window: Any, most: int, first: bool) -> list[int]:
        nonlocal searches
        searches += 1
        return search(self, window, most, first)

    monkeypatch.setattr(StreamCutter, "_ends", counted)
    chunks, _, aligned = guided(child, guide_of(parent_chunks), ROWS, rows=True)
    assert chunks == expected
    assert aligned
    # The first chunk, the edited one and the stream's last reach of bytes (two max_size
    # of rows, chunks of at least min_size) are searched for; all else is guided.
    assert searches <= 2 + 2 * ROWS.max_size // ROWS.min_size
    assert len(chunks) > 500


@pytest.mark.parametrize("damage", ["addresses", "sizes", "firsts"])
def test_a_wrong_guide_costs_time_only(damage: str) -> None:
    rng = random.Random(9)
    data = b"".join(
        b"%d,%s\n" % (n, rng.randbytes(rng.randrange(1, 30)).hex().encode()) for n in range(3000)
    )
    chunks, _ = cut(data, ROWS, rows=True)
    good = guide_of(chunks)
    bad = {
        "addresses": good._replace(addresses=[a[::-1] for a in good.addresses]),
        "sizes": good._replace(sizes=[s + 1 for s in good.sizes]),
        "firsts": good._replace(firsts=bytes((b + 1) % 256 for b in good.firsts)),
    }[damage]
    assert guided(data, bad, ROWS, rows=True)[0] == chunks


class _FailingDigest:
    def __init__(self) -> None:
        self.updates = 0

    def update(self, data: memoryview, /) -> None:
        self.updates += 1
        if self.updates == 2:
            raise OSError("digest failed")


@pytest.mark.parametrize("guided", [False, True])
def test_a_digest_error_stops_the_cut(guided: bool) -> None:
    data = random.Random(7).randbytes(40 * KiB)
    cutter = StreamCutter(SMALL, window=2 * SMALL.max_size)
    digest = _FailingDigest()
    with pytest.raises(OSError, match="digest failed"):
        if guided:
            guide = CutGuide([chunk_address(c) for c in chunk_bytes(data, SMALL)], [], b"")
            list(cutter.cut_guided(io.BytesIO(data), guide, digest=digest))
        else:
            list(cutter.cut(io.BytesIO(data), digest=digest))


def test_a_cut_left_early_stops_hashing_and_its_thread() -> None:
    data = random.Random(8).randbytes(3 * MiB)
    digest = blake3.blake3()
    chunks = StreamCutter(SMALL).cut(io.BytesIO(data), digest=digest)
    next(chunks)
    chunks.close()
    for thread in threading.enumerate():
        if thread.name.startswith("file-hash"):
            thread.join(5)
            assert not thread.is_alive()


@pytest.mark.parametrize("rows", [False, True])
def test_chunks_kept_as_views_keep_their_bytes_while_later_windows_are_read(rows: bool) -> None:
    # Windows are refilled once no view of them is left: views still held must not see
    # a later window's bytes.
    rng = random.Random(11)
    data = b"".join(b"%d,%s\n" % (n, rng.randbytes(20).hex().encode()) for n in range(60_000))
    cutter = StreamCutter(SMALL, rows=rows, window=2 * SMALL.max_size)
    views = list(cutter.cut(io.BytesIO(data)))
    assert b"".join(views) == data
    expected = [bytes(c) for c in views]
    # Half the views dropped as they come (their windows reused), half kept.
    cutter = StreamCutter(SMALL, rows=rows, window=2 * SMALL.max_size)
    kept = [(n, view) for n, view in enumerate(cutter.cut(io.BytesIO(data))) if n % 7 == 0]
    assert all(bytes(view) == expected[n] for n, view in kept)


def test_a_window_no_view_is_left_of_is_refilled() -> None:
    data = random.Random(12).randbytes(40 * KiB)
    window = _Window(io.BytesIO(data), 4 * KiB)
    buffers = set()
    while window.fill(1):
        buffers.add(id(window.data))
        window.pos = len(window.data)
    assert len(buffers) <= 2  # the first window, and one refilled over and over
    held = _Window(io.BytesIO(data), 4 * KiB)
    views, buffers = [], set()
    while held.fill(1):
        buffers.add(id(held.data))
        views.append(held.view[:10])
        held.pos = len(held.data)
    assert len(buffers) == 10  # every window still viewed: none refilled
