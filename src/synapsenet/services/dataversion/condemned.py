"""The condemned list: stored chunk copies a sweep found unreferenced, and since when.

A sweep (see :mod:`.sweep`) deletes a chunk copy only if an earlier sweep already found it
unreferenced at least a grace period ago and it is still unreferenced; meanwhile the copy
is *condemned*, and commits do not reuse a condemned chunk (they store it again). The list
is one object, ``gc/condemned``, replaced whole by each sweep. All integers big-endian::

    magic   b"SNCONDEM"                  8 bytes
    version u32 = 1, count u32
    count entries, sorted: address (32-byte BLAKE3 digest), pack id (16 bytes, all zero
        for a loose chunk object), condemned at (i64, microseconds since the Unix epoch)
    BLAKE3 digest of every byte above    32 bytes

A copy is one record of one pack, or a loose object: a commit that finds a chunk condemned
stores a new copy in a pack of its own, which the condemnation of the old copy does not
cover.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion._documents import seal, unseal
from synapsenet.services.dataversion.chunk_codec import CorruptDataError

__all__ = [
    "CONDEMNED_KEY",
    "LOOSE",
    "Copy",
    "condemned_addresses",
    "decode_condemned",
    "encode_condemned",
    "load_condemned",
    "save_condemned",
]

CONDEMNED_KEY: Final = "gc/condemned"
LOOSE: Final = ""
"""The pack id of a loose chunk object's copy."""
_MAGIC: Final = b"SNCONDEM"
_VERSION: Final = 1
_HEADER = struct.Struct(">8sII")
_ENTRY = struct.Struct(">32s16sq")
_NO_PACK: Final = bytes(16)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Copy(NamedTuple):
    """One stored copy of a chunk: its address and the pack holding it (:data:`LOOSE`)."""

    address: str
    pack_id: str


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def encode_condemned(condemned: Mapping[Copy, datetime]) -> bytes:
    """The list document of ``condemned`` (copy to the time it was first condemned)."""
    rows = sorted(
        _ENTRY.pack(
            bytes.fromhex(copy.address),
            bytes.fromhex(copy.pack_id) if copy.pack_id else _NO_PACK,
            _micros(moment),
        )
        for copy, moment in condemned.items()
    )
    return seal(_HEADER, (_MAGIC, _VERSION, len(rows)), rows)


def decode_condemned(document: bytes) -> dict[Copy, datetime]:
    """Parse and check a list document.

    Raises:
        CorruptDataError: Naming the key, if the document is truncated, fails its checksum
            or has another magic or version. Deleting the object is a safe repair: it only
            postpones the deletion of the copies it named to the sweep after next.
    """

    def corrupt(problem: str) -> CorruptDataError:
        return CorruptDataError(f"Condemned list {CONDEMNED_KEY!r}", problem, key=CONDEMNED_KEY)

    _, rows = unseal(document, _HEADER, _ENTRY, _MAGIC, _VERSION, corrupt)
    return {
        Copy(address.hex(), "" if pack == _NO_PACK else pack.hex()): _EPOCH
        + timedelta(microseconds=micros)
        for address, pack, micros in rows
    }


def load_condemned(store: ObjectStore) -> dict[Copy, datetime]:
    """The condemned copies and when each was first condemned; empty if there is no list.

    Raises:
        CorruptDataError: If the list is damaged (see :func:`decode_condemned`).
    """
    try:
        document = store.get(CONDEMNED_KEY)
    except NotFoundError:
        return {}
    return decode_condemned(document)


def condemned_addresses(store: ObjectStore) -> frozenset[str]:
    """The addresses of which some copy is condemned: chunks a write must not reuse."""
    return frozenset(copy.address for copy in load_condemned(store))


def save_condemned(store: ObjectStore, condemned: Mapping[Copy, datetime]) -> None:
    """Replace the list with ``condemned``; an empty list deletes the object."""
    if condemned:
        store.put(CONDEMNED_KEY, encode_condemned(condemned))
    else:
        store.delete(CONDEMNED_KEY)
