"""Types of the compiled BLAKE3 hashing and guided matching (``_blake3.c``)."""

from array import array
from collections.abc import Sequence
from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview | array[int]

def addresses(data: Buffer, start: int, sizes: Sequence[int], /) -> list[str]:
    """The hex BLAKE3 digests of consecutive pieces of ``data``, the first at ``start``.

    Raises:
        ValueError: If ``start`` or a size runs outside ``data``.
    """

def follow(
    data: Buffer,
    start: int,
    number: int,
    sizes: Buffer,
    firsts: Buffer,
    digests: Buffer,
    min_size: int,
    reach: int,
    quote: int,
    /,
) -> tuple[int, int, str | None]:
    """Take guide chunks from ``number`` on at ``start`` while they check and hash right.

    Args:
        data: The bytes read.
        start: Where guide chunk ``number`` may start.
        number: The guide chunk expected there.
        sizes: The guide's chunk sizes, int64 each.
        firsts: Each guide chunk's first byte.
        digests: Each guide chunk's 32-byte BLAKE3 digest.
        min_size: The smallest chunk a cut gives.
        reach: Bytes past a chunk's start that decide where it ends.
        quote: The quote byte when cutting at row ends, -1 otherwise.

    Returns:
        Where it stopped, the guide chunk expected there, and the hex address of the bytes
        there if they passed the byte checks but hashed to another address (else None).

    Raises:
        ValueError: If the guide's fields disagree in length or an argument is out of range.
    """
