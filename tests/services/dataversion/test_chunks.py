"""Tests of the chunk store: dedup, codecs, verification, whole files and the sweep.

Every store-facing test runs on both backends: a local directory and a real S3-compatible
server (moto, started by the fixtures).
"""

from __future__ import annotations

import io
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

import blake3
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapsenet.core.storage import LocalObjectStore, ObjectData, ObjectInfo, ObjectStore
from synapsenet.errors import InvalidError, NotFoundError, UnavailableError
from synapsenet.services.dataversion.chunk_codec import ChunkCodec, Compression
from synapsenet.services.dataversion.chunking import (
    MAX_CHUNK_SIZE,
    ChunkingParams,
    MiB,
    chunk_address,
    chunk_bytes,
    chunk_key,
)
from synapsenet.services.dataversion.chunks import (
    ChunkRef,
    ChunkStore,
    CorruptDataError,
    FileEntry,
    SweepReport,
    WrittenFile,
    validate_path,
)
from synapsenet.services.dataversion.condemned import CONDEMNED_KEY
from synapsenet.services.dataversion.packs import pack_key
from tests.services.dataversion.test_chunking import (
    EMPTY_BLAKE3,
    SMALL,
    GeneratedStream,
    random_bytes,
)

# Chunks of a few KiB: enough of them per file to test order, few enough for S3 round trips.
MEDIUM = ChunkingParams(min_size=1024, avg_size=4096, max_size=16_384)
TEXT = b"".join(b"%d,user_%d,%d.5\n" % (i, i % 97, i * 3) for i in range(20_000))
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each backend in turn."""
    return cast(ObjectStore, request.getfixturevalue(f"{request.param}_store"))


class RecordingStore:
    """Delegates to a real store, counting puts and optionally faking times or failures."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.puts: list[str] = []
        self.gets = 0
        self.modified: dict[str, datetime] = {}
        self.vanished: set[str] = set()
        self.fail_after: int | None = None
        self.fail_deletes = False
        self._lock = threading.Lock()

    def put(self, key: str, data: ObjectData) -> ObjectInfo:
        with self._lock:
            if self.fail_after is not None and len(self.puts) >= self.fail_after:
                raise UnavailableError("The disk is full.")
            self.puts.append(key)
        return self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        with self._lock:
            self.gets += 1
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._lock:
            self.gets += 1
        return self.inner.get_range(key, offset, length)

    def iter_chunks(self, key: str, chunk_size: int = MiB) -> Iterator[bytes]:
        return self.inner.iter_chunks(key, chunk_size)

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self.inner.open(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def stat(self, key: str) -> ObjectInfo:
        if key in self.vanished:
            raise NotFoundError(f"Object {key!r} does not exist.")
        info = self.inner.stat(key)
        return ObjectInfo(info.key, info.size, self.modified.get(key, info.modified))

    def delete(self, key: str) -> bool:
        if self.fail_deletes:
            raise UnavailableError("The store refuses deletes.")
        return self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def deferred_sync(self) -> AbstractContextManager[None]:
        return self.inner.deferred_sync()

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def stored(store: ObjectStore, data: bytes) -> bytes:
    return store.get(chunk_key(chunk_address(data)))


def write(chunks: ChunkStore, data: bytes, path: str = "data/file.bin") -> FileEntry:
    """Write ``data`` as one file in small chunks (a few KiB each), packed."""
    return chunks.write_stream(path, io.BytesIO(data), params=MEDIUM)


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../secret", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("./a", "'.' segment"),
        ("a/.", "'.' segment"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x85b", "control character"),
        ("a\udc80", "lone surrogate"),
        ("d/" + "x" * 256, "longer than 255 bytes"),
        (7, "must be a str"),
    ],
)
def test_unsafe_paths_are_refused_naming_the_path(path: str, problem: str) -> None:
    with pytest.raises(InvalidError, match="Invalid file path") as caught:
        validate_path(path)
    assert problem in caught.value.detail
    assert caught.value.field == "path"


@pytest.mark.parametrize(
    "path", ["a", "data/train.csv", "é/ü ñ.txt", ".hidden", "..a/b..", "x" * 255]
)
def test_safe_relative_paths_are_accepted(path: str) -> None:
    assert validate_path(path) == path


def test_long_invalid_paths_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidError) as caught:
        validate_path("/" + "x" * 1000)
    assert len(caught.value.detail) < 200


def test_chunk_refs_need_an_address_and_a_positive_size() -> None:
    with pytest.raises(InvalidError, match="BLAKE3"):
        ChunkRef("nope", 1)
    with pytest.raises(InvalidError, match="'size' of ChunkRef must be an int >= 1"):
        ChunkRef(EMPTY_BLAKE3, 0)
    with pytest.raises(InvalidError, match="'size' of ChunkRef"):
        ChunkRef(EMPTY_BLAKE3, True)


def test_file_entries_check_that_chunk_sizes_add_up() -> None:
    ref = ChunkRef(EMPTY_BLAKE3, 10)
    assert FileEntry("a", 20, EMPTY_BLAKE3, (ref, ref)).size == 20
    with pytest.raises(InvalidError, match="add up to 20 bytes") as caught:
        FileEntry("a", 21, EMPTY_BLAKE3, (ref, ref))
    assert caught.value.field == "size"
    with pytest.raises(InvalidError, match="tuple of ChunkRef"):
        FileEntry("a", 10, EMPTY_BLAKE3, [ref])  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="content_hash"):
        FileEntry("a", 0, "abc", ())
    with pytest.raises(InvalidError, match=r"Invalid file path '\.\./a'"):
        FileEntry("../a", 0, EMPTY_BLAKE3, ())


def test_corrupt_data_errors_map_to_a_500_problem_naming_the_object() -> None:
    error = CorruptDataError("Chunk abc", "its object 'chunks/ab/c' is empty", key="chunks/ab/c")
    problem = error.to_problem()
    assert problem["status"] == 500
    assert problem["type"] == "urn:synapsenet:problem:corrupt-data"
    assert problem["key"] == "chunks/ab/c"
    assert error.detail == "Chunk abc is corrupt: its object 'chunks/ab/c' is empty."


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"compression": "lz4"}, "compression"),
        ({"level": 0}, "level"),
        ({"level": 23}, "level"),
        ({"level": True}, "level"),
        ({"workers": 0}, "workers"),
        ({"workers": 65}, "workers"),
    ],
)
def test_chunk_store_parameters_are_validated(
    local_store: LocalObjectStore, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidError, match="parameter of ChunkStore") as caught:
        ChunkStore(local_store, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- one chunk ------------------------------------------------------------------------------


def test_put_then_get_round_trips_under_the_canonical_key(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store)
    data = random_bytes(5000)
    ref = chunks.put(data)
    assert ref == ChunkRef(blake3.blake3(data).hexdigest(), 5000)
    assert object_store.exists(f"chunks/{ref.address[:2]}/{ref.address[2:]}")
    assert chunks.get(ref.address) == data
    assert chunks.exists(ref.address)
    assert chunks.stat(ref.address).size == 5001  # one codec byte, incompressible payload
    assert "ChunkStore(" in repr(chunks)


def test_work_runs_on_one_thread_per_cpu_up_to_four(object_store: ObjectStore) -> None:
    assert ChunkStore(object_store).workers == max(1, min(4, os.cpu_count() or 1))
    assert ChunkStore(object_store, workers=3).workers == 3


def test_put_skips_the_upload_of_a_chunk_already_stored(object_store: ObjectStore) -> None:
    recording = RecordingStore(object_store)
    chunks = ChunkStore(recording)
    assert chunks.put(b"same bytes") == chunks.put(bytearray(b"same bytes"))
    assert len(recording.puts) == 1


def test_put_reuses_a_chunk_of_any_age_unless_a_sweep_condemned_it(
    object_store: ObjectStore,
) -> None:
    recording = RecordingStore(object_store)
    chunks = ChunkStore(recording)
    ref = chunks.put(b"old chunk")
    recording.modified[chunk_key(ref.address)] = datetime.now(UTC) - 30 * DAY
    chunks.put(b"old chunk")
    assert recording.puts == [chunk_key(ref.address)]
    report = chunks.sweep(set(), older_than=datetime.now(UTC) - HOUR)
    assert (report.deleted, report.kept_recent) == (0, 1)
    chunks.put(b"old chunk")  # condemned: stored again
    assert recording.puts == [chunk_key(ref.address), CONDEMNED_KEY, chunk_key(ref.address)]


def test_compressible_chunks_are_stored_as_zstd(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store, level=9)
    data = TEXT[:200_000]
    chunks.put(data)
    blob = stored(object_store, data)
    assert blob[0] == 1
    assert len(blob) < len(data) // 3
    assert zstandard.ZstdDecompressor().decompress(blob[1:]) == data
    assert chunks.get(chunk_address(data)) == data


def test_incompressible_chunks_are_stored_raw(object_store: ObjectStore) -> None:
    data = random_bytes(70_000)
    ChunkStore(object_store).put(data)
    assert stored(object_store, data) == b"\x00" + data


def test_compression_none_stores_every_chunk_raw(object_store: ObjectStore) -> None:
    data = TEXT[:50_000]
    chunks = ChunkStore(object_store, compression="none")
    chunks.put(data)
    assert stored(object_store, data) == b"\x00" + data
    assert ChunkStore(object_store).get(chunk_address(data)) == data


def test_put_refuses_empty_and_oversized_chunks(local_store: LocalObjectStore) -> None:
    chunks = ChunkStore(local_store)
    with pytest.raises(InvalidError, match="1 to 16777216 bytes"):
        chunks.put(b"")
    with pytest.raises(InvalidError, match="1 to 16777216 bytes"):
        chunks.put(bytes(MAX_CHUNK_SIZE + 1))


def test_get_of_a_missing_chunk_raises_not_found(object_store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        ChunkStore(object_store).get(EMPTY_BLAKE3)
    with pytest.raises(InvalidError):
        ChunkStore(object_store).get("../../etc/passwd")


def corrupt_cases() -> list[tuple[str, bytes, str]]:
    raw = CORRUPTED[1:]
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    zstd_flipped = bytearray(b"\x01" + frame)
    zstd_flipped[len(zstd_flipped) // 2] ^= 0xFF
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(MAX_CHUNK_SIZE + 1))
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    other = zstandard.ZstdCompressor().compress(raw + b"!")
    return [
        ("raw byte flipped", FLIPPED, "whose BLAKE3 is"),
        ("raw truncated", CORRUPTED[:-10], "decodes to 29990 bytes"),
        ("unknown codec", b"\x07" + raw, "unknown codec byte 0x07"),
        ("zstd byte flipped", bytes(zstd_flipped), "its object"),
        ("zstd truncated", b"\x01" + frame[:-7], "not a valid zstd frame"),
        ("zstd garbage", b"\x01not a frame at all", "not a valid zstd frame"),
        ("zstd bomb", b"\x01" + bomb, "declaring 16777217 bytes"),
        ("zstd without size", b"\x01" + no_size, "declaring -1 bytes"),
        ("zstd other content", b"\x01" + other, "whose BLAKE3 is"),
        ("empty", b"", "is empty"),
    ]


CORRUPTED = b"\x00" + TEXT[:30_000]
FLIPPED = CORRUPTED[:1000] + bytes([CORRUPTED[1000] ^ 0x01]) + CORRUPTED[1001:]


def assert_corrupt_on_get(store: ObjectStore, blob: bytes, problem: str) -> None:
    address = chunk_address(CORRUPTED[1:])
    key = chunk_key(address)
    store.put(key, blob)
    with pytest.raises(CorruptDataError, match=problem) as caught:
        ChunkStore(store).get(address)
    assert address in caught.value.detail
    assert key in caught.value.detail
    assert caught.value.extra == {"address": address, "key": key}


@pytest.mark.parametrize(
    ("blob", "problem"), [pytest.param(b, p, id=case) for case, b, p in corrupt_cases()]
)
def test_damaged_chunk_objects_raise_corrupt_data(
    local_store: LocalObjectStore, blob: bytes, problem: str
) -> None:
    assert_corrupt_on_get(local_store, blob, problem)


def test_flipped_truncated_and_unknown_objects_are_caught_on_both_backends(
    object_store: ObjectStore,
) -> None:
    for _case, blob, problem in corrupt_cases()[:3]:
        assert_corrupt_on_get(object_store, blob, problem)


def test_stat_exists_delete_and_listing(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store)
    refs = [chunks.put(bytes([n]) * 100) for n in range(5)]
    object_store.put("chunks/zz/not-a-chunk", b"x")
    object_store.put("manifests/other", b"x")
    assert list(chunks.iter_addresses()) == sorted(ref.address for ref in refs)
    assert chunks.delete(refs[0].address)
    assert not chunks.delete(refs[0].address)
    assert not chunks.exists(refs[0].address)
    with pytest.raises(NotFoundError):
        chunks.stat(refs[0].address)
    assert chunks.stat(refs[1].address).modified.tzinfo is not None


# --- whole files ----------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "compression"), [(1, "zstd"), (4, "none"), (4, "zstd")])
def test_files_round_trip_byte_for_byte(
    object_store: ObjectStore, workers: int, compression: str
) -> None:
    chunks = ChunkStore(object_store, workers=workers, compression=compression)  # type: ignore[arg-type]
    data = TEXT[:150_000] + random_bytes(150_000)
    entry = chunks.write_stream("data/mixed.bin", io.BytesIO(data))
    assert entry.path == "data/mixed.bin"
    assert entry.size == len(data)
    assert entry.content_hash == blake3.blake3(data).hexdigest()
    assert [ref.size for ref in entry.chunks] == [len(c) for c in chunk_bytes(data)]
    assert b"".join(chunks.read_stream(entry)) == data
    assert chunks.verify_entry(entry) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=30_000), workers=st.sampled_from([1, 3]))
def test_any_bytes_round_trip_through_the_store(
    local_store: LocalObjectStore, data: bytes, workers: int
) -> None:
    chunks = ChunkStore(local_store, workers=workers)
    entry = chunks.write_stream("f", io.BytesIO(data), params=SMALL)
    assert entry.size == len(data)
    assert b"".join(chunks.read_stream(entry)) == data


def test_empty_files_have_no_chunks(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store)
    entry = chunks.write_stream("empty.txt", io.BytesIO(b""))
    assert entry == FileEntry("empty.txt", 0, EMPTY_BLAKE3, ())
    assert list(chunks.read_stream(entry)) == []
    assert chunks.verify_entry(entry) == []


def test_an_edited_file_stores_only_the_chunks_near_the_edit(object_store: ObjectStore) -> None:
    recording = RecordingStore(object_store)
    chunks = ChunkStore(recording)
    data = random_bytes(2 * MiB, seed=4)
    first = chunks.write_stream("v.bin", io.BytesIO(data))
    uploads = len(recording.puts)
    edited = data[:MiB] + b"edit" + data[MiB:] + b"appended"
    second = chunks.write_stream("v.bin", io.BytesIO(edited))
    assert len(recording.puts) - uploads <= 4
    assert len(first.chunks) > 20
    assert b"".join(chunks.read_stream(second)) == edited


def test_write_reports_progress_per_stored_chunk(local_store: LocalObjectStore) -> None:
    seen: list[int] = []
    entry = ChunkStore(local_store).write_stream(
        "p", io.BytesIO(random_bytes(100_000)), params=MEDIUM, progress=seen.append
    )
    assert seen == [ref.size for ref in entry.chunks]


def test_an_unsafe_path_is_refused_before_anything_is_read_or_stored(
    object_store: ObjectStore,
) -> None:
    stream = io.BytesIO(b"payload")
    with pytest.raises(InvalidError, match=r"'\.\.' segment"):
        ChunkStore(object_store).write_stream("../escape", stream)
    assert stream.tell() == 0
    assert list(object_store.list()) == []


@pytest.mark.parametrize(("workers", "fail_after"), [(1, 0), (4, 2), (1, 3)])
def test_a_failed_upload_stops_the_write_and_leaves_nothing(
    local_store: LocalObjectStore, workers: int, fail_after: int
) -> None:
    # 3 MiB of random bytes in 1 MiB packs: three pack puts, then three index puts.
    recording = RecordingStore(local_store)
    recording.fail_after = fail_after
    chunks = ChunkStore(recording, workers=workers, pack_size=MiB)
    with pytest.raises(UnavailableError, match="disk is full"):
        chunks.write_stream("f", io.BytesIO(random_bytes(3 * MiB)), params=MEDIUM)
    assert len(recording.puts) == fail_after
    assert list(local_store.list()) == []


def test_chunks_larger_than_half_a_read_window_are_written(
    local_store: LocalObjectStore,
) -> None:
    params = ChunkingParams(min_size=64 * 1024, avg_size=256 * 1024, max_size=2 * MiB)
    data = random_bytes(5 * MiB)
    entry = ChunkStore(local_store).write_stream("f", io.BytesIO(data), params=params)
    assert [ref.size for ref in entry.chunks] == [len(c) for c in chunk_bytes(data, params)]
    assert b"".join(ChunkStore(local_store).read_stream(entry)) == data


@pytest.mark.parametrize("workers", [0, 1])
def test_a_write_can_use_fewer_threads_than_the_store(
    local_store: LocalObjectStore, workers: int
) -> None:
    data = random_bytes(2 * MiB)
    chunks = ChunkStore(local_store, workers=4)
    assert chunks.threads == 4
    assert ChunkStore(local_store, workers=1).threads == 0
    opener = [("f", lambda: nullcontext(io.BytesIO(data)))]
    (entry,) = chunks.write_files(opener, workers=workers)
    assert entry == ChunkStore(local_store, workers=4).write_stream("f", io.BytesIO(data))
    assert b"".join(chunks.read_stream(entry)) == data
    with pytest.raises(InvalidError, match="'workers'"):
        chunks.write_files(opener, workers=-1)


@pytest.mark.parametrize("workers", [1, 4])
def test_writing_64_mib_keeps_memory_bounded(local_store: LocalObjectStore, workers: int) -> None:
    chunks = ChunkStore(local_store, compression="none", workers=workers)
    tracemalloc.start()
    try:
        entry = chunks.write_stream("big.bin", cast(BinaryIO, GeneratedStream(64 * MiB)))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = sum(len(block) for block in chunks.read_stream(entry))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entry.size == read == 64 * MiB
    # Measured: 9.1 MiB (1 worker), 16.2 MiB (4 workers, two 1 MiB batches in flight per
    # thread, each pinning the read windows it views and, uncompressed, its copy); under
    # three eighths of the 64 MiB written proves the bound.
    assert write_peak < 24 * MiB
    assert read_peak < 16 * MiB


def damage(chunks: ChunkStore, address: str) -> None:
    """Flip the last byte of a packed chunk's record, in its pack."""
    location = chunks.packs.locate(address)
    assert location is not None
    key = pack_key(location.pack_id)
    blob = bytearray(chunks.store.get(key))
    blob[location.offset + location.length - 1] ^= 0x01
    chunks.store.put(key, bytes(blob))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(random_bytes(20_000), id="raw-records"),
        # Compressed records, read together: the damaged one is found among them.
        pytest.param(TEXT, id="zstd-records"),
    ],
)
def test_reading_a_file_with_a_corrupt_chunk_names_the_path(
    object_store: ObjectStore, data: bytes
) -> None:
    chunks = ChunkStore(object_store)
    entry = write(chunks, data)
    damage(chunks, entry.chunks[2].address)
    with pytest.raises(CorruptDataError, match=r"File 'data/file\.bin' is corrupt: its chunk 3 of"):
        b"".join(chunks.read_stream(entry))
    problems = chunks.verify_entry(entry)
    assert len(problems) == 1
    assert problems[0].startswith("data/file.bin: its chunk 3 of")
    assert entry.chunks[2].address in problems[0]


def test_compressed_chunks_read_together_come_as_one_checked_block(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    entry = write(chunks, TEXT)
    assert len(entry.chunks) > 50
    # All of them are adjacent records of one pack, within one read: decompressed in one
    # call, hashed in another, and handed on as one block.
    assert list(chunks.read_stream(entry, rehash=True)) == [TEXT]
    assert chunks.verify_entry(entry) == []


def test_a_read_of_compressed_and_uncompressed_chunks_comes_as_one_block(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    data = TEXT[:100_000] + random_bytes(20_000) + TEXT[100_000:200_000]
    entry = write(chunks, data)
    assert list(chunks.read_stream(entry, rehash=True)) == [data]
    assert list(ChunkStore(object_store, compression="none").read_stream(entry)) == [data]
    other = TEXT.replace(b"user_", b"name_")  # no chunk in common with data
    plain = write(ChunkStore(object_store, compression="none"), other, "data/plain.csv")
    assert list(chunks.read_stream(plain)) == [other]


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_encode_many_gives_what_encode_gives_chunk_by_chunk(compression: Compression) -> None:
    codec = ChunkCodec(compression)
    raws: list[bytes | memoryview] = [
        TEXT[:5000],
        memoryview(random_bytes(3000)),  # incompressible: stored raw
        memoryview(TEXT)[5000:9000],
        b"x",
    ]
    stored = codec.encode_many(raws)
    assert stored == [codec.encode(raw) for raw in raws]
    assert [blob[0] for blob in stored] == ([1, 0, 1, 0] if compression == "zstd" else [0] * 4)
    assert [
        codec.decode(chunk_address(raw), blob, "here")
        for raw, blob in zip(raws, stored, strict=True)
    ] == [bytes(raw) for raw in raws]
    assert codec.encode_many([]) == []


def test_decode_run_takes_only_zstd_records_that_decode_to_their_addresses() -> None:
    codec = ChunkCodec()
    pieces = [TEXT[start : start + 5000] for start in range(0, 20_000, 5000)]
    blobs = [memoryview(codec.encode(piece)) for piece in pieces]
    addresses = [chunk_address(piece) for piece in pieces]
    sizes = [len(piece) for piece in pieces]
    assert all(blob[0] == 1 for blob in blobs)  # zstd records
    assert codec.decode_run(blobs, addresses, sizes) == b"".join(pieces)
    # Anything else is left to decode() record by record, which says what is wrong.
    raw = memoryview(ChunkCodec("none").encode(pieces[0]))
    assert raw[0] == 0
    assert codec.decode_run([raw, *blobs[1:]], addresses, sizes) == b"".join(pieces)
    assert codec.decode_run([raw], addresses[:1], sizes[:1]) == pieces[0]
    assert codec.decode_run([raw[:-1], *blobs[1:]], addresses, sizes) is None  # cut short
    assert codec.decode_run([memoryview(b""), *blobs[1:]], addresses, sizes) is None
    unknown = memoryview(b"\x07" + pieces[0])
    assert codec.decode_run([unknown, *blobs[1:]], addresses, sizes) is None
    for size in (0, MAX_CHUNK_SIZE + 1):
        assert codec.decode_run(blobs, addresses, [size, *sizes[1:]]) is None
    assert codec.decode_run(blobs, addresses, [sizes[0] + 1, *sizes[1:]]) is None
    assert codec.decode_run(blobs, [addresses[1], *addresses[1:]], sizes) is None


def test_reading_a_file_with_a_missing_chunk_names_the_path(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store)
    entry = write(chunks, random_bytes(20_000))
    # A sweep that was not told about the first and last chunks repacks without them.
    middle = {ref.address for ref in entry.chunks[1:-1]}
    report = chunks.sweep(middle, older_than=datetime.now(UTC) + HOUR)
    assert (report.deleted, report.packs_rewritten) == (2, 1)
    with pytest.raises(CorruptDataError, match=r"its chunk 1 of .* is missing") as caught:
        list(chunks.read_stream(entry))
    assert caught.value.extra == {"path": "data/file.bin"}
    problems = chunks.verify_entry(entry)
    assert [p.endswith("is missing") for p in problems] == [True, True]


def test_a_wrong_whole_file_hash_is_detected_after_the_last_chunk_when_rehashing(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    data = random_bytes(20_000)
    entry = write(chunks, data)
    wrong = FileEntry(entry.path, entry.size, EMPTY_BLAKE3, entry.chunks)
    received: list[bytes] = []
    with pytest.raises(CorruptDataError, match=f"not the recorded {EMPTY_BLAKE3}"):
        received.extend(chunks.read_stream(wrong, rehash=True))
    assert b"".join(received) == data  # every byte, then the error
    # Without rehash the chunks, checked against their addresses, are the bytes.
    assert b"".join(chunks.read_stream(wrong)) == b"".join(chunks.read_stream(entry))
    assert chunks.verify_entry(wrong) == [
        f"data/file.bin: its bytes hash to {entry.content_hash}, not the recorded {EMPTY_BLAKE3}"
    ]


def test_a_chunk_whose_size_differs_from_the_manifest_is_reported(
    local_store: LocalObjectStore,
) -> None:
    chunks = ChunkStore(local_store)
    ref = chunks.put(b"12345")
    lying = FileEntry("f", 6, EMPTY_BLAKE3, (ChunkRef(ref.address, 6),))
    assert chunks.verify_entry(lying) == [f"f: its chunk 1 of 1 ({ref.address}) is 5 bytes, not 6"]


def test_a_closed_read_stops_fetching_ahead(local_store: LocalObjectStore) -> None:
    recording = RecordingStore(local_store)
    chunks = ChunkStore(recording, workers=2, compression="none")
    data = random_bytes(16 * MiB)
    entry = write(chunks, data)  # read ~1 MiB of a pack at a time
    reader = chunks.read_stream(entry)
    first = next(reader)
    assert first == data[: len(first)]
    assert len(first) > entry.chunks[0].size  # a whole read's chunks in one block
    reader.close()
    fetched = recording.gets
    assert fetched <= 2 * 2 + 1  # the read-ahead window
    assert fetched < 16
    assert list(reader) == []
    assert recording.gets == fetched


# --- sweep ----------------------------------------------------------------------------------


def at(moment: datetime) -> Callable[[], datetime]:
    """A clock stopped at ``moment``."""
    return lambda: moment


def test_sweep_deletes_unreferenced_chunks_condemned_a_grace_period_ago(
    object_store: ObjectStore,
) -> None:
    recording = RecordingStore(object_store)
    chunks = ChunkStore(recording)
    now = datetime.now(UTC)
    kept, old = (chunks.put(bytes([n]) * 1000) for n in range(2))
    for ref in (kept, old):
        recording.modified[chunk_key(ref.address)] = now - 30 * DAY  # age alone does not count
    first = chunks.sweep([kept.address], older_than=now - 3 * HOUR, clock=at(now - 2 * HOUR))
    assert first == SweepReport(deleted=0, kept_referenced=1, kept_recent=1, bytes_freed=0)
    recent = chunks.put(bytes([2]) * 1000)
    report = chunks.sweep([kept.address], older_than=now - HOUR)
    assert report == SweepReport(
        deleted=1, kept_referenced=1, kept_recent=1, bytes_freed=chunks.stat(kept.address).size
    )
    assert sorted(chunks.iter_addresses()) == sorted([kept.address, recent.address])
    # The chunk condemned now is deleted by a sweep a grace period later, if still unused.
    later = chunks.sweep([kept.address], older_than=now + HOUR, clock=at(now + 2 * HOUR))
    assert (later.deleted, later.kept_recent) == (1, 0)
    assert not object_store.exists(CONDEMNED_KEY)  # nothing left condemned


def test_a_loose_chunk_rewritten_after_its_condemnation_is_spared(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    now = datetime.now(UTC)
    ref = chunks.put(b"condemned, then stored again")
    chunks.sweep(set(), older_than=now - 3 * HOUR, clock=at(now - 2 * HOUR))
    chunks.put(b"condemned, then stored again")  # a commit stores it anew
    report = chunks.sweep(set(), older_than=now - HOUR)
    assert (report.deleted, report.kept_recent) == (0, 1)
    assert chunks.get(ref.address) == b"condemned, then stored again"


def test_a_sweep_cut_off_at_its_start_deletes_every_unreferenced_chunk(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    refs = [chunks.put(bytes([n]) * 100) for n in range(4)]
    keep = {refs[0].address}
    past = datetime.now(UTC) - HOUR
    assert chunks.sweep(keep, older_than=past) == SweepReport(0, 1, 3, 0)
    future = datetime.now(UTC) + HOUR
    freed = sum(chunks.stat(ref.address).size for ref in refs[1:])
    assert chunks.sweep(keep, older_than=future, dry_run=True) == SweepReport(3, 1, 0, freed)
    assert len(list(chunks.iter_addresses())) == 4
    assert chunks.sweep(keep, older_than=future) == SweepReport(3, 1, 0, freed)
    assert list(chunks.iter_addresses()) == [refs[0].address]


def test_sweep_skips_chunks_deleted_while_it_runs(local_store: LocalObjectStore) -> None:
    recording = RecordingStore(local_store)
    chunks = ChunkStore(recording, workers=1)
    ref = chunks.put(b"vanishing")
    recording.vanished.add(chunk_key(ref.address))
    assert chunks.sweep(set(), older_than=datetime.now(UTC) + HOUR) == SweepReport(0, 0, 0, 0)


def test_sweep_refuses_a_naive_cutoff(local_store: LocalObjectStore) -> None:
    with pytest.raises(InvalidError, match="timezone-aware") as caught:
        ChunkStore(local_store).sweep([], older_than=datetime.now())
    assert caught.value.field == "older_than"


def test_a_commit_in_flight_survives_a_concurrent_sweep(object_store: ObjectStore) -> None:
    # The collector takes its cutoff first, then reads the committed references (none yet).
    chunks = ChunkStore(object_store)
    cutoff = datetime.now(UTC) - timedelta(seconds=5)
    referenced: set[str] = set()
    entry = write(chunks, random_bytes(50_000), "in-flight.bin")  # no version row yet
    report = chunks.sweep(referenced, older_than=cutoff)
    assert report.deleted == 0
    assert chunks.verify_entry(entry) == []


def age(store: LocalObjectStore, prefix: str, by: timedelta) -> None:
    """Make every object under ``prefix`` look last written ``by`` ago."""
    then = (datetime.now(UTC) - by).timestamp()
    for key in store.list(prefix):
        os.utime(store.root / key, (then, then))


def test_a_commit_reuses_old_chunks_and_stores_condemned_ones_again(
    local_store: LocalObjectStore,
) -> None:
    reused, condemned = random_bytes(5000, seed=42), random_bytes(5000, seed=44)
    now = datetime.now(UTC)
    chunks = ChunkStore(local_store)
    # Left by a version deleted since (or a failed commit); a sweep condemned one of them
    # two days ago, and the packs are older still.
    write(chunks, condemned, "condemned.bin")
    chunks.sweep(set(), older_than=now - 3 * DAY, clock=at(now - 2 * DAY))
    write(chunks, reused, "old.bin")
    age(local_store, "packs/", 3 * DAY)
    packs = len(pack_objects(local_store)[0])
    writer = ChunkStore(local_store)
    entry = writer.write_stream("reuse.bin", io.BytesIO(reused))  # reused, however old
    assert len(pack_objects(local_store)[0]) == packs
    again = writer.write_stream("again.bin", io.BytesIO(condemned))  # stored again
    assert len(pack_objects(local_store)[0]) == packs + 1
    # A collector with a one-day grace runs before either commit records its version.
    report = writer.sweep(set(), older_than=now - DAY)
    assert (report.deleted, report.kept_recent) == (1, 2)  # only the condemned old copy
    assert writer.verify_entry(entry) == [] == writer.verify_entry(again)


def test_a_write_packs_a_chunk_even_when_a_loose_copy_exists(local_store: LocalObjectStore) -> None:
    data = random_bytes(5000, seed=43)
    chunks = ChunkStore(local_store)
    ref = chunks.put(data)  # a store written before packs existed
    age(local_store, "chunks/", timedelta(days=2))
    now = datetime.now(UTC)
    chunks.sweep(set(), older_than=now - 3 * DAY, clock=at(now - 2 * DAY))  # condemns it
    entry = chunks.write_stream("reuse.bin", io.BytesIO(data))
    assert entry.chunks == (ref,)
    assert len(pack_objects(local_store)[0]) == 1
    report = chunks.sweep(set(), older_than=now - DAY)
    assert (report.deleted, report.kept_recent) == (1, 1)  # the loose copy; the packed kept
    assert chunks.verify_entry(entry) == []


# --- packs ----------------------------------------------------------------------------------


def pack_objects(store: ObjectStore) -> tuple[list[str], list[str]]:
    keys = list(store.list("packs/"))
    return [k for k in keys if k.endswith(".pack")], [k for k in keys if k.endswith(".idx")]


def test_a_write_stores_one_pack_and_one_index_and_caps_pack_size(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store, compression="none", pack_size=MiB)
    small = write(chunks, random_bytes(300_000, seed=1), "small.bin")
    assert len(small.chunks) > 30
    packs, indexes = pack_objects(object_store)
    assert (len(packs), len(indexes)) == (1, 1)
    assert [k.removesuffix(".pack") for k in packs] == [k.removesuffix(".idx") for k in indexes]
    big = write(chunks, random_bytes(3 * MiB + 1000, seed=2), "big.bin")
    packs, indexes = pack_objects(object_store)
    # The small pack, then packs closed at the first record past 1 MiB: 1 + 1 + the rest.
    assert (len(packs), len(indexes)) == (4, 4)
    assert all(object_store.stat(k).size < MiB + MEDIUM.max_size + 1 for k in packs)
    assert b"".join(chunks.read_stream(big)) == random_bytes(3 * MiB + 1000, seed=2)
    assert list(object_store.list("chunks/")) == []


def test_write_files_shares_packs_between_files_and_dedupes_within_a_write(
    local_store: LocalObjectStore, tmp_path: Path
) -> None:
    block = random_bytes(40_000, seed=5)
    (tmp_path / "a.bin").write_bytes(block * 3)  # the same chunks three times over
    (tmp_path / "b.bin").write_bytes(block)
    (tmp_path / "empty.bin").write_bytes(b"")
    chunks = ChunkStore(local_store, compression="none")
    entries = chunks.write_paths(
        [(name, tmp_path / name) for name in ("a.bin", "b.bin", "empty.bin")], params=MEDIUM
    )
    assert [e.path for e in entries] == ["a.bin", "b.bin", "empty.bin"]
    packs, _indexes = pack_objects(local_store)
    assert len(packs) == 1
    distinct = {ref.address: ref.size for e in entries for ref in e.chunks}
    # Each distinct chunk once, plus one codec byte each.
    assert local_store.stat(packs[0]).size == sum(distinct.values()) + len(distinct)
    for entry in entries:
        assert b"".join(chunks.read_stream(entry)) == (tmp_path / entry.path).read_bytes()


def test_a_refused_write_deletes_its_packs_and_publishes_nothing(
    local_store: LocalObjectStore,
) -> None:
    def refuse(written: Sequence[WrittenFile]) -> None:
        assert [file.entry.size for file in written] == [3 * MiB]
        raise InvalidError("The schema is incompatible.")

    chunks = ChunkStore(local_store, pack_size=MiB)
    opener = [("f", lambda: nullcontext(io.BytesIO(random_bytes(3 * MiB))))]
    with pytest.raises(InvalidError, match="incompatible"):
        chunks.write_files(opener, accept=refuse)
    assert list(local_store.list()) == []
    assert list(chunks.iter_addresses()) == []


def test_a_failed_cleanup_still_raises_the_original_error(local_store: LocalObjectStore) -> None:
    def refuse(written: Sequence[WrittenFile]) -> None:
        raise InvalidError("The schema is incompatible.")

    recording = RecordingStore(local_store)
    recording.fail_deletes = True
    opener = [("f", lambda: nullcontext(io.BytesIO(random_bytes(10_000))))]
    with pytest.raises(InvalidError, match="incompatible"):
        ChunkStore(recording).write_files(opener, accept=refuse)
    packs, indexes = pack_objects(local_store)
    assert (len(packs), indexes) == (1, [])  # garbage without an index, for the sweep
    report = ChunkStore(local_store).sweep(set(), older_than=datetime.now(UTC) + HOUR)
    assert (report.packs_deleted, pack_objects(local_store)) == (1, ([], []))


def test_chunks_stored_before_packs_stay_readable_next_to_packed_ones(
    object_store: ObjectStore,
) -> None:
    chunks = ChunkStore(object_store)
    legacy = [chunks.put(random_bytes(3000, seed=n)) for n in range(3)]
    packed = write(chunks, random_bytes(20_000, seed=9)).chunks
    data = b"".join(random_bytes(3000, seed=n) for n in range(3)) + random_bytes(20_000, seed=9)
    mixed = FileEntry("mixed.bin", len(data), blake3.blake3(data).hexdigest(), (*legacy, *packed))
    assert b"".join(ChunkStore(object_store).read_stream(mixed)) == data
    assert ChunkStore(object_store).verify_entry(mixed) == []
    addresses = list(ChunkStore(object_store).iter_addresses())
    assert addresses == sorted({ref.address for ref in mixed.chunks})


def test_another_store_finds_packs_published_after_it_loaded(object_store: ObjectStore) -> None:
    reader = ChunkStore(object_store)
    assert list(reader.iter_addresses()) == []  # its catalog is loaded, and empty
    entry = write(ChunkStore(object_store), random_bytes(20_000, seed=3))
    assert (
        reader.get(entry.chunks[0].address) == random_bytes(20_000, seed=3)[: entry.chunks[0].size]
    )
    other = write(ChunkStore(object_store), random_bytes(20_000, seed=4))
    assert reader.exists(entry.chunks[1].address)
    assert b"".join(reader.read_stream(other)) == random_bytes(20_000, seed=4)


def test_a_reader_follows_chunks_that_a_sweep_moved_to_a_new_pack(
    object_store: ObjectStore,
) -> None:
    writer = ChunkStore(object_store)
    kept = write(writer, random_bytes(30_000, seed=6), "kept.bin")
    dropped = write(writer, random_bytes(30_000, seed=7), "dropped.bin")
    both = write(writer, random_bytes(30_000, seed=6) + random_bytes(30_000, seed=7), "both.bin")
    assert len(pack_objects(object_store)[0]) == 3
    reader = ChunkStore(object_store)
    assert reader.verify_entry(kept) == []  # the reader's catalog knows the old packs
    live = {ref.address for ref in kept.chunks}
    report = writer.sweep(live, older_than=datetime.now(UTC) + HOUR)
    assert report.kept_referenced == len(live)
    assert report.packs_rewritten + report.packs_deleted >= 2
    assert b"".join(reader.read_stream(kept)) == random_bytes(30_000, seed=6)
    assert reader.get(kept.chunks[-1].address)
    assert "is missing" in reader.verify_entry(dropped)[0]
    assert reader.verify_entry(both) != []


def test_sweeping_packs_rewrites_deletes_and_keeps_as_the_cutoff_says(
    local_store: LocalObjectStore,
) -> None:
    chunks = ChunkStore(local_store)
    half = write(chunks, random_bytes(40_000, seed=10), "half.bin")
    gone = write(chunks, random_bytes(40_000, seed=11), "gone.bin")
    full = write(chunks, random_bytes(40_000, seed=12), "full.bin")
    kept = {ref.address for ref in half.chunks[::2]} | {ref.address for ref in full.chunks}
    now = datetime.now(UTC)
    chunks.sweep(kept, older_than=now - 3 * HOUR, clock=at(now - 2 * HOUR))  # condemns
    recent = write(chunks, random_bytes(40_000, seed=13), "recent.bin")
    cutoff = now - HOUR
    dead_half = [ref for ref in half.chunks if ref.address not in kept]
    expected = SweepReport(
        deleted=len(dead_half) + len(gone.chunks),
        kept_referenced=len(kept),
        kept_recent=len(recent.chunks),
        bytes_freed=sum(ref.size + 1 for ref in dead_half) + sum(r.size + 1 for r in gone.chunks),
        packs_rewritten=1,
        packs_deleted=1,
    )
    before = pack_objects(local_store)
    assert chunks.sweep(kept, older_than=cutoff, dry_run=True) == expected
    assert pack_objects(local_store) == before
    assert chunks.sweep(kept, older_than=cutoff) == expected
    assert len(pack_objects(local_store)[0]) == 3  # full, recent and half's rewrite
    assert chunks.verify_entry(full) == [] == chunks.verify_entry(recent)
    assert set(chunks.iter_addresses()) == kept | {ref.address for ref in recent.chunks}
    # Nothing left to collect: a second sweep changes nothing.
    again = chunks.sweep(kept, older_than=cutoff)
    assert (again.deleted, again.packs_rewritten, again.packs_deleted) == (0, 0, 0)


def test_a_pack_without_index_is_collected_only_once_old(local_store: LocalObjectStore) -> None:
    local_store.put(f"packs/{'ab' * 16}.pack", b"\x00orphan")
    local_store.put("packs/notes.txt", b"not a pack")  # foreign keys are left alone
    chunks = ChunkStore(local_store)
    assert chunks.sweep(set(), older_than=datetime.now(UTC) - HOUR).packs_deleted == 0
    report = chunks.sweep(set(), older_than=datetime.now(UTC) + HOUR)
    assert (report.packs_deleted, report.bytes_freed) == (1, 7)
    assert list(local_store.list("packs/")) == ["packs/notes.txt"]


def test_a_sweep_skips_packs_that_vanish_while_it_runs(local_store: LocalObjectStore) -> None:
    recording = RecordingStore(local_store)
    chunks = ChunkStore(recording)
    write(chunks, random_bytes(10_000))
    orphan = f"packs/{'cd' * 16}.pack"
    local_store.put(orphan, b"\x00orphan")
    published = [k for k in local_store.list("packs/") if k.endswith(".idx")]
    recording.vanished.update([orphan, *published])
    assert chunks.sweep(set(), older_than=datetime.now(UTC) + HOUR) == SweepReport(0, 0, 0, 0)
    fresh = ChunkStore(recording)
    assert list(fresh.iter_addresses()) == []  # an index that vanished after the listing


def test_a_sweep_refuses_to_repack_a_damaged_live_chunk(local_store: LocalObjectStore) -> None:
    chunks = ChunkStore(local_store)
    entry = write(chunks, random_bytes(30_000))
    damage(chunks, entry.chunks[1].address)
    before = pack_objects(local_store)
    live = {entry.chunks[1].address}
    with pytest.raises(CorruptDataError, match=entry.chunks[1].address):
        chunks.sweep(live, older_than=datetime.now(UTC) + HOUR)
    assert pack_objects(local_store) == before


def test_a_truncated_pack_is_reported_per_chunk(object_store: ObjectStore) -> None:
    chunks = ChunkStore(object_store)
    entry = write(chunks, random_bytes(30_000))
    (pack,), _ = pack_objects(object_store)
    object_store.put(pack, object_store.get(pack)[:-100])
    problems = chunks.verify_entry(entry)
    assert len(problems) == 1
    assert "cut short" in problems[0]
    assert pack in problems[0]


def test_a_damaged_index_is_reported_naming_it(local_store: LocalObjectStore) -> None:
    write(ChunkStore(local_store), random_bytes(10_000))
    _, (index,) = pack_objects(local_store)
    local_store.put(index, local_store.get(index)[:-1] + b"?")
    with pytest.raises(CorruptDataError, match=f"Pack index '{index}' is corrupt: its checksum"):
        list(ChunkStore(local_store).iter_addresses())


class FailingStream(io.RawIOBase):
    """Random bytes, then a read error: a file on a failing disk."""

    def __init__(self, good: int) -> None:
        self.data = random_bytes(good)
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.position >= len(self.data):
            raise OSError("Input/output error")
        size = min(len(buffer), len(self.data) - self.position)
        buffer[:size] = self.data[self.position : self.position + size]
        self.position += size
        return size


@pytest.mark.parametrize("workers", [1, 2])
def test_a_read_error_midway_through_a_pack_stores_nothing(
    object_store: ObjectStore, workers: int
) -> None:
    # Packs of 1.5 MiB, that end inside a 1 MiB batch of records, and past the batches in
    # flight (4 MiB): packs are written and one is being written when the read fails.
    chunks = ChunkStore(object_store, workers=workers, pack_size=3 * MiB // 2)
    with pytest.raises(OSError, match="Input/output error"):
        chunks.write_stream("f", cast(BinaryIO, FailingStream(8 * MiB + 300_000)))
    assert list(object_store.list()) == []


def test_a_sweep_keeps_one_copy_of_a_chunk_stored_twice(local_store: LocalObjectStore) -> None:
    data = random_bytes(60_000, seed=20)
    chunks = ChunkStore(local_store)
    entry = write(chunks, data, "a.bin")
    chunks.sweep(set(), older_than=datetime.now(UTC) - HOUR)  # its version was deleted
    assert write(chunks, data, "b.bin").chunks == entry.chunks  # condemned: stored again
    assert len(pack_objects(local_store)[0]) == 2
    live = {ref.address for ref in entry.chunks}
    report = chunks.sweep(live, older_than=datetime.now(UTC) - HOUR)
    assert report == SweepReport(
        deleted=len(live),
        kept_referenced=len(live),
        kept_recent=0,
        bytes_freed=sum(ref.size + 1 for ref in entry.chunks),
        packs_rewritten=0,
        packs_deleted=1,
    )
    assert len(pack_objects(local_store)[0]) == 1
    assert ChunkStore(local_store).verify_entry(entry) == []


def test_a_sweep_keeps_both_copies_when_the_first_is_damaged(
    local_store: LocalObjectStore,
) -> None:
    data = random_bytes(5000, seed=21)
    chunks = ChunkStore(local_store)
    entry = write(chunks, data, "a.bin")
    chunks.sweep(set(), older_than=datetime.now(UTC) - HOUR)
    write(chunks, data, "b.bin")
    kept_first = sorted(pack_objects(local_store)[0])[0]  # the sweep keeps this copy
    damaged = bytearray(local_store.get(kept_first))
    damaged[-1] ^= 0xFF
    local_store.put(kept_first, bytes(damaged))
    report = chunks.sweep({entry.chunks[0].address}, older_than=datetime.now(UTC) - HOUR)
    assert (report.deleted, report.packs_deleted) == (0, 0)
    assert len(pack_objects(local_store)[0]) == 2
