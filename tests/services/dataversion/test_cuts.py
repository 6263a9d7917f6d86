"""Oracle tests of the compiled cutting (``_cuts.c``): BLAKE3 against the blake3 package,
FastCDC cuts against pyfastcdc.

Chunk addresses and cut points are storage contracts: the compiled hash must give the
digest of the blake3 package (the official Rust implementation) for every input, or guided
cuts would stop matching their guides, and the compiled cuts must be pyfastcdc's, or new
versions would stop sharing chunks with the versions stored before. The inputs cover the shapes the
tree hashing and the eight-lane path depend on: lengths around block (64 B) and chunk
(1 KiB) boundaries, counts of full chunks around multiples of eight, and deep trees.
"""

from __future__ import annotations

import random
from array import array
from itertools import accumulate
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.services.dataversion._cuts import addresses, cuts, follow
from synapsenet.services.dataversion.chunking import ChunkingParams, chunk_bytes, fastcdc_args

BOUNDARY_LENGTHS = sorted(
    {0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025}
    | {n * 1024 + d for n in (2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33) for d in (-1, 0, 1, 500)}
    | {128 * 1024, 128 * 1024 + 1, 256 * 1024 - 1, 1024 * 1024 + 7}
)


def reference(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_digests_equal_the_blake3_package_at_block_and_chunk_boundaries(length: int) -> None:
    data = random.Random(length).randbytes(length)
    assert addresses(data, 0, [length]) == [reference(data)]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40_000))
def test_digests_of_any_bytes_equal_the_blake3_package(data: bytes) -> None:
    assert addresses(data, 0, [len(data)]) == [reference(data)]


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    sizes=st.lists(st.integers(0, 70_000), max_size=12),
    start=st.integers(0, 100),
)
def test_consecutive_pieces_each_get_their_own_digest(
    seed: int, sizes: list[int], start: int
) -> None:
    data = random.Random(seed).randbytes(start + sum(sizes) + 3)
    expected = []
    at = start
    for size in sizes:
        expected.append(reference(data[at : at + size]))
        at += size
    assert addresses(memoryview(data), start, sizes) == expected


def test_a_large_call_releasing_the_gil_and_a_deep_tree_agree() -> None:
    data = random.Random(3).randbytes(5 * 1024 * 1024 + 333)
    sizes = [len(data) - 10, 10]
    assert addresses(bytearray(data), 0, sizes) == [
        reference(data[: sizes[0]]),
        reference(data[sizes[0] :]),
    ]


@pytest.mark.parametrize(
    ("start", "sizes", "message"),
    [
        (-1, [1], "start -1 is outside"),
        (11, [], "start 11 is outside"),
        (0, [11], "size 11 at byte 0 runs past"),
        (4, [3, 4], "size 4 at byte 7 runs past"),
        (0, [-1], "size -1 at byte 0 runs past"),
    ],
)
def test_pieces_outside_the_buffer_are_refused(start: int, sizes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        addresses(b"0123456789", start, sizes)


def test_sizes_must_be_ints() -> None:
    with pytest.raises(TypeError):
        addresses(b"0123456789", 0, ["1"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of ints"):
        addresses(b"0123456789", 0, 5)  # type: ignore[arg-type]


# --- follow -----------------------------------------------------------------------------

MIN, REACH = 64, 1025  # a min_size, and the reach of max_size 1 KiB without rows


def packed(chunks: list[bytes]) -> tuple[array[int], bytes, bytes]:
    """A guide of ``chunks`` as follow() takes it: sizes, first bytes, digests."""
    return (
        array("q", map(len, chunks)),
        bytes(c[0] for c in chunks),
        b"".join(blake3.blake3(c).digest() for c in chunks),
    )


def pieces(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(rng.randrange(MIN, REACH)) for _ in range(count)]


def test_follow_takes_guide_chunks_until_the_bytes_differ() -> None:
    rng = random.Random(1)
    chunks = pieces(rng, 12)
    sizes, firsts, digests = packed(chunks)
    changed = bytearray(chunks[6])
    changed[5] ^= 1  # same size, same first byte, other bytes
    data = b"".join(chunks[:6]) + bytes(changed) + b"".join(chunks[7:]) + rng.randbytes(REACH)
    stop, number, other = follow(data, 0, 0, sizes, firsts, digests, MIN, REACH, -1)
    assert (stop, number) == (sum(map(len, chunks[:6])), 6)
    assert other == reference(bytes(changed))


def test_follow_stops_without_hashing_where_the_byte_checks_fail() -> None:
    rng = random.Random(2)
    chunks = pieces(rng, 8)
    sizes, firsts, digests = packed(chunks)
    data = b"".join(chunks[:3]) + b"".join(chunks[4:]) + rng.randbytes(REACH)  # one dropped
    first_after = sum(map(len, chunks[:2]))
    stop, number, other = follow(data, 0, 0, sizes, firsts, digests, MIN, REACH, -1)
    # Chunk 2 is followed by chunk 4's first byte, not chunk 3's (unless they are equal).
    if chunks[3][0] != chunks[4][0]:
        assert (stop, number, other) == (first_after, 2, None)


def test_follow_stops_where_the_bytes_left_are_fewer_than_the_reach() -> None:
    rng = random.Random(3)
    chunks = pieces(rng, 40)
    sizes, firsts, digests = packed(chunks)
    data = b"".join(chunks)
    stop, number, other = follow(data, 0, 0, sizes, firsts, digests, MIN, REACH, -1)
    assert other is None
    assert len(data) - stop < REACH <= len(data) - (stop - len(chunks[number - 1]))
    assert stop == sum(map(len, chunks[:number]))


def test_follow_never_takes_the_guides_last_chunk_or_a_size_no_cut_gives() -> None:
    rng = random.Random(4)
    chunks = [*pieces(rng, 3), rng.randbytes(20)]
    sizes, firsts, digests = packed(chunks)
    data = b"".join(chunks) + rng.randbytes(3 * REACH)
    assert follow(data, 0, 0, sizes, firsts, digests, MIN, REACH, -1)[:2] == (
        sum(map(len, chunks[:3])),
        3,
    )
    assert follow(data, 0, 0, sizes, firsts, digests, REACH, 2 * REACH, -1)[:2] == (0, 0)


def test_follow_at_rows_needs_a_line_end_after_an_even_number_of_quotes() -> None:
    quote = ord('"')
    # A quoted line end inside, but the last line holds two quotes: a row end.
    spanning = b'1,"a\nb",x\n' * 20 + b'9,"ok",k\n'
    chunks = [spanning, b'2,"c",y\n' * 20, b"3,z\n" * 30, b"4,w\n" * 30]
    sizes, firsts, digests = packed(chunks)
    data = b"".join(chunks) + b"5,v\n" * 1000
    reach = 2 * 1024 + 1
    assert follow(data, 0, 0, sizes, firsts, digests, 8, reach, quote)[:2] == (
        sum(map(len, chunks[:3])),
        3,
    )
    odd = [b'1,"a\nb",c\n', *chunks[1:]]  # its last line holds one quote: not a row end
    sizes, firsts, digests = packed(odd)
    data = b"".join(odd) + b"5,v\n" * 1000
    assert follow(data, 0, 0, sizes, firsts, digests, 4, reach, quote) == (0, 0, None)
    no_end = [b"1,a,no line end", *chunks[1:]]
    sizes, firsts, digests = packed(no_end)
    data = b"".join(no_end) + b"5,v\n" * 1000
    assert follow(data, 0, 0, sizes, firsts, digests, 4, reach, quote) == (0, 0, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, b"\0" * 7, b"a", b"\0" * 32), "8-byte sizes"),
        ((0, 0, b"\0" * 8, b"ab", b"\0" * 32), "as many chunks"),
        ((0, 0, b"\0" * 8, b"a", b"\0" * 31), "as many chunks"),
        ((-1, 0, b"\0" * 8, b"a", b"\0" * 32), "start -1"),
        ((0, -1, b"\0" * 8, b"a", b"\0" * 32), "number -1"),
    ],
)
def test_follow_refuses_a_guide_whose_fields_disagree(
    args: tuple[int, int, bytes, bytes, bytes], message: str
) -> None:
    start, number, sizes, firsts, digests = args
    with pytest.raises(ValueError, match=message):
        follow(b"x" * 100, start, number, sizes, firsts, digests, MIN, REACH, -1)


# --- cuts ---------------------------------------------------------------------------------


@st.composite
def chunking_params(draw: st.DrawFn) -> ChunkingParams:
    min_size = draw(st.integers(64, 4096))
    avg_size = draw(st.integers(max(256, min_size), 16_384))
    max_size = draw(st.integers(max(1024, avg_size), 65_536))
    return ChunkingParams(min_size, avg_size, max_size)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200_000), params=chunking_params(), seed=st.integers(0, 2**32))
def test_cuts_are_the_cuts_of_pyfastcdc(data: bytes, params: ChunkingParams, seed: int) -> None:
    # Random bytes are mostly low-entropy from hypothesis; mix in random ones.
    data += random.Random(seed).randbytes(seed % 150_000)
    expected = list(accumulate(len(c) for c in chunk_bytes(data, params)))
    ends, aligned = cuts(data, 0, params.max_size + 1, True, -1, *fastcdc_args(params), -1)
    assert ends == expected
    assert aligned


def test_cuts_stop_where_the_reach_runs_out_unless_at_the_end() -> None:
    params = ChunkingParams(1024, 4096, 16_384)
    data = random.Random(5).randbytes(300_000)
    every = list(accumulate(len(c) for c in chunk_bytes(data, params)))
    reach = params.max_size + 1
    ends, _ = cuts(data, 0, reach, False, -1, *fastcdc_args(params), -1)
    assert ends == [end for n, end in enumerate(every) if len(data) - ([0, *every][n]) >= reach]
    assert cuts(data, every[2], reach, False, 2, *fastcdc_args(params), -1)[0] == every[3:5]
    assert cuts(data, len(data), reach, True, -1, *fastcdc_args(params), -1) == ([], True)


def test_cuts_at_rows_end_after_a_line_end_outside_quotes() -> None:
    params = ChunkingParams(64, 256, 1024)
    rows = b"".join(b'%d,"x,y",%s\n' % (n, b"z" * (n % 37)) for n in range(3000))
    ends, aligned = cuts(rows, 0, 2 * params.max_size + 1, True, -1, *fastcdc_args(params), 34)
    assert aligned
    assert ends[-1] == len(rows)
    for end in ends:
        # Each chunk ends after a whole row: the next starts with a row number.
        assert rows[end - 1 : end] == b"\n"
        assert end == len(rows) or rows[end : end + 1].isdigit()
    one_long_row = b"a" * 5000 + b"\n"
    ends, aligned = cuts(one_long_row * 3, 0, 2049, False, -1, *fastcdc_args(params), 34)
    assert not aligned  # no line end within max_size of a cut: the cut stays


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gear": b"\0" * 8}, "gear tables of 256 uint64"),
        ({"start": -1}, "start -1"),
        ({"reach": 0}, "reach 0"),
        ({"sizes": (300, 200, 1024)}, "sizes 300/200/1024"),
        ({"quote": 256}, "quote 256"),
    ],
)
def test_cuts_refuses_arguments_out_of_range(change: dict[str, Any], message: str) -> None:
    args = fastcdc_args(ChunkingParams(64, 256, 1024))
    sizes = change.get("sizes", args[:3])
    gear = change.get("gear", args[5])
    with pytest.raises(ValueError, match=message):
        cuts(
            b"x" * 5000,
            change.get("start", 0),
            change.get("reach", 1025),
            True,
            -1,
            sizes[0],
            sizes[1],
            sizes[2],
            args[3],
            args[4],
            gear,
            args[6],
            change.get("quote", -1),
        )
