"""The stored form of one chunk: a codec byte, then the payload, checked on every decode.

``0x00``: the payload is the raw chunk. ``0x01``: the payload is one zstd frame that records
its content size. A chunk is compressed only when that makes it smaller, so incompressible
data costs one byte. The address is always the BLAKE3 of the raw bytes, so the codec can
change without changing addresses, and :meth:`ChunkCodec.decode` checks the decoded bytes
against the address.

The same stored form is a loose chunk object's whole content and one record of a pack (see
:mod:`.packs`).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence
from typing import Any, Final, Literal, cast

import zstandard

from synapsenet.errors import InvalidError, SynapseNetError
from synapsenet.services.dataversion._cuts import addresses
from synapsenet.services.dataversion.chunking import MAX_CHUNK_SIZE, chunk_address

__all__ = ["ChunkCodec", "Compression", "CorruptDataError"]

Compression = Literal["zstd", "none"]

_RAW: Final = 0
_ZSTD: Final = 1
MAX_LEVEL: Final = zstandard.MAX_COMPRESSION_LEVEL


class CorruptDataError(SynapseNetError):
    """Stored data does not match its address or recorded hash (HTTP 500).

    Raised when a chunk, file or manifest read back from the object store is truncated,
    undecodable or hashes to something else than recorded: data was damaged at rest or
    in transit, never by the caller's input.

    Attributes:
        subject: What is corrupt, e.g. ``"Chunk 3fa2..."`` or ``"File 'data/a.csv'"``.
        problem: What is wrong with it.
    """

    status = 500
    code = "corrupt-data"
    title = "Corrupt data"

    def __init__(self, subject: str, problem: str, **extra: Any) -> None:
        super().__init__(f"{subject} is corrupt: {problem}.", **extra)
        self.subject = subject
        self.problem = problem


def _stored(raw: bytes | memoryview, compressed: bytes | None) -> bytes:
    """The stored form of ``raw``: ``compressed`` (a zstd frame) if that is smaller."""
    if compressed is not None and len(compressed) < len(raw):
        return bytes((_ZSTD,)) + compressed
    return bytes((_RAW,)) + raw


class ChunkCodec:
    """Encodes chunks to their stored form and decodes and verifies them. Thread-safe.

    Args:
        compression: ``"zstd"`` to compress chunks that shrink, or ``"none"``.
        level: zstd level, 1 (fastest) to 22.

    Raises:
        InvalidError: Naming the parameter, if one is out of range.
    """

    def __init__(self, compression: Compression = "zstd", level: int = 1) -> None:
        if compression not in ("zstd", "none"):
            raise InvalidError(
                "The 'compression' parameter of ChunkStore must be 'zstd' or 'none'. "
                f"Got {compression!r} instead.",
                field="compression",
            )
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= MAX_LEVEL:
            raise InvalidError(
                f"The 'level' parameter of ChunkStore must be an int in [1, {MAX_LEVEL}]. "
                f"Got {level!r} instead.",
                field="level",
            )
        self.compression = compression
        self.level = level
        # zstd contexts are not thread-safe; each thread gets its own, reused across chunks.
        self._contexts = threading.local()

    def encode(self, raw: bytes | memoryview) -> bytes:
        """The stored form of the raw chunk ``raw``."""
        if self.compression == "none":
            return _stored(raw, None)
        return _stored(raw, self._compressor().compress(raw))

    def encode_many(self, raws: Sequence[bytes | memoryview]) -> list[bytes]:
        """The stored forms of ``raws``, as :meth:`encode` gives them, compressed in one call.

        One call releases the GIL once for all of them instead of once per chunk.
        """
        if self.compression == "none" or not raws:
            return [_stored(raw, None) for raw in raws]
        compressed = self._compressor().multi_compress_to_buffer(list(raws))
        # Segments export the buffer protocol (their stub does not say so).
        return [_stored(raw, cast(bytes, compressed[number])) for number, raw in enumerate(raws)]

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._contexts, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
            self._contexts.compressor = compressor
        return compressor

    def decode(self, address: str, blob: bytes | memoryview, where: str, **extra: Any) -> bytes:
        """Decode a stored chunk and check it against its address.

        Args:
            address: The chunk's address.
            blob: The stored form.
            where: Where the stored form was read, for messages, e.g. ``"its object 'k'"``.
            extra: Added to the error's ``extra`` (the key, the pack and offset...).

        Returns:
            The raw chunk.

        Raises:
            CorruptDataError: Naming the address and ``where``, if ``blob`` is empty, has an
                unknown codec byte, does not decode, or decodes to other bytes.
        """

        def corrupt(problem: str) -> CorruptDataError:
            return CorruptDataError(
                f"Chunk {address}", f"{where} {problem}", address=address, **extra
            )

        if not blob:
            raise corrupt("is empty (no codec byte)")
        codec, payload = blob[0], memoryview(blob)[1:]
        if codec == _RAW:
            data = bytes(payload)
        elif codec != _ZSTD:
            raise corrupt(f"has an unknown codec byte 0x{codec:02x}")
        else:
            try:
                # Bound the output before allocating it: the frame header is untrusted.
                declared = zstandard.frame_content_size(payload)
                if not 0 <= declared <= MAX_CHUNK_SIZE:
                    raise corrupt(f"is a zstd frame declaring {declared} bytes of content")
                data = self._decompressor().decompress(payload)
            except zstandard.ZstdError as exc:
                raise corrupt(f"is not a valid zstd frame ({exc})") from exc
        actual = chunk_address(data)
        if actual != address:
            raise corrupt(f"decodes to {len(data)} bytes whose BLAKE3 is {actual}")
        return data

    def decode_run(
        self, blobs: Sequence[memoryview], expected: Sequence[str], sizes: Sequence[int]
    ) -> bytes | None:
        """The raw chunks of ``blobs``, back to back, if every one decodes to its address.

        The fast path of reading adjacent records: one call decompresses every zstd record
        and one hashes every chunk, each releasing the GIL once for the run instead of
        twice per chunk. Frames are decompressed to the ``sizes`` the caller expects (their
        headers are not trusted for that).

        Args:
            blobs: Stored forms, each with its codec byte.
            expected: The chunks' addresses.
            sizes: Their raw sizes.

        Returns:
            The chunks' bytes; None if a record has no known codec byte, does not decode
            or decodes to other bytes than its address's: :meth:`decode` each then, to
            learn which.
        """
        if not all(0 < size <= MAX_CHUNK_SIZE for size in sizes):
            return None
        pieces: list[bytes | memoryview] = []
        frames: list[int] = []  # the positions of the zstd records
        for position, (blob, size) in enumerate(zip(blobs, sizes, strict=True)):
            codec = blob[0] if blob else None
            if codec == _ZSTD:
                frames.append(position)
            elif codec != _RAW or len(blob) - 1 != size:
                return None
            pieces.append(blob[1:])
        if frames:
            try:
                decoded = self._decompressor().multi_decompress_to_buffer(
                    [pieces[position] for position in frames],
                    decompressed_sizes=array("Q", [sizes[p] for p in frames]).tobytes(),
                )
            except zstandard.ZstdError:
                return None
            # zstd fails a frame that decodes to another size than given. Segments export
            # the buffer protocol (their stub does not say so).
            for number, position in enumerate(frames):
                pieces[position] = cast(bytes, decoded[number])
        data = b"".join(pieces)
        if addresses(data, 0, sizes) != list(expected):
            return None
        return data

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(
            self._contexts, "decompressor", None
        )
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._contexts.decompressor = decompressor
        return decompressor
