"""Types of the compiled BLAKE3 hashing and guided matching (``_cuts.c``)."""

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

def cuts(
    data: Buffer,
    start: int,
    reach: int,
    eof: bool,
    most: int,
    min_size: int,
    avg_size: int,
    max_size: int,
    mask_s: int,
    mask_l: int,
    gear: Buffer,
    gear_ls: Buffer,
    quote: int,
    /,
) -> tuple[list[int], bool]:
    """Where the chunks from ``start`` end, and whether every cut moved to a row end.

    FastCDC 2020 cuts as pyfastcdc makes them (``mask_s``/``mask_l`` and the 256-entry
    ``gear``/``gear_ls`` tables are its own), each moved to a row end if ``quote`` >= 0,
    while ``reach`` bytes are left after a chunk's start (or to the end if ``eof``); at
    most ``most`` chunks, or all if negative.

    Raises:
        ValueError: If a gear table is not 256 uint64 or an argument is out of range.
    """
