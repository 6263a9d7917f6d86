"""Object storage: dataset chunks, model artifacts and manifests, by key.

Two backends honour one contract, :class:`ObjectStore`: :class:`LocalObjectStore` (a
directory, the embedded default) and :class:`S3ObjectStore` (any S3-compatible server).
Keys are validated once, by :func:`validate_key`, so every backend accepts and refuses the
same keys. Writes and reads stream: a put from a file or an iterable never holds the whole
object in memory, and :meth:`ObjectStore.iter_chunks` reads one chunk at a time.

:func:`open_object_store` builds the store that the settings name and checks that it can be
used, so a wrong URL, a missing bucket or an unreachable endpoint fails at start-up with a
:class:`~synapsenet.errors.ConfigurationError` rather than on the first request.

This module holds the public surface: the contract, :func:`open_object_store` and everything
callers import. The pieces live in private modules: key rules in ``_storage_keys``, the data
types and shared streaming in ``_object_data``, and the backends in ``_local_store`` and
``_s3_store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from synapsenet.core._local_store import LocalObjectStore
from synapsenet.core._object_data import (
    DEFAULT_CHUNK_SIZE,
    MIN_PART_SIZE,
    MiB,
    ObjectData,
    ObjectInfo,
)
from synapsenet.core._storage_keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    RESERVED_SEGMENT_PREFIX,
    validate_key,
    validate_prefix,
)
from synapsenet.env_vars import ENV_PREFIX
from synapsenet.errors import ConfigurationError, InvalidError, UnavailableError

if TYPE_CHECKING:
    from synapsenet.config import Settings
    from synapsenet.core._s3_store import S3ObjectStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "MIN_PART_SIZE",
    "OBJECT_STORE_SETTING",
    "RESERVED_SEGMENT_PREFIX",
    "LocalObjectStore",
    "MiB",
    "ObjectData",
    "ObjectInfo",
    "ObjectStore",
    "S3ObjectStore",
    "open_object_store",
    "validate_key",
    "validate_prefix",
]

OBJECT_STORE_SETTING = ENV_PREFIX + "OBJECT_STORE_URL"


def __getattr__(name: str) -> Any:
    # boto3 takes ~40 MB and a few hundred ms to import: only processes that use S3 pay it.
    if name == "S3ObjectStore":
        from synapsenet.core._s3_store import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes of an object starting at byte ``offset`` (a ranged GET).

        Fewer bytes come back only when the object ends first; none when ``offset`` is at
        or past its end.

        Raises:
            InvalidError: If ``offset`` or ``length`` is not an int >= 0.
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

    def deferred_sync(self) -> AbstractContextManager[None]:
        """Group this thread's puts so they reach stable storage together, at the end.

        Inside the block a put may return before its bytes are durable; leaving the block
        without an error makes every one of them durable. Callers use it around many small
        writes (the chunks of a commit) that are only referenced once the block is left.
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
            from synapsenet.core._s3_store import S3ObjectStore

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
