"""Tests of the object stores: one contract suite over both backends, then each backend's own.

The S3 backend runs against a real moto server process (``s3_server``), never a mock.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mypy_boto3_s3 import S3Client
from pydantic import SecretStr

from synapsenet.config import Settings
from synapsenet.core import storage as storage_module
from synapsenet.core.storage import (
    MAX_KEY_BYTES,
    OBJECT_STORE_SETTING,
    RESERVED_SEGMENT_PREFIX,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    open_object_store,
    validate_key,
    validate_prefix,
)
from synapsenet.errors import (
    ConfigurationError,
    ConflictError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)
from tests.fixtures.s3 import (
    S3_ACCESS_KEY_ID,
    S3_REGION,
    S3_SECRET_ACCESS_KEY,
    S3_STORE_PREFIX,
    free_port,
)

MiB = 1024 * 1024
PATTERN = bytes(range(256)) * 4096  # 1 MiB


def numbered_chunks(count: int, size: int = MiB) -> Iterator[bytes]:
    """``count`` chunks of ``size`` bytes, each starting with its index so order matters."""
    for index in range(count):
        yield index.to_bytes(8, "big") + PATTERN[: size - 8]


def content(size: int) -> bytes:
    return b"".join(numbered_chunks(size // MiB)) + PATTERN[: size % MiB]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each backend in turn, through the same contract."""
    return cast(ObjectStore, request.getfixturevalue(f"{request.param}_store"))


# --- keys -----------------------------------------------------------------------------------

INVALID_KEYS = [
    ("", "empty"),
    ("/abs", "absolute path"),
    ("/", "absolute path"),
    ("../x", "'..' segment"),
    ("a/../../b", "'..' segment"),
    ("a/./b", "'.' segment"),
    ("a//b", "empty segment"),
    ("a\\b", "backslash"),
    ("a/", "ends with '/'"),
    ("a\x00b", "control character '\\x00'"),
    ("a\nb", "control character '\\n'"),
    ("a\x85b", "control character"),
    ("x" * (MAX_KEY_BYTES + 1), "1025 bytes"),
    ("é" * 513, "1026 bytes"),
    ("a/" + "x" * 256, "longer than 255 bytes"),
    (f"a/{RESERVED_SEGMENT_PREFIX}-1234", "reserved"),
    ("a\ud800b", "lone surrogate"),
]
ESCAPING_KEYS = ["../x", "/abs", "a/../../b", "a//b", "a\\b", ""]


@pytest.mark.parametrize(("key", "reason"), INVALID_KEYS)
def test_validate_key_names_the_key_and_the_problem(key: str, reason: str) -> None:
    with pytest.raises(InvalidError) as caught:
        validate_key(key)
    assert caught.value.field == "key"
    assert reason in caught.value.detail
    assert repr(key)[:40] in caught.value.detail


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "datasets/v1/chunk-0001.parquet",
        ".hidden/..dots/...",
        "spaces and+plus=signs%20/ünïcödé/日本",
        "/".join(["k" * 204] * 5),  # exactly 1024 bytes
        "x" * 255,
    ],
)
def test_validate_key_accepts_relative_paths(key: str) -> None:
    assert validate_key(key) == key


def test_validate_prefix_allows_empty_and_trailing_slash_only() -> None:
    for prefix in ["", "a", "a/", "chunks/ab", "a/b/"]:
        assert validate_prefix(prefix) == prefix
    for bad in ["/", "../", "a//", "a\\b", "/abs"]:
        with pytest.raises(InvalidError) as caught:
            validate_prefix(bad)
        assert caught.value.field == "prefix"


segment_text = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and not s.startswith(RESERVED_SEGMENT_PREFIX))
valid_keys = st.lists(segment_text, min_size=1, max_size=4).map("/".join)


@given(key=valid_keys, position=st.integers(min_value=0, max_value=4))
def test_any_dot_dot_segment_is_rejected(key: str, position: int) -> None:
    assert validate_key(key) == key
    segments = key.split("/")
    segments.insert(min(position, len(segments)), "..")
    with pytest.raises(InvalidError):
        validate_key("/".join(segments))


# --- the contract, over both backends -------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000])
def test_put_bytes_round_trips(store: ObjectStore, size: int) -> None:
    data = content(size)
    info = store.put("models/m1/weights.bin", data)
    assert info.key == "models/m1/weights.bin"
    assert info.size == size
    assert store.get("models/m1/weights.bin") == data


def test_get_range_reads_exactly_the_requested_bytes(store: ObjectStore) -> None:
    data = content(3 * MiB + 5)
    store.put("packs/p", data)
    assert store.get_range("packs/p", 0, 10) == data[:10]
    assert store.get_range("packs/p", MiB - 3, 2 * MiB) == data[MiB - 3 : 3 * MiB - 3]
    assert store.get_range("packs/p", len(data) - 4, 100) == data[-4:]  # cut at the end
    assert store.get_range("packs/p", len(data), 10) == b""
    assert store.get_range("packs/p", len(data) + 100, 10) == b""
    assert store.get_range("packs/p", 7, 0) == b""


def test_get_range_of_a_missing_object_or_bad_bounds_is_refused(store: ObjectStore) -> None:
    for length in (0, 5):
        with pytest.raises(NotFoundError, match="'no/such'"):
            store.get_range("no/such", 0, length)
    store.put("k", b"0123456789")
    for offset, length, field in [(-1, 1, "offset"), (0, -1, "length"), (True, 1, "offset")]:
        with pytest.raises(InvalidError, match=f"'{field}' parameter of get_range") as caught:
            store.get_range("k", offset, length)
        assert caught.value.field == field
    with pytest.raises(InvalidError):
        store.get_range("../k", 0, 1)


def test_importing_the_storage_module_does_not_import_boto3() -> None:
    code = (
        "import sys, synapsenet.core.storage as s; assert 'boto3' not in sys.modules; "
        "assert s.S3ObjectStore.__name__ == 'S3ObjectStore'; assert 'boto3' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = storage_module.Nope


def test_put_accepts_bytearray_and_memoryview(store: ObjectStore) -> None:
    store.put("a", bytearray(b"array"))
    store.put("b", memoryview(b"xxview")[2:])
    assert (store.get("a"), store.get("b")) == (b"array", b"view")


def test_put_file_object_spanning_several_parts_round_trips(
    store: ObjectStore, tmp_path: Path
) -> None:
    data = content(12 * MiB + 123)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with source.open("rb") as file:
        info = store.put("artifacts/model.onnx", file)
    assert info.size == len(data)
    assert store.get("artifacts/model.onnx") == data


def test_put_file_object_reads_from_its_position(store: ObjectStore) -> None:
    file = io.BytesIO(b"headerPAYLOAD")
    file.seek(6)
    assert store.put("k", file).size == 7
    assert store.get("k") == b"PAYLOAD"


def test_put_iterable_with_uneven_chunks_round_trips(store: ObjectStore) -> None:
    data = content(11 * MiB + 5)
    sizes = [0, 1, 3 * MiB, 0, 7, 5 * MiB + 11]
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(data[offset : offset + size])
        offset += size
    pieces.append(data[offset:])
    info = store.put("datasets/d/chunk", iter(pieces))
    assert info.size == len(data)
    assert store.get("datasets/d/chunk") == data


@pytest.mark.parametrize("empty", [b"", io.BytesIO(b""), iter([]), [b"", b""]])
def test_empty_objects_round_trip(store: ObjectStore, empty: Any) -> None:
    info = store.put("empty", empty)
    assert info.size == 0
    assert store.get("empty") == b""
    assert list(store.iter_chunks("empty")) == []
    assert store.exists("empty")


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("manifest.json", b"version 1, a longer body")
    store.put("manifest.json", b"version 2")
    assert store.get("manifest.json") == b"version 2"
    assert store.stat("manifest.json").size == len(b"version 2")
    assert list(store.list()) == ["manifest.json"]


def test_put_returns_the_same_info_as_stat(store: ObjectStore) -> None:
    before = datetime.now(UTC)
    info = store.put("k/v", b"12345")
    assert info == store.stat("k/v")
    assert info.modified.utcoffset() == timedelta(0)
    # S3 keeps whole seconds, so allow one second of truncation.
    assert (
        before - timedelta(seconds=1) <= info.modified <= datetime.now(UTC) + timedelta(seconds=1)
    )


@pytest.mark.parametrize("text", ["text", io.StringIO("text"), ["text"]])
def test_put_refuses_text_and_stores_nothing(store: ObjectStore, text: Any) -> None:
    with pytest.raises(InvalidError) as caught:
        store.put("k", text)
    assert caught.value.field == "data"
    assert "bytes" in caught.value.detail
    assert list(store.list()) == []


def test_iter_chunks_reassembles_exactly_in_full_chunks(store: ObjectStore) -> None:
    data = content(3 * MiB + 17)
    store.put("blob", data)
    chunks = list(store.iter_chunks("blob", chunk_size=MiB // 2))
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [MiB // 2] * 6 + [17]


def test_iter_chunks_rejects_a_nonpositive_chunk_size(store: ObjectStore) -> None:
    store.put("blob", b"x")
    with pytest.raises(InvalidError) as caught:
        store.iter_chunks("blob", chunk_size=0)
    assert caught.value.field == "chunk_size"


def test_open_gives_a_readable_binary_stream(store: ObjectStore) -> None:
    data = content(2 * MiB + 3)
    store.put("stream", data)
    with store.open("stream") as stream:
        head = stream.read(10)
        rest = stream.read()
    assert head + rest == data


def test_exists_stat_and_delete(store: ObjectStore) -> None:
    assert not store.exists("a/b")
    store.put("a/b", b"abc")
    assert store.exists("a/b")
    assert not store.exists("a")  # a prefix is not an object
    assert store.stat("a/b").size == 3
    assert store.delete("a/b") is True
    assert store.delete("a/b") is False
    assert not store.exists("a/b")
    assert list(store.list()) == []


def test_list_is_sorted_and_filtered_by_string_prefix(store: ObjectStore) -> None:
    keys = ["b/c/d", "a0", "a/x", "a.b", "a/y/z", "ab", "z", "é/1", "a-", "A"]
    for key in keys:
        store.put(key, key.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/x", "a/y/z"]
    assert list(store.list("a")) == ["a-", "a.b", "a/x", "a/y/z", "a0", "ab"]
    assert list(store.list("a/y")) == ["a/y/z"]
    assert list(store.list("b/c/d")) == ["b/c/d"]
    assert list(store.list("b/c/d/")) == []
    assert list(store.list("zz")) == []
    assert list(store.list("missing/dir/")) == []


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.get("no/such/key"),
        lambda s: s.iter_chunks("no/such/key"),
        lambda s: s.stat("no/such/key"),
        lambda s: s.open("no/such/key").__enter__(),
    ],
    ids=["get", "iter_chunks", "stat", "open"],
)
def test_missing_key_raises_not_found_naming_it(
    store: ObjectStore, read: Callable[[ObjectStore], object]
) -> None:
    store.put("no/such/other", b"x")
    with pytest.raises(NotFoundError, match="'no/such/key'") as caught:
        read(store)
    assert caught.value.extra["key"] == "no/such/key"
    assert caught.value.status == 404


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_every_method_rejects_an_invalid_key(store: ObjectStore, key: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: store.put(key, b"data"),
        "put_iterable": lambda: store.put(key, iter([b"data"])),
        "get": lambda: store.get(key),
        "iter_chunks": lambda: store.iter_chunks(key),
        "open": lambda: store.open(key).__enter__(),
        "exists": lambda: store.exists(key),
        "stat": lambda: store.stat(key),
        "delete": lambda: store.delete(key),
    }
    if key:
        calls["list"] = lambda: store.list(key)
    for name, call in calls.items():
        with pytest.raises(InvalidError) as caught:
            call()
        assert caught.value.field in ("key", "prefix"), name
    assert list(store.list()) == []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=valid_keys, data=st.binary(max_size=64))
def test_valid_keys_round_trip(store: ObjectStore, key: str, data: bytes) -> None:
    store.put(key, data)
    try:
        assert store.get(key) == data
        assert store.stat(key).size == len(data)
        assert key in list(store.list(key))
    finally:
        assert store.delete(key) is True
    assert not store.exists(key)


def test_interrupted_put_leaves_the_previous_object_and_nothing_new(store: ObjectStore) -> None:
    def failing_source() -> Iterator[bytes]:
        yield from numbered_chunks(11)  # past two 5 MiB parts on S3
        raise RuntimeError("source failed midway")

    store.put("kept", b"old")
    with pytest.raises(RuntimeError, match="source failed midway"):
        store.put("kept", failing_source())
    with pytest.raises(RuntimeError, match="source failed midway"):
        store.put("new/object", failing_source())
    assert store.get("kept") == b"old"
    assert not store.exists("new/object")
    assert list(store.list()) == ["kept"]


def test_concurrent_puts_of_different_keys_all_land(store: ObjectStore) -> None:
    keys = [f"parallel/{i:02d}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda k: store.put(k, k.encode() * 100), keys))
    assert list(store.list("parallel/")) == keys
    assert all(store.get(k) == k.encode() * 100 for k in keys)


@pytest.mark.slow
def test_large_object_streams_through_bounded_memory(store: ObjectStore) -> None:
    size_mib = 64
    expected = hashlib.sha256()
    for chunk in numbered_chunks(size_mib):
        expected.update(chunk)
    digest, total = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        info = store.put("big/object", numbered_chunks(size_mib))
        for chunk in store.iter_chunks("big/object"):
            digest.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total == size_mib * MiB
    assert digest.hexdigest() == expected.hexdigest()
    assert peak < 24 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


def test_ping_succeeds_on_a_usable_store(store: ObjectStore) -> None:
    store.ping()


# --- local backend --------------------------------------------------------------------------


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_local_interrupted_put_leaves_no_temp_file_or_directory(
    local_store: LocalObjectStore,
) -> None:
    def failing_source() -> Iterator[bytes]:
        yield b"partial"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        local_store.put("deep/new/dir/object", failing_source())
    assert files_under(local_store.root) == []
    assert list(local_store.root.iterdir()) == []


def test_local_put_replaces_the_file_atomically(local_store: LocalObjectStore) -> None:
    local_store.put("model.bin", b"old" * 1000)
    path = local_store.root / "model.bin"
    old_inode = path.stat().st_ino
    seen_while_writing: list[bytes] = []

    def new_content() -> Iterator[bytes]:
        yield b"new" * 500
        seen_while_writing.append(local_store.get("model.bin"))
        seen_while_writing.append(path.read_bytes())
        yield b"new" * 500

    with path.open("rb") as reader_of_old:
        local_store.put("model.bin", new_content())
        # A reader that opened the old object keeps reading it, whole.
        assert reader_of_old.read() == b"old" * 1000
    assert seen_while_writing == [b"old" * 1000] * 2
    assert local_store.get("model.bin") == b"new" * 1000
    assert path.stat().st_ino != old_inode
    assert files_under(local_store.root) == ["model.bin"]


def test_local_temp_files_never_show_in_listings(local_store: LocalObjectStore) -> None:
    local_store.put("a/b", b"x")
    # What a crash mid-put leaves behind.
    (local_store.root / "a" / f"{RESERVED_SEGMENT_PREFIX}-deadbeef").write_bytes(b"partial")
    (local_store.root / f"{RESERVED_SEGMENT_PREFIX}-cafe").write_bytes(b"partial")
    assert list(local_store.list()) == ["a/b"]
    assert list(local_store.list("a/")) == ["a/b"]


def test_local_symlink_escape_is_refused(local_store: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (local_store.root / "evil").symlink_to(outside, target_is_directory=True)
    (local_store.root / "link").symlink_to(outside / "secret")
    calls: list[Callable[[], object]] = [
        lambda: local_store.put("evil/planted", b"x"),
        lambda: local_store.put("evil/planted", iter([b"x"])),
        lambda: local_store.get("evil/secret"),
        lambda: local_store.get("link"),
        lambda: local_store.iter_chunks("evil/secret"),
        lambda: local_store.exists("evil/secret"),
        lambda: local_store.stat("link"),
        lambda: local_store.delete("evil/secret"),
        lambda: local_store.delete("link"),
        lambda: local_store.list("evil/"),
    ]
    for call in calls:
        with pytest.raises(InvalidError, match="outside the object store root"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert list(local_store.list()) == []  # links are not objects


def test_local_key_cannot_be_both_object_and_directory(local_store: LocalObjectStore) -> None:
    local_store.put("a", b"file")
    with pytest.raises(ConflictError, match="'a' is already an object"):
        local_store.put("a/b", b"x")
    local_store.put("c/d", b"x")
    with pytest.raises(ConflictError, match="stored under it"):
        local_store.put("c", b"x")
    assert list(local_store.list()) == ["a", "c/d"]
    assert files_under(local_store.root) == ["a", "c/d"]


def test_local_delete_removes_emptied_directories(local_store: LocalObjectStore) -> None:
    local_store.put("a/b/c", b"x")
    local_store.put("a/keep", b"y")
    local_store.delete("a/b/c")
    assert not (local_store.root / "a" / "b").exists()
    assert (local_store.root / "a").is_dir()
    local_store.delete("a/keep")
    assert list(local_store.root.iterdir()) == []
    local_store.put("a", b"now a file")  # nothing left in the way
    assert local_store.get("a") == b"now a file"


def test_local_objects_are_plain_files_readable_by_other_tools(
    local_store: LocalObjectStore,
) -> None:
    local_store.put("datasets/v1/part-0.parquet", b"PAR1")
    path = local_store.root / "datasets" / "v1" / "part-0.parquet"
    assert path.read_bytes() == b"PAR1"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_local_ping_fails_when_the_root_is_gone(local_store: LocalObjectStore) -> None:
    local_store.root.rmdir()
    with pytest.raises(UnavailableError, match="does not exist"):
        local_store.ping()


def test_local_store_refuses_a_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UnavailableError, match="Cannot create the object store directory"):
        LocalObjectStore(tmp_path / "file")


# --- S3 backend -----------------------------------------------------------------------------


def test_s3_keys_live_under_the_prefix_and_large_puts_are_multipart(
    s3_store: S3ObjectStore, s3_client: S3Client
) -> None:
    s3_store.put("datasets/big", numbered_chunks(12))
    s3_store.put("small", b"tiny")
    raw_keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    assert raw_keys == [f"{S3_STORE_PREFIX}/datasets/big", f"{S3_STORE_PREFIX}/small"]
    head = s3_client.head_object(Bucket=s3_store.bucket, Key=f"{S3_STORE_PREFIX}/datasets/big")
    assert head["ETag"].endswith('-3"')  # three 5 MiB parts, not one request


def test_s3_failed_upload_is_aborted(s3_store: S3ObjectStore, s3_client: S3Client) -> None:
    def failing_source() -> Iterator[bytes]:
        yield from numbered_chunks(11)
        raise RuntimeError("source failed midway")

    with pytest.raises(RuntimeError):
        s3_store.put("object", failing_source())
    assert s3_client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []
    assert "Contents" not in s3_client.list_objects_v2(Bucket=s3_store.bucket)


def test_s3_list_skips_objects_outside_the_prefix_or_with_invalid_keys(
    s3_store: S3ObjectStore, s3_client: S3Client
) -> None:
    s3_client.put_object(Bucket=s3_store.bucket, Key="elsewhere/x", Body=b"")
    s3_client.put_object(Bucket=s3_store.bucket, Key=f"{S3_STORE_PREFIX}x/y", Body=b"")
    s3_client.put_object(Bucket=s3_store.bucket, Key=f"{S3_STORE_PREFIX}/folder/", Body=b"")
    s3_store.put("folder/real", b"r")
    assert list(s3_store.list()) == ["folder/real"]


def unreachable_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_s3_unreachable_endpoint_is_unavailable() -> None:
    endpoint = unreachable_endpoint()
    store = S3ObjectStore(
        "bucket",
        endpoint_url=endpoint,
        access_key_id=S3_ACCESS_KEY_ID,
        secret_access_key=S3_SECRET_ACCESS_KEY,
        connect_timeout=1,
        max_attempts=1,
    )
    with pytest.raises(UnavailableError, match=f"Cannot reach the S3 endpoint {endpoint}"):
        store.ping()
    with pytest.raises(UnavailableError, match="Cannot reach"):
        store.get("some/key")
    with pytest.raises(UnavailableError, match="Cannot reach"):
        store.put("some/key", iter([b"x"]))
    store.close()


def test_open_object_store_refuses_an_unreachable_s3_endpoint(tmp_path: Path) -> None:
    endpoint = unreachable_endpoint()
    unreachable = Settings(
        data_dir=tmp_path,
        object_store_url="s3://bucket/prefix",
        s3_endpoint_url=endpoint,
        s3_access_key_id=S3_ACCESS_KEY_ID,
        s3_secret_access_key=SecretStr(S3_SECRET_ACCESS_KEY),
    )
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        open_object_store(unreachable)
    assert caught.value.setting == OBJECT_STORE_SETTING
    assert str(caught.value).startswith(f"{OBJECT_STORE_SETTING}: Cannot reach")
    assert endpoint in str(caught.value)
    assert time.monotonic() - started < 15


def test_open_object_store_refuses_a_missing_bucket(s3_settings: Settings) -> None:
    missing = s3_settings.model_copy(update={"object_store_url": "s3://no-such-bucket/p"})
    with pytest.raises(ConfigurationError) as caught:
        open_object_store(missing)
    assert caught.value.setting == OBJECT_STORE_SETTING
    assert "S3 bucket 'no-such-bucket' does not exist" in caught.value.detail
    assert "s3://no-such-bucket/p" in caught.value.detail


def test_s3_store_can_create_its_bucket(s3_server: str, s3_client: S3Client) -> None:
    bucket = f"synapsenet-created-{os.getpid()}-{time.time_ns()}"
    options: dict[str, Any] = {
        "endpoint_url": s3_server,
        "access_key_id": S3_ACCESS_KEY_ID,
        "secret_access_key": S3_SECRET_ACCESS_KEY,
        "create_bucket": True,
    }
    store = S3ObjectStore(bucket, **options)
    again = S3ObjectStore(bucket, **options)  # an existing bucket is fine
    try:
        store.ping()
        store.put("k", b"v")
        assert again.get("k") == b"v"
    finally:
        store.delete("k")
        s3_client.delete_bucket(Bucket=bucket)
        store.close()
        again.close()


def test_s3_store_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidError) as caught:
        S3ObjectStore("bucket", part_size=MiB)
    assert caught.value.field == "part_size"
    with pytest.raises(InvalidError) as caught:
        S3ObjectStore("bucket", prefix="a/../b")
    assert caught.value.field == "prefix"
    with pytest.raises(InvalidError):
        S3ObjectStore("")


# --- open_object_store ----------------------------------------------------------------------


def test_open_object_store_defaults_to_the_data_directory(tmp_path: Path) -> None:
    store = open_object_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "data" / "objects").resolve()
    store.put("k", b"v")
    assert (tmp_path / "data" / "objects" / "k").read_bytes() == b"v"


def test_open_object_store_from_a_file_url(tmp_path: Path) -> None:
    root = tmp_path / "elsewhere" / "objects"
    store = open_object_store(Settings(data_dir=tmp_path, object_store_url=root.as_uri()))
    assert isinstance(store, LocalObjectStore)
    assert store.root == root.resolve()


def test_open_object_store_refuses_unusable_file_urls(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    for url in ["file://remote-host/objects", (tmp_path / "a-file").as_uri()]:
        with pytest.raises(ConfigurationError) as caught:
            open_object_store(Settings(data_dir=tmp_path, object_store_url=url))
        assert caught.value.setting == OBJECT_STORE_SETTING
        assert url in caught.value.detail


def test_open_object_store_from_an_s3_url(s3_settings: Settings, s3_client: S3Client) -> None:
    store = open_object_store(s3_settings)
    try:
        assert isinstance(store, S3ObjectStore)
        assert store.region == S3_REGION
        store.put("runs/1/metrics.json", b"{}")
        bucket = store.bucket
        raw = s3_client.get_object(Bucket=bucket, Key=f"{S3_STORE_PREFIX}/runs/1/metrics.json")
        assert raw["Body"].read() == b"{}"
    finally:
        store.close()


def test_deferred_sync_groups_puts_and_nests(local_store: LocalObjectStore) -> None:
    with local_store.deferred_sync():
        local_store.put("batch/a", b"first")
        with local_store.deferred_sync():
            local_store.put("batch/b", b"second")
        assert local_store.get("batch/b") == b"second"
    assert sorted(local_store.list("batch/")) == ["batch/a", "batch/b"]
    local_store.put("after", b"durable at once")
    assert local_store.get("after") == b"durable at once"
