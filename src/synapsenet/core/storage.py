"""Object storage: dataset chunks, model artifacts and manifests, by key.

Two backends honour one contract, :class:`ObjectStore`: :class:`LocalObjectStore` (a
directory, the embedded default) and :class:`S3ObjectStore` (any S3-compatible server).
Keys are validated once, by :func:`validate_key`, so every backend accepts and refuses the
same keys. Writes and reads stream: a put from a file or an iterable never holds the whole
object in memory, and :meth:`ObjectStore.iter_chunks` reads one chunk at a time.

:func:`open_object_store` builds the store that the settings name and checks that it can be
used, so a wrong URL, a missing bucket or an unreachable endpoint fails at start-up with a
:class:`~synapsenet.errors.ConfigurationError` rather than on the first request.
"""

from __future__ import annotations

import builtins
import io
import os
import secrets
import stat as stat_module
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from synapsenet.config import ENV_PREFIX, Settings
from synapsenet.errors import (
    ConfigurationError,
    ConflictError,
    InvalidError,
    NotFoundError,
    SynapseNetError,
    UnavailableError,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = MiB
"""Chunk size of :meth:`ObjectStore.iter_chunks` and of reads from put's file objects."""
MAX_KEY_BYTES = 1024
"""S3's limit on a key, applied to every backend so that keys move between them."""
MAX_SEGMENT_BYTES = 255
"""Most filesystems' limit on one file name, applied to every backend for the same reason."""
RESERVED_SEGMENT_PREFIX = ".synapsenet-tmp"
"""Segments starting with this are the local store's temporary files, so keys may not."""
MIN_PART_SIZE = 5 * MiB
"""The smallest multipart part S3 accepts (except the last)."""
OBJECT_STORE_SETTING = ENV_PREFIX + "OBJECT_STORE_URL"

ObjectData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]
"""What :meth:`ObjectStore.put` stores: bytes, a binary file object read to its end, or an
iterable of byte chunks."""


def _shorten(text: str, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _key_problem(key: str) -> str | None:
    """Say what is wrong with ``key``, or return None for a valid key."""
    if not isinstance(key, str):
        return f"it must be a str, not {type(key).__name__}"
    if not key:
        return "it is empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode (it contains a lone surrogate)"
    if size > MAX_KEY_BYTES:
        return f"it is {size} bytes in UTF-8, more than the {MAX_KEY_BYTES} allowed"
    if key.startswith("/"):
        return "it is an absolute path; keys are relative, '/'-separated paths"
    if "\\" in key:
        return "it contains a backslash; separate segments with '/'"
    control = next((ch for ch in key if unicodedata.category(ch) == "Cc"), None)
    if control is not None:
        return f"it contains the control character {control!r}"
    if key.endswith("/"):
        return "it ends with '/'"
    for segment in key.split("/"):
        if not segment:
            return "it has an empty segment ('//')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"its segment {_shorten(segment)} is longer than {MAX_SEGMENT_BYTES} bytes"
        if segment.startswith(RESERVED_SEGMENT_PREFIX):
            return f"its segment {_shorten(segment)} uses the reserved {RESERVED_SEGMENT_PREFIX!r}"
    return None


def validate_key(key: str) -> str:
    """Check that ``key`` names an object the same way on every backend.

    A key is a relative, ``/``-separated path of at most 1024 UTF-8 bytes, without empty,
    ``.`` or ``..`` segments, backslashes, control characters or a trailing ``/``; each
    segment is at most 255 bytes and may not start with :data:`RESERVED_SEGMENT_PREFIX`.

    Args:
        key: The key to check.

    Returns:
        The key, unchanged.

    Raises:
        InvalidError: Naming the key and what is wrong with it (``field="key"``).
    """
    problem = _key_problem(key)
    if problem is not None:
        raise InvalidError(f"Invalid object key {_shorten(str(key))}: {problem}.", field="key")
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: empty, or a valid key optionally followed by ``/``.

    The last segment may be partial (``chunks/ab`` matches ``chunks/abcd``); listing is by
    string prefix, as in S3.

    Args:
        prefix: The prefix to check.

    Returns:
        The prefix, unchanged.

    Raises:
        InvalidError: Naming the prefix and what is wrong with it (``field="prefix"``).
    """
    if prefix == "":
        return prefix
    body = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
    problem = "it is an absolute path" if prefix == "/" else _key_problem(body)
    if problem is not None:
        raise InvalidError(
            f"Invalid key prefix {_shorten(str(prefix))}: {problem}.", field="prefix"
        )
    return prefix


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InvalidError(
            f"The 'chunk_size' parameter must be an int >= 1. Got {chunk_size!r} instead.",
            field="chunk_size",
        )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object.

    Attributes:
        key: The object's key.
        size: Size in bytes.
        modified: Aware UTC time of the last write, as the backend records it (S3 keeps
            whole seconds).
    """

    key: str
    size: int
    modified: datetime


class ObjectStore(Protocol):
    """A flat namespace of immutable-by-replacement objects addressed by key.

    Every method validates its key with :func:`validate_key` before touching the backend.
    Implementations are safe to share between threads.
    """

    def put(self, key: str, data: ObjectData) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object there, all or nothing.

        Args:
            key: Where to store the object.
            data: Bytes, a binary file object (read from its position to its end) or an
                iterable of byte chunks. Files and iterables are streamed.

        Returns:
            The stored object's info.

        Raises:
            InvalidError: If the key is invalid or ``data`` is text.
            UnavailableError: If the backend cannot be written.
        """
        ...

    def get(self, key: str) -> bytes:
        """Read a whole object into memory.

        Raises:
            NotFoundError: If there is no object under ``key``.
        """
        ...

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object in chunks of ``chunk_size`` bytes (the last may be shorter).

        The object is looked up at call time, so a missing key fails here, not on the first
        ``next()``. An empty object yields no chunks.

        Raises:
            NotFoundError: If there is no object under ``key``.
        """
        ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Open an object as a readable binary stream, closed when the context exits.

        Raises:
            NotFoundError: If there is no object under ``key``.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Describe an object.

        Raises:
            NotFoundError: If there is no object under ``key``.
        """
        ...

    def delete(self, key: str) -> bool:
        """Delete an object; deleting a missing object is not an error.

        Returns:
            Whether an object existed under ``key``.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Iterate, in sorted order, over the keys that start with ``prefix``.

        Raises:
            InvalidError: If the prefix is invalid (checked at call time).
        """
        ...

    def ping(self) -> None:
        """Check that the backend can be used.

        Raises:
            UnavailableError: Saying why it cannot.
        """
        ...

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


def _as_chunk(chunk: object) -> bytes | bytearray | memoryview:
    if isinstance(chunk, bytes | bytearray | memoryview):
        return chunk
    raise InvalidError(
        f"Object data must be bytes, got a chunk of type {type(chunk).__name__}; "
        "open files in binary mode and encode text first.",
        field="data",
    )


def _iter_data(data: ObjectData, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Turn any :data:`ObjectData` into non-empty byte chunks, refusing text up front."""
    if isinstance(data, str):
        raise InvalidError("Object data must be bytes, got str; encode it first.", field="data")
    if isinstance(data, bytes | bytearray | memoryview):
        whole = bytes(data)
        return iter([whole] if whole else [])
    if hasattr(data, "read"):
        read = cast(BinaryIO, data).read
        return _nonempty(iter(lambda: _as_chunk(read(chunk_size)), b""))
    return _nonempty(_as_chunk(chunk) for chunk in data)


def _nonempty(chunks: Iterator[bytes | bytearray | memoryview]) -> Iterator[bytes]:
    for chunk in chunks:
        if len(chunk):
            yield chunk if isinstance(chunk, bytes) else bytes(chunk)


def _exact_chunks(read: Callable[[int], bytes], chunk_size: int) -> Iterator[bytes]:
    """Read ``chunk_size`` bytes per chunk even from streams that return short reads."""
    while chunk := read(chunk_size):
        while len(chunk) < chunk_size:
            more = read(chunk_size - len(chunk))
            if not more:
                break
            chunk += more
        yield chunk


class _ChunkReader(io.RawIOBase):
    """A raw, non-seekable stream over an iterator of byte chunks.

    Wrapped in :class:`io.BufferedReader`, whose ``read(n)`` returns exactly ``n`` bytes
    before the end: multipart uploads rely on that, as parts under 5 MiB are refused.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk).cast("B")
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def _stream_of(chunks: Iterator[bytes]) -> BinaryIO:
    # Reads larger than the buffer bypass it, so a small one costs nothing in speed.
    return io.BufferedReader(_ChunkReader(chunks), buffer_size=64 * 1024)


def _utc_from_ns(timestamp_ns: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ns / 1e9, UTC)


class LocalObjectStore:
    """Objects as files under a root directory: the embedded default.

    A key ``a/b/c`` is the file ``<root>/a/b/c``. Writes go to a temporary file in the
    target directory, are fsynced and then renamed over the target, so readers see the old
    object or the new one, never a mix, and a failed put leaves nothing behind. Directories
    are created on put and removed again when their last object is deleted. One limit the
    S3 backend does not have: ``a`` and ``a/b`` cannot both be objects (a file is not a
    directory); such a put raises :class:`~synapsenet.errors.ConflictError`.

    Args:
        root: Directory holding the objects; created if missing.

    Raises:
        UnavailableError: If the root directory cannot be created.
    """

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(
                f"Cannot create the object store directory {str(root)!r}: {exc.strerror}."
            ) from exc
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        """The resolved root directory."""
        return self._root

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self._root)!r})"

    def _inside(self, path: Path, what: str, field: str = "key") -> Path:
        """Resolve ``path`` and refuse it if a symbolic link leads outside the root."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on 3.11
            raise InvalidError(f"{what} cannot be resolved: {exc}.", field=field) from exc
        if not resolved.is_relative_to(self._root):
            raise InvalidError(
                f"{what} resolves outside the object store root through a symbolic link.",
                field=field,
            )
        return resolved

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self._root.joinpath(*key.split("/"))
        # Links are checked before each operation: this keeps out links left in the
        # directory, not a concurrent attacker who can already write to the root.
        self._inside(path, f"Object key {_shorten(key)}")
        return path

    def _not_found(self, key: str) -> NotFoundError:
        return NotFoundError(
            f"Object {_shorten(key)} does not exist in {str(self._root)!r}.", key=key
        )

    def put(self, key: str, data: ObjectData) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically; see :meth:`ObjectStore.put`.

        Raises:
            InvalidError: If the key is invalid or escapes the root, or ``data`` is text.
            ConflictError: If ``key`` or one of its parent paths is already an object.
            UnavailableError: If the filesystem refuses the write (full, read-only...).
        """
        path = self._path(key)
        chunks = _iter_data(data)
        temp_path, temp_file = self._create_temp(key, path.parent)
        try:
            with temp_file:
                size = 0
                for chunk in chunks:
                    self._write(key, temp_file, chunk)
                    size += len(chunk)
                modified_ns = self._sync(key, temp_file)
            self._replace(key, temp_path, path)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            self._prune_empty_dirs(path.parent)
            raise
        _fsync_dir(path.parent)
        return ObjectInfo(key=key, size=size, modified=_utc_from_ns(modified_ns))

    def _write_failed(self, key: str, exc: OSError) -> UnavailableError:
        return UnavailableError(
            f"Cannot write object {_shorten(key)} under {str(self._root)!r}: {exc.strerror}."
        )

    def _write(self, key: str, file: BinaryIO, chunk: bytes) -> None:
        try:
            file.write(chunk)
        except OSError as exc:
            raise self._write_failed(key, exc) from exc

    def _sync(self, key: str, file: BinaryIO) -> int:
        """Flush ``file`` to disk and return its modification time in nanoseconds."""
        try:
            file.flush()
            os.fsync(file.fileno())
            return os.fstat(file.fileno()).st_mtime_ns
        except OSError as exc:
            raise self._write_failed(key, exc) from exc

    def _replace(self, key: str, temp_path: Path, path: Path) -> None:
        try:
            os.replace(temp_path, path)
        except IsADirectoryError as exc:
            raise ConflictError(
                f"Cannot store object {_shorten(key)}: other objects are stored under it as "
                "a directory, which the local store cannot also hold as a file.",
                key=key,
            ) from exc
        except OSError as exc:
            raise self._write_failed(key, exc) from exc

    def _create_temp(self, key: str, directory: Path) -> tuple[Path, BinaryIO]:
        # A concurrent delete may prune the directory between mkdir and open; retry then.
        for _attempt in range(3):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise self._parent_conflict(key) from exc
            except OSError as exc:
                raise self._write_failed(key, exc) from exc
            self._inside(directory, f"Object key {_shorten(key)}")
            temp_path = directory / f"{RESERVED_SEGMENT_PREFIX}-{secrets.token_hex(8)}"
            try:
                # Mode "x" creates with 0o666 minus the umask, like any other file.
                return temp_path, cast(BinaryIO, open(temp_path, "xb"))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._write_failed(key, exc) from exc
        raise UnavailableError(
            f"Cannot write object {_shorten(key)}: its directory keeps disappearing "
            "(objects under it are being deleted concurrently)."
        )

    def _parent_conflict(self, key: str) -> ConflictError:
        segments = key.split("/")
        parents = ("/".join(segments[:i]) for i in range(1, len(segments)))
        blocking = next((p for p in parents if self._root.joinpath(p).is_file()), "a parent")
        return ConflictError(
            f"Cannot store object {_shorten(key)}: {_shorten(blocking)} is already an object, "
            "and the local store cannot also use it as a directory.",
            key=key,
        )

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self._root and directory.is_relative_to(self._root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def get(self, key: str) -> bytes:
        """Read a whole object; see :meth:`ObjectStore.get`."""
        path = self._path(key)
        try:
            with open(path, "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._not_found(key) from exc

    def _open_file(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return cast(BinaryIO, open(path, "rb"))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._not_found(key) from exc

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object in chunks; see :meth:`ObjectStore.iter_chunks`."""
        _check_chunk_size(chunk_size)
        file = self._open_file(key)
        return _read_and_close(file, chunk_size)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Open an object for reading; see :meth:`ObjectStore.open`."""
        with self._open_file(key) as file:
            yield file

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        """Describe an object; see :meth:`ObjectStore.stat`."""
        path = self._path(key)
        try:
            result = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self._not_found(key) from exc
        if not stat_module.S_ISREG(result.st_mode):
            raise self._not_found(key)
        return ObjectInfo(key=key, size=result.st_size, modified=_utc_from_ns(result.st_mtime_ns))

    def delete(self, key: str) -> bool:
        """Delete an object and any directories it leaves empty; see :meth:`ObjectStore.delete`."""
        path = self._path(key)
        if not path.is_file():
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune_empty_dirs(path.parent)
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        """Iterate over keys in sorted order; see :meth:`ObjectStore.list`.

        Temporary files of puts in progress, symbolic links and files whose names are not
        valid keys are skipped.
        """
        validate_prefix(prefix)
        base = prefix.rpartition("/")[0]
        start = self._root.joinpath(*base.split("/")) if base else self._root
        self._inside(start, f"Key prefix {_shorten(prefix)}", field="prefix")
        return self._walk(start, f"{base}/" if base else "", prefix)

    def _walk(self, directory: Path, key_prefix: str, prefix: str) -> Iterator[str]:
        try:
            with os.scandir(directory) as scan:
                entries = builtins.list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        # A directory sorts as "name/" so that the keys come out in plain string order
        # ("a.b" < "a/x" < "a0"), which is also S3's order.
        named = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in entries]
        for sort_name, entry in sorted(named, key=lambda pair: pair[0]):
            if _key_problem(entry.name) is not None:
                continue
            key = key_prefix + entry.name
            if sort_name.endswith("/"):
                child = key + "/"
                if child.startswith(prefix) or prefix.startswith(child):
                    yield from self._walk(Path(entry.path), child, prefix)
            elif (
                entry.is_file(follow_symlinks=False)
                and key.startswith(prefix)
                and _key_problem(key) is None
            ):
                yield key

    def ping(self) -> None:
        """Check that the root directory exists and is writable."""
        if not self._root.is_dir():
            raise UnavailableError(
                f"The object store directory {str(self._root)!r} does not exist."
            )
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise UnavailableError(
                f"The object store directory {str(self._root)!r} is not writable."
            )

    def close(self) -> None:
        """Nothing to release; present for the :class:`ObjectStore` contract."""


def _read_and_close(file: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with file:
        yield from _exact_chunks(file.read, chunk_size)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: it lives in the directory, not in the file."""
    if os.name != "posix":
        return
    # Best effort: the object is already in place, and some filesystems refuse to sync
    # a directory (EINVAL); failing the put then would report a write that happened.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO, or any S3-compatible server), under a prefix.

    A key ``a/b`` is the S3 key ``<prefix>/a/b``. Uploads of files and iterables go through
    boto3's managed transfer as multipart uploads of ``part_size`` parts: two parts upload
    while a third is read, so a put holds about three parts in memory whatever the object's
    size. A failed upload is aborted, so no partial object appears. Downloads stream the
    response body. The boto3 client is thread-safe, and so is the store.

    Args:
        bucket: Bucket name.
        prefix: Key prefix inside the bucket (no leading or trailing ``/`` needed).
        endpoint_url: S3-compatible endpoint; None means AWS. Path-style addressing is used
            for custom endpoints, which MinIO and most self-hosted servers need.
        region: Region of the bucket.
        access_key_id: Access key; None uses boto3's usual credential chain.
        secret_access_key: Secret key; None uses boto3's usual credential chain.
        create_bucket: Create the bucket if it does not exist (this contacts the server).
        part_size: Multipart part size in bytes, at least 5 MiB.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for data on an open connection.
        max_attempts: Attempts per request, including the first (standard retry mode).

    Raises:
        InvalidError: If the bucket, prefix or part size is invalid.
        UnavailableError: If ``create_bucket`` is set and the server cannot be reached.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
        part_size: int = 8 * MiB,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if not bucket or "/" in bucket or not bucket.isascii():
            raise InvalidError(f"Invalid S3 bucket name {bucket!r}.", field="bucket")
        prefix = prefix.strip("/")
        if prefix:
            validate_prefix(prefix)
        if not isinstance(part_size, int) or part_size < MIN_PART_SIZE:
            raise InvalidError(
                f"The 'part_size' parameter of S3ObjectStore must be an int >= {MIN_PART_SIZE}"
                f" (5 MiB, the smallest part S3 accepts). Got {part_size!r} instead.",
                field="part_size",
            )
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self._key_root = f"{prefix}/" if prefix else ""
        self._where = endpoint_url or "AWS S3"
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        config = BotoConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=16,
            tcp_keepalive=True,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=2,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # Bounds the parts read ahead of the upload; boto3's default of 10 would buffer ten.
        self._transfer.max_in_memory_upload_chunks = 2
        if create_bucket:
            self._create_bucket()

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, at {self._where})"

    @property
    def location(self) -> str:
        """The store as an ``s3://bucket/prefix`` URL."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _s3_key(self, key: str) -> str:
        return self._key_root + validate_key(key)

    def _translate(self, exc: Exception, action: str, key: str | None) -> SynapseNetError:
        """Map a boto error to the platform's hierarchy, naming the key and the endpoint."""
        subject = f"object {_shorten(key)} in {self.location}" if key else self.location
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if key is not None and code in _MISSING_CODES:
                return NotFoundError(
                    f"Object {_shorten(key)} does not exist in {self.location}.", key=key
                )
            if code == "NoSuchBucket":
                return UnavailableError(
                    f"S3 bucket {self.bucket!r} does not exist at {self._where}."
                )
            if code == "InvalidBucketName":
                return InvalidError(f"Invalid S3 bucket name {self.bucket!r}.", field="bucket")
            message = exc.response.get("Error", {}).get("Message", "").rstrip(".")
            return UnavailableError(
                f"S3 refused to {action} {subject} at {self._where}: {code} {message}".rstrip()
                + "."
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return UnavailableError(
                f"No usable S3 credentials to {action} {subject}: set "
                f"{ENV_PREFIX}S3_ACCESS_KEY_ID and {ENV_PREFIX}S3_SECRET_ACCESS_KEY."
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return UnavailableError(f"Cannot reach the S3 endpoint {self._where} ({exc}).")
        return UnavailableError(f"Could not {action} {subject} at {self._where}: {exc}.")

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise self._translate(exc, action, key) from exc

    def _create_bucket(self) -> None:
        with self._errors("create the bucket of"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _error_code(exc) not in _MISSING_BUCKET_CODES:
                    raise
            try:
                if self.region == "us-east-1":
                    self._client.create_bucket(Bucket=self.bucket)
                else:
                    self._client.create_bucket(
                        Bucket=self.bucket,
                        CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                    )
            except ClientError as exc:
                # Another process created it between our check and our create.
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def put(self, key: str, data: ObjectData) -> ObjectInfo:
        """Store ``data`` under ``key``; see :meth:`ObjectStore.put`.

        Small byte strings go in one PutObject; files and iterables stream through a
        multipart upload once they exceed one part.
        """
        s3_key = self._s3_key(key)
        with self._errors("write", key):
            if (
                isinstance(data, bytes | bytearray | memoryview)
                and memoryview(data).nbytes < self.part_size
            ):
                self._client.put_object(Bucket=self.bucket, Key=s3_key, Body=bytes(data))
            else:
                with _stream_of(_iter_data(data)) as stream:
                    self._client.upload_fileobj(stream, self.bucket, s3_key, Config=self._transfer)
        return self.stat(key)

    def _body(self, key: str) -> StreamingBody:
        s3_key = self._s3_key(key)
        with self._errors("read", key):
            return self._client.get_object(Bucket=self.bucket, Key=s3_key)["Body"]

    def get(self, key: str) -> bytes:
        """Read a whole object; see :meth:`ObjectStore.get`."""
        body = self._body(key)
        with self._errors("read", key):
            try:
                return body.read()
            finally:
                body.close()

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object in chunks; see :meth:`ObjectStore.iter_chunks`."""
        _check_chunk_size(chunk_size)
        return self._stream_body(key, self._body(key), chunk_size)

    def _stream_body(self, key: str, body: StreamingBody, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors("read", key):
                yield from _exact_chunks(body.read, chunk_size)
        finally:
            body.close()

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Open an object for reading; see :meth:`ObjectStore.open`."""
        with _stream_of(self.iter_chunks(key)) as stream:
            yield stream

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.stat(key)
        except NotFoundError:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        """Describe an object; see :meth:`ObjectStore.stat`."""
        s3_key = self._s3_key(key)
        with self._errors("describe", key):
            head = self._client.head_object(Bucket=self.bucket, Key=s3_key)
        return ObjectInfo(
            key=key, size=head["ContentLength"], modified=head["LastModified"].astimezone(UTC)
        )

    def delete(self, key: str) -> bool:
        """Delete an object; see :meth:`ObjectStore.delete`.

        S3 does not say whether a deleted object existed, so this asks first; two
        concurrent deletes of one object may then both return True.
        """
        existed = self.exists(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._s3_key(key))
        return existed

    def list(self, prefix: str = "") -> Iterator[str]:
        """Iterate over keys in sorted order; see :meth:`ObjectStore.list`.

        S3 lists in UTF-8 byte order, which is the code-point order of Python strings.
        Objects under the store's prefix whose names are not valid keys (folder markers
        ending in ``/``, for instance) are skipped.
        """
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        root_length = len(self._key_root)
        with self._errors("list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key_root + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][root_length:]
                    if _key_problem(key) is None:
                        yield key

    def ping(self) -> None:
        """Check that the endpoint answers and the bucket exists and is accessible."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_BUCKET_CODES:
                raise UnavailableError(
                    f"S3 bucket {self.bucket!r} does not exist at {self._where}."
                ) from exc
            raise self._translate(exc, "access", None) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._translate(exc, "access", None) from exc

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _path_from_file_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            OBJECT_STORE_SETTING,
            f"a file:// URL needs an absolute path (file:///path), got {url!r}",
        )
    if not parts.path:
        raise ConfigurationError(OBJECT_STORE_SETTING, f"the file:// URL {url!r} has no path")
    return Path(url2pathname(parts.path))


def open_object_store(settings: Settings, *, check: bool = True) -> ObjectStore:
    """Build the object store that ``settings`` names, and check that it can be used.

    ``file:///path`` (and the default, ``<data_dir>/objects``) gives a
    :class:`LocalObjectStore`; ``s3://bucket/prefix`` gives an :class:`S3ObjectStore` with
    the ``SYNAPSENET_S3_*`` endpoint, region and credentials. The bucket is never created
    here: a missing bucket is a configuration mistake.

    Args:
        settings: The process settings.
        check: Call :meth:`ObjectStore.ping` before returning (the start-up check).

    Returns:
        The store, ready to use.

    Raises:
        ConfigurationError: Naming ``SYNAPSENET_OBJECT_STORE_URL`` when the URL is malformed,
            the directory cannot be created, the bucket does not exist or the endpoint cannot
            be reached.
    """
    url = settings.resolved_object_store_url
    parts = urlsplit(url)
    store: ObjectStore
    try:
        if parts.scheme == "file":
            store = LocalObjectStore(_path_from_file_url(url))
        elif parts.scheme == "s3" and parts.netloc:
            secret = settings.s3_secret_access_key
            store = S3ObjectStore(
                parts.netloc,
                unquote(parts.path),
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                access_key_id=settings.s3_access_key_id,
                secret_access_key=secret.get_secret_value() if secret is not None else None,
            )
        else:
            raise ConfigurationError(
                OBJECT_STORE_SETTING, f"must be a file:// or s3://bucket URL, got {url!r}"
            )
    except (InvalidError, UnavailableError) as exc:
        raise ConfigurationError(OBJECT_STORE_SETTING, f"{exc.detail} (from {url!r})") from exc
    if check:
        try:
            store.ping()
        except (InvalidError, UnavailableError) as exc:
            store.close()
            raise ConfigurationError(OBJECT_STORE_SETTING, f"{exc.detail} (from {url!r})") from exc
    return store
