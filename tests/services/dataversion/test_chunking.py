"""Tests of content-defined chunking and of the canonical chunk addressing."""

from __future__ import annotations

import io
import random
import tracemalloc
from typing import BinaryIO, cast

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunking import (
    DEFAULT_CHUNKING,
    ChunkingParams,
    KiB,
    MiB,
    address_of_key,
    chunk_address,
    chunk_bytes,
    chunk_key,
    is_digest,
    iter_chunks,
    validate_digest,
)

# Small sizes give many chunks from small examples, so properties see real cut points.
SMALL = ChunkingParams(min_size=64, avg_size=256, max_size=1024)
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


class ShortReads(io.RawIOBase):
    """A stream whose reads return at most ``step`` bytes, as sockets and pipes do."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._step, len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


class ReadOnly:
    """A stream with ``read`` (at most ``step`` bytes at a time) and no ``readinto``."""

    def __init__(self, data: bytes, step: int = 1 << 30) -> None:
        self._stream = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(min(size, self._step))


class GeneratedStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on the fly, never all in memory at once."""

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__()
        self._left = size
        self._random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, 64 * KiB)
        buffer[:count] = self._random.randbytes(count)
        self._left -= count
        return count


# --- parameters -----------------------------------------------------------------------------


def test_default_params_aim_at_chunks_of_tens_of_kib() -> None:
    assert ChunkingParams(4 * KiB, 16 * KiB, 128 * KiB) == DEFAULT_CHUNKING


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_size": 63}, "min_size"),
        ({"min_size": MiB + 1, "avg_size": 2 * MiB, "max_size": 4 * MiB}, "min_size"),
        ({"avg_size": 255, "min_size": 64}, "avg_size"),
        ({"max_size": 16 * MiB + 1}, "max_size"),
        ({"max_size": 1023}, "max_size"),
        ({"min_size": True}, "min_size"),
        ({"avg_size": 65536.0}, "avg_size"),
        ({"min_size": 128 * KiB}, "avg_size"),  # min > avg
        ({"avg_size": 512 * KiB}, "avg_size"),  # avg > max
    ],
)
def test_params_out_of_range_are_refused_naming_the_parameter(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        ChunkingParams(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert "ChunkingParams" in caught.value.detail


# --- cutting --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=20_000))
def test_chunks_reassemble_exactly_and_respect_the_size_bounds(data: bytes) -> None:
    chunks = chunk_bytes(data, SMALL)
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= SMALL.max_size for chunk in chunks)
    assert all(len(chunk) >= SMALL.min_size for chunk in chunks[:-1])


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=20_000), step=st.integers(min_value=1, max_value=3000))
def test_streaming_gives_the_same_chunks_whatever_the_read_sizes(data: bytes, step: int) -> None:
    expected = chunk_bytes(data, SMALL)
    assert list(iter_chunks(cast(BinaryIO, ShortReads(data, step)), SMALL)) == expected
    assert list(iter_chunks(io.BytesIO(data), SMALL)) == expected
    assert list(iter_chunks(cast(BinaryIO, ReadOnly(data)), SMALL)) == expected


def test_streaming_matches_in_memory_chunking_with_default_params() -> None:
    data = random_bytes(3 * MiB)
    streamed = list(iter_chunks(cast(BinaryIO, ShortReads(data, 10_000))))
    assert streamed == chunk_bytes(data)


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_bytes(b"") == []
    assert list(iter_chunks(io.BytesIO(b""))) == []


def test_chunking_is_deterministic() -> None:
    data = random_bytes(MiB, seed=3)
    assert chunk_bytes(data) == chunk_bytes(bytearray(data)) == chunk_bytes(memoryview(data))


def test_mean_chunk_size_on_random_data_is_min_plus_avg() -> None:
    chunks = chunk_bytes(random_bytes(8 * MiB, seed=1))
    mean = sum(map(len, chunks)) / len(chunks)
    assert 15 * KiB < mean < 25 * KiB


def test_insert_in_the_middle_changes_only_nearby_chunks() -> None:
    data = random_bytes(8 * MiB, seed=7)
    edited = data[: 4 * MiB] + b"inserted bytes" * 10 + data[4 * MiB :]
    before = {chunk_address(chunk) for chunk in chunk_bytes(data)}
    after = [chunk_address(chunk) for chunk in chunk_bytes(edited)]
    changed = [address for address in after if address not in before]
    assert len(after) > 80
    # The cut points resynchronise within a few chunks of the edit.
    assert len(changed) <= 5
    assert len(changed) / len(after) < 0.1


def test_append_keeps_every_chunk_but_the_last() -> None:
    data = random_bytes(4 * MiB, seed=8)
    old = [chunk_address(chunk) for chunk in chunk_bytes(data)]
    new = [chunk_address(chunk) for chunk in chunk_bytes(data + random_bytes(MiB, seed=9))]
    assert new[: len(old) - 1] == old[:-1]


def test_delete_in_the_middle_changes_only_nearby_chunks() -> None:
    data = random_bytes(8 * MiB, seed=10)
    edited = data[: 3 * MiB] + data[3 * MiB + 5000 :]
    before = {chunk_address(chunk) for chunk in chunk_bytes(data)}
    after = [chunk_address(chunk) for chunk in chunk_bytes(edited)]
    assert sum(address not in before for address in after) <= 5


def test_streaming_memory_stays_bounded_by_the_chunk_size() -> None:
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in iter_chunks(cast(BinaryIO, GeneratedStream(32 * MiB))))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 32 * MiB
    assert peak < 4 * MiB


def test_text_streams_are_refused() -> None:
    with pytest.raises(InvalidError, match="binary stream"):
        iter_chunks(cast(BinaryIO, io.StringIO("text")))


# --- addressing -----------------------------------------------------------------------------


@given(data=st.binary(max_size=5000))
def test_address_is_the_blake3_hex_of_the_raw_bytes(data: bytes) -> None:
    address = chunk_address(data)
    assert address == blake3.blake3(data).hexdigest() == chunk_address(bytearray(data))
    assert is_digest(address)


def test_address_matches_the_published_blake3_vector() -> None:
    assert chunk_address(b"") == EMPTY_BLAKE3


@given(address=st.binary(min_size=32, max_size=32).map(bytes.hex))
def test_chunk_keys_fan_out_on_the_first_two_hex_digits(address: str) -> None:
    key = chunk_key(address)
    assert key == f"chunks/{address[:2]}/{address[2:]}"
    assert address_of_key(key) == address


@pytest.mark.parametrize(
    "value",
    ["", "abc", EMPTY_BLAKE3.upper(), EMPTY_BLAKE3[:-1] + "g", EMPTY_BLAKE3 + "0", 42, None],
)
def test_malformed_digests_are_refused(value: object) -> None:
    assert not is_digest(value)
    with pytest.raises(InvalidError, match="BLAKE3 digest") as caught:
        validate_digest(value, field="content_hash")  # type: ignore[arg-type]
    assert caught.value.field == "content_hash"


def test_long_malformed_digests_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidError) as caught:
        chunk_key("x" * 500)
    assert len(caught.value.detail) < 250


@pytest.mark.parametrize(
    "key",
    [
        "manifests/" + EMPTY_BLAKE3,
        "chunks/" + EMPTY_BLAKE3,
        f"chunks/{EMPTY_BLAKE3[:3]}/{EMPTY_BLAKE3[3:]}",
        f"chunks/{EMPTY_BLAKE3[:2]}/{EMPTY_BLAKE3[2:]}.tmp",
        f"chunks/{EMPTY_BLAKE3[:2]}/x/{EMPTY_BLAKE3[2:]}",
    ],
)
def test_non_canonical_keys_name_no_chunk(key: str) -> None:
    assert address_of_key(key) is None
