"""The local object store: objects as files under a directory, the embedded default.

:class:`LocalObjectStore` is re-exported by :mod:`synapsenet.core.storage`, which documents
the contract it honours.
"""

from __future__ import annotations

import builtins
import os
import secrets
import stat as stat_module
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from synapsenet.core._object_data import (
    DEFAULT_CHUNK_SIZE,
    ObjectData,
    ObjectInfo,
    _check_chunk_size,
    _check_range,
    _exact_chunks,
    _iter_data,
)
from synapsenet.core._storage_keys import (
    RESERVED_SEGMENT_PREFIX,
    _key_problem,
    _shorten,
    validate_key,
    validate_prefix,
)
from synapsenet.errors import ConflictError, InvalidError, NotFoundError, UnavailableError


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
        self._deferred = threading.local()

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
                modified_ns = self._sync(key, temp_file, durable=not self._deferring())
            self._replace(key, temp_path, path)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            self._prune_empty_dirs(path.parent)
            raise
        if not self._deferring():
            _fsync_dir(path.parent)
        return ObjectInfo(key=key, size=size, modified=_utc_from_ns(modified_ns))

    def _deferring(self) -> bool:
        return bool(getattr(self._deferred, "depth", 0))

    @contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Skip the per-object fsyncs of this thread's puts; sync once when the block ends.

        Thousands of small objects (a commit's chunks) would otherwise cost two fsyncs
        each; one ``sync()`` at the end makes them all durable at once, before the caller
        records anything that references them.
        """
        depth = getattr(self._deferred, "depth", 0)
        self._deferred.depth = depth + 1
        try:
            yield
        finally:
            self._deferred.depth = depth
        if depth == 0:
            os.sync()

    def _write_failed(self, key: str, exc: OSError) -> UnavailableError:
        return UnavailableError(
            f"Cannot write object {_shorten(key)} under {str(self._root)!r}: {exc.strerror}."
        )

    def _write(self, key: str, file: BinaryIO, chunk: bytes) -> None:
        try:
            file.write(chunk)
        except OSError as exc:
            raise self._write_failed(key, exc) from exc

    def _sync(self, key: str, file: BinaryIO, *, durable: bool = True) -> int:
        """Flush ``file`` (to disk when ``durable``) and return its modification time in ns."""
        try:
            file.flush()
            if durable:
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

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read part of an object; see :meth:`ObjectStore.get_range`."""
        _check_range(offset, length)
        with self._open_file(key) as file:
            file.seek(offset)
            return file.read(length)

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
