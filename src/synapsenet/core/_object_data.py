"""What goes into and comes out of an object store, and the streaming both backends share.

:data:`ObjectData` is what a put accepts and :class:`ObjectInfo` what a store reports; both
are re-exported by :mod:`synapsenet.core.storage`. The private helpers turn any
:data:`ObjectData` into byte chunks without holding the whole object in memory, and turn
chunks back into a readable stream.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO, cast

from synapsenet.errors import InvalidError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = MiB
MIN_PART_SIZE = 5 * MiB
"""The smallest multipart part S3 accepts (except the last)."""
"""Chunk size of :meth:`ObjectStore.iter_chunks` and of reads from put's file objects."""

ObjectData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes | bytearray | memoryview]
"""What :meth:`ObjectStore.put` stores: bytes, a binary file object read to its end, or an
iterable of byte chunks."""


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InvalidError(
            f"The 'chunk_size' parameter must be an int >= 1. Got {chunk_size!r} instead.",
            field="chunk_size",
        )


def _check_range(offset: int, length: int) -> None:
    for name, value in (("offset", offset), ("length", length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidError(
                f"The {name!r} parameter of get_range must be an int >= 0. Got {value!r} instead.",
                field=name,
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
