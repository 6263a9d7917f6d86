"""How bytes become addressed chunks: content-defined cut points and BLAKE3 addresses.

Cut points come from FastCDC 2020 as the ``pyfastcdc`` package computes them (normalized
chunking level 1, its default gear table): :func:`chunk_bytes` calls it, and the streaming
cutter makes the same cuts in compiled code with its tables (:func:`fastcdc_args`; the
oracle tests compare the two). A cut depends only on the bytes just before it,
so inserting, deleting or appending bytes moves the cut points near the edit and leaves the
others where they were: an edited or grown file shares all its other chunks with the old one.

Chunks from :func:`iter_chunks` (streaming) and :func:`chunk_bytes` (in memory) are identical
for the same bytes and parameters, whatever sizes the stream's reads return: FastCDC looks at
most ``max_size`` bytes ahead, and the streaming cutter always has that many read ahead.

Addressing is canonical and never depends on how a chunk is stored:

* a chunk's address is the lowercase hex BLAKE3 digest (32 bytes, 64 characters) of its raw,
  uncompressed bytes (:func:`chunk_address`);
* its object key is ``chunks/<first 2 hex digits>/<remaining 62>`` (:func:`chunk_key`); the
  two-digit fan-out keeps local directories small and spreads S3 key prefixes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

import blake3
from pyfastcdc import FastCDC
from pyfastcdc.py.constants import GEAR, GEAR_LS, MASKS
from pyfastcdc.utils import logarithm2

from synapsenet.errors import InvalidError

KiB: Final = 1024
MiB: Final = 1024 * KiB

DIGEST_HEX_LENGTH: Final = 64
"""Length of a BLAKE3 digest in hex: chunk addresses, file hashes and Merkle roots."""
CHUNK_KEY_PREFIX: Final = "chunks/"
"""Every chunk object's key starts with this."""

_HEX_DIGITS = frozenset("0123456789abcdef")

# FastCDC's own limits (pyfastcdc refuses anything outside them).
_SIZE_BOUNDS: Final = {
    "min_size": (64, MiB),
    "avg_size": (256, 4 * MiB),
    "max_size": (KiB, 16 * MiB),
}
_NORMALIZATION: Final = 1
"""FastCDC's normalized chunking level (pyfastcdc's default): a store's cuts depend on it."""
MAX_CHUNK_SIZE: Final = _SIZE_BOUNDS["max_size"][1]
"""No chunking parameters produce a chunk larger than this (16 MiB)."""


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    """The sizes that steer content-defined chunking.

    FastCDC starts looking for a cut point ``min_size`` bytes into a chunk, so the mean
    chunk size on random data is about ``min_size + avg_size`` (about 20 KiB with the
    defaults). Smaller chunks dedupe scattered edits better (an edit rewrites its chunk):
    on ten versions of a CSV with 0.1% of rows edited at random per version, 4/16/128 KiB
    stores half the unique bytes of 16/64/256 KiB. Packs (see :mod:`.packs`) keep the
    number of chunks from costing one object each. Every chunk but a file's last is at least
    ``min_size`` bytes; none is larger than ``max_size``. Files chunked with different
    parameters still round-trip, they just share fewer chunks.

    Attributes:
        min_size: Smallest chunk, in bytes (64 B to 1 MiB).
        avg_size: Target of the cut-point mask, in bytes (256 B to 4 MiB).
        max_size: Largest chunk, in bytes (1 KiB to 16 MiB); streaming holds about twice
            this much.

    Raises:
        InvalidError: Naming the parameter, if a size is not an int in its range or the
            sizes are not ordered ``min_size <= avg_size <= max_size``.
    """

    min_size: int = 4 * KiB
    avg_size: int = 16 * KiB
    max_size: int = 128 * KiB

    def __post_init__(self) -> None:
        for name, (low, high) in _SIZE_BOUNDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidError(
                    f"The {name!r} parameter of ChunkingParams must be an int in "
                    f"[{low}, {high}]. Got {value!r} instead.",
                    field=name,
                )
        if not self.min_size <= self.avg_size <= self.max_size:
            raise InvalidError(
                "The parameters of ChunkingParams must satisfy min_size <= avg_size <= "
                f"max_size. Got {self.min_size}, {self.avg_size}, {self.max_size} instead.",
                field="avg_size",
            )

    def _chunker(self) -> FastCDC:
        # A FastCDC object holds only the parameters; each cut_* call has its own state.
        return FastCDC(
            self.avg_size,
            min_size=self.min_size,
            max_size=self.max_size,
            normalized_chunking=_NORMALIZATION,
        )


def fastcdc_args(params: ChunkingParams) -> tuple[int, int, int, int, int, bytes, bytes]:
    """What the compiled cutter needs to cut exactly where pyfastcdc does.

    The sizes, the masks pyfastcdc derives from the average size at the normalized
    chunking level of :meth:`ChunkingParams._chunker`, and its gear tables. The oracle
    tests compare the cuts.
    """
    bits = logarithm2(params.avg_size)
    return (
        params.min_size,
        params.avg_size,
        params.max_size,
        MASKS[bits + _NORMALIZATION],
        MASKS[bits - _NORMALIZATION],
        GEAR.tobytes(),
        GEAR_LS.tobytes(),
    )


DEFAULT_CHUNKING: Final = ChunkingParams()
"""4 KiB minimum, 16 KiB average mask, 128 KiB maximum: chunks of about 20 KiB."""


def iter_chunks(stream: BinaryIO, params: ChunkingParams = DEFAULT_CHUNKING) -> Iterator[bytes]:
    """Cut a binary stream into content-defined chunks, reading it once, front to back.

    The chunk store's own cutter (:class:`~.stream_cutter.StreamCutter`), each chunk copied
    out of its read window. Memory stays at about two windows (1 MiB, or ``2 *
    params.max_size`` if more) whatever the stream's length.

    Args:
        stream: A binary stream, read from its position to its end with ``readinto`` (or
            ``read``). Short reads are fine.
        params: The chunk sizes.

    Yields:
        The chunks, in order; they concatenate to the stream's bytes. An empty stream
        yields nothing.

    Raises:
        InvalidError: If ``stream`` is a text stream (checked at call time).
    """
    from synapsenet.services.dataversion.stream_cutter import StreamCutter  # imports this

    if isinstance(stream, io.TextIOBase):
        raise InvalidError(
            "Chunking needs a binary stream, got a text stream; open the file in 'rb' mode.",
            field="stream",
        )
    return (bytes(view) for view in StreamCutter(params).cut(stream))


def chunk_bytes(
    data: bytes | bytearray | memoryview, params: ChunkingParams = DEFAULT_CHUNKING
) -> list[bytes]:
    """Cut bytes already in memory into content-defined chunks.

    Gives the same chunks as :func:`iter_chunks` over a stream of the same bytes.

    Args:
        data: The bytes to cut.
        params: The chunk sizes.

    Returns:
        The chunks, in order; they concatenate to ``data``. Empty data gives no chunks.
    """
    return [bytes(chunk.data) for chunk in params._chunker().cut_buf(data)]


def chunk_address(data: bytes | bytearray | memoryview) -> str:
    """The content address of a chunk: the hex BLAKE3 digest of its raw bytes.

    Args:
        data: The chunk's uncompressed bytes.

    Returns:
        64 lowercase hexadecimal characters.
    """
    return blake3.blake3(data).hexdigest()


def is_digest(value: object) -> bool:
    """Whether ``value`` is a hex BLAKE3 digest: 64 lowercase hexadecimal characters."""
    return (
        isinstance(value, str) and len(value) == DIGEST_HEX_LENGTH and _HEX_DIGITS.issuperset(value)
    )


def validate_digest(value: str, *, field: str = "address") -> str:
    """Check that ``value`` is a hex BLAKE3 digest (an address, file hash or root).

    Args:
        value: The value to check.
        field: The name of the field holding it, used in the error.

    Returns:
        The value, unchanged.

    Raises:
        InvalidError: Naming the field and the value, if it is not 64 lowercase hex digits.
    """
    if not is_digest(value):
        shown = repr(value) if len(repr(value)) <= 90 else repr(value)[:86] + "...'"
        raise InvalidError(
            f"The {field!r} must be a BLAKE3 digest of {DIGEST_HEX_LENGTH} lowercase "
            f"hexadecimal characters. Got {shown} instead.",
            field=field,
        )
    return value


def chunk_key(address: str) -> str:
    """The object key of the chunk with ``address``: ``chunks/<2 hex>/<62 hex>``.

    Raises:
        InvalidError: If ``address`` is not a hex BLAKE3 digest.
    """
    validate_digest(address)
    return f"{CHUNK_KEY_PREFIX}{address[:2]}/{address[2:]}"


def address_of_key(key: str) -> str | None:
    """The address a chunk object key names, or None if ``key`` is not a canonical chunk key."""
    if not key.startswith(CHUNK_KEY_PREFIX):
        return None
    fanout, _, rest = key[len(CHUNK_KEY_PREFIX) :].partition("/")
    address = fanout + rest
    if len(fanout) != 2 or not is_digest(address):
        return None
    return address
