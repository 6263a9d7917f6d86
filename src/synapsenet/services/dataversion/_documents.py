"""Small binary documents of the chunk store: a header, fixed-size entries, a BLAKE3 trailer.

A header starts with an 8-byte magic, a u32 version and a u32 entry count (big-endian);
the document's last 32 bytes are the BLAKE3 digest of every byte before them. Pack indexes
(:mod:`.packs`) and the condemned list (:mod:`.condemned`) are such documents.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, Final

import blake3

from synapsenet.services.dataversion.chunk_codec import CorruptDataError

DIGEST_SIZE: Final = 32
"""Bytes of the BLAKE3 trailer that ends every document."""


def seal(header: struct.Struct, fields: tuple[Any, ...], rows: Iterable[bytes]) -> bytes:
    """The document with header ``fields`` (magic, version, count first) and ``rows``."""
    body = header.pack(*fields) + b"".join(rows)
    return body + blake3.blake3(body).digest()


def unseal(
    document: bytes,
    header: struct.Struct,
    entry: struct.Struct,
    magic: bytes,
    version: int,
    corrupt: Callable[[str], CorruptDataError],
) -> tuple[tuple[Any, ...], Any]:
    """Check a document and split it into its header fields and its entries.

    Args:
        document: The bytes read.
        header: The header's layout: magic, version and count, then any other fields.
        entry: One entry's layout.
        magic: The expected magic.
        version: The expected version.
        corrupt: Builds the error for a problem, naming the document.

    Returns:
        The header fields after the count, and an iterator over the unpacked entries.

    Raises:
        CorruptDataError: From ``corrupt``, if the document is truncated, fails its
            checksum, has another magic or version, or holds another number of entries than
            its header declares.
    """
    body, digest = document[:-DIGEST_SIZE], document[-DIGEST_SIZE:]
    if len(body) < header.size:
        raise corrupt(f"it is {len(document)} bytes, shorter than its header")
    if blake3.blake3(body).digest() != digest:
        raise corrupt("its checksum does not match its content")
    found_magic, found_version, count, *rest = header.unpack_from(body)
    if found_magic != magic or found_version != version:
        raise corrupt(
            f"it has magic {found_magic!r} and version {found_version}, not {magic!r} {version}"
        )
    if len(body) != header.size + count * entry.size:
        raise corrupt(f"it declares {count} entries but holds {len(body) - header.size} bytes")
    return tuple(rest), entry.iter_unpack(body[header.size :])
