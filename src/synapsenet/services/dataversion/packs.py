"""Pack files: many chunks in one object, found through an index object written after it.

Storing each chunk as its own object costs a file (or a PUT) per chunk: with chunks of tens
of KiB, a 200 MB commit meant ten thousand files, each created, written, synced and
renamed. A commit instead streams its new chunks, back to back, into a few size-capped pack
objects and then writes one small index per pack: two objects per pack, one sync each.

Layout, under ``packs/``:

* ``packs/<id>.pack``: the records, back to back. A record is a chunk's stored form (codec
  byte, then payload; see :mod:`.chunk_codec`), exactly what a loose chunk object holds.
* ``packs/<id>.idx``: where each record is. All integers big-endian::

      magic   b"SNPACKIX"                 8 bytes
      version u32 = 1, count u32, pack_size u64
      count entries: address (32-byte BLAKE3 digest), offset u64, length u32, size u32
      BLAKE3 digest of every byte above  32 bytes

  ``length`` is the record's stored length and ``size`` the raw chunk's.

``<id>`` is 32 random hex digits, never derived from the content: a pack is written once
and never replaced, so a reader or a collector that saw a pack's index can rely on the pack
staying what it was until it is deleted.

An index is the pack's commit point. A pack whose index is missing (a commit killed while
writing it, or a commit refused before publishing) holds nothing anyone can reference, and
the collector deletes it once it is older than its grace period. Indexes are written after
their pack and deleted before it, so an index never names a pack that was not complete.

:class:`PackCatalog` keeps every index in memory (address to pack, offset, length), loaded
lazily and refreshed when a chunk is not found; :class:`PackWriter` writes packs from a
stream of records and publishes their indexes.
"""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion._documents import seal, unseal
from synapsenet.services.dataversion._gc_pause import collector_paused
from synapsenet.services.dataversion.chunk_codec import CorruptDataError

__all__ = [
    "PACK_KEY_PREFIX",
    "IndexEntry",
    "Location",
    "PackCatalog",
    "PackWriter",
    "Record",
    "decode_index",
    "encode_index",
    "index_key",
    "pack_key",
]

PACK_KEY_PREFIX: Final = "packs/"
_MAGIC: Final = b"SNPACKIX"
_VERSION: Final = 1
_HEADER = struct.Struct(">8sIIQ")
_ENTRY = struct.Struct(">32sQII")
_ID_HEX_LENGTH: Final = 32
_PACK_SUFFIX: Final = ".pack"
_WRITE_BYTES: Final = 1024 * 1024
_INDEX_SUFFIX: Final = ".idx"


def pack_key(pack_id: str) -> str:
    """The object key of pack ``pack_id``'s records."""
    return f"{PACK_KEY_PREFIX}{pack_id}{_PACK_SUFFIX}"


def index_key(pack_id: str) -> str:
    """The object key of pack ``pack_id``'s index."""
    return f"{PACK_KEY_PREFIX}{pack_id}{_INDEX_SUFFIX}"


def _pack_id(key: str, suffix: str) -> str | None:
    """The pack id a key names with ``suffix``, or None if it is not such a key."""
    name = key[len(PACK_KEY_PREFIX) :]
    pack_id = name[: -len(suffix)]
    if (
        key.startswith(PACK_KEY_PREFIX)
        and name.endswith(suffix)
        and len(pack_id) == _ID_HEX_LENGTH
        and all(c in "0123456789abcdef" for c in pack_id)
    ):
        return pack_id
    return None


def list_packs(store: ObjectStore) -> tuple[set[str], set[str]]:
    """The ids of the stored packs and of the stored indexes, in one listing."""
    packs: set[str] = set()
    indexes: set[str] = set()
    for key in store.list(PACK_KEY_PREFIX):
        if (pack_id := _pack_id(key, _PACK_SUFFIX)) is not None:
            packs.add(pack_id)
        elif (pack_id := _pack_id(key, _INDEX_SUFFIX)) is not None:
            indexes.add(pack_id)
    return packs, indexes


class IndexEntry(NamedTuple):
    """One record of a pack: the chunk's address, where its record is, and its raw size."""

    address: str
    offset: int
    length: int
    size: int


class Location(NamedTuple):
    """Where a chunk's record is: its pack, offset and stored length."""

    pack_id: str
    offset: int
    length: int


class Record(NamedTuple):
    """A chunk to write into a pack: its address, raw size and stored form."""

    address: str
    size: int
    blob: bytes


def encode_index(entries: Iterable[IndexEntry], pack_size: int) -> bytes:
    """The index document of a pack holding ``entries`` in ``pack_size`` bytes."""
    rows = [_ENTRY.pack(bytes.fromhex(e.address), e.offset, e.length, e.size) for e in entries]
    return seal(_HEADER, (_MAGIC, _VERSION, len(rows), pack_size), rows)


def decode_index(document: bytes, key: str) -> tuple[list[IndexEntry], int]:
    """Parse and check an index document read from ``key``.

    Returns:
        The entries, in pack order, and the pack's size in bytes.

    Raises:
        CorruptDataError: Naming the key, if the document is truncated, fails its checksum,
            has another magic or version, or lists records outside the pack.
    """

    def corrupt(problem: str) -> CorruptDataError:
        return CorruptDataError(f"Pack index {key!r}", problem, key=key)

    (pack_size,), rows = unseal(document, _HEADER, _ENTRY, _MAGIC, _VERSION, corrupt)
    entries = [IndexEntry(raw.hex(), offset, length, size) for raw, offset, length, size in rows]
    if any(e.offset + e.length > pack_size or e.length < 1 for e in entries):
        raise corrupt(f"it lists a record outside its {pack_size}-byte pack")
    return entries, pack_size


@dataclass(frozen=True, slots=True)
class PackInfo:
    """A published pack: its id, when its index was written, its size and its records."""

    pack_id: str
    modified: datetime
    size: int
    entries: tuple[IndexEntry, ...]


def load_pack(store: ObjectStore, pack_id: str) -> PackInfo:
    """Read and check one pack's index.

    Raises:
        NotFoundError: If the index is gone (the pack was collected).
        CorruptDataError: If the index is damaged.
    """
    key = index_key(pack_id)
    info = store.stat(key)
    entries, size = decode_index(store.get(key), key)
    return PackInfo(pack_id, info.modified, size, tuple(entries))


class PackCatalog:
    """Every published pack's index, in memory: where each packed chunk is. Thread-safe.

    Loaded on first use and refreshed by :meth:`refresh` (a listing, then only the new
    indexes are read); if a pack it knew is gone (collected), the whole catalog is rebuilt,
    since the collector moved that pack's live chunks into another pack.

    Args:
        store: The object store holding the packs.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        # Plain tuples, not Locations: the collector untracks tuples of strings and ints,
        # so a catalog of many chunks costs its full collections nothing.
        self._where: dict[str, tuple[str, int, int]] = {}
        self._modified: dict[str, datetime] = {}
        self._loaded = False

    def refresh(self) -> None:
        """Load the indexes published since the last refresh (all of them on first use)."""
        with self._lock:
            _packs, listed = list_packs(self._store)
            if not self._modified.keys() <= listed:
                # Build aside and swap, so that concurrent lookups see the old catalog or
                # the new one, never a half-built one.
                where: dict[str, tuple[str, int, int]] = {}
                modified: dict[str, datetime] = {}
                self._load(sorted(listed), where, modified)
                self._where, self._modified = where, modified
            else:
                self._load(sorted(listed - self._modified.keys()), self._where, self._modified)
            self._loaded = True

    def _load(
        self,
        pack_ids: list[str],
        where: dict[str, tuple[str, int, int]],
        modified: dict[str, datetime],
    ) -> None:
        with collector_paused():  # tens of thousands of entries, none of them cyclic
            for pack_id in pack_ids:
                try:
                    pack = load_pack(self._store, pack_id)
                except NotFoundError:
                    continue  # collected between the listing and the read
                _register(pack, where, modified)

    def ensure_loaded(self) -> None:
        """Load the catalog if it never was."""
        if not self._loaded:
            self.refresh()

    def add(self, pack: PackInfo) -> None:
        """Make a pack this process just published findable."""
        with self._lock:
            _register(pack, self._where, self._modified)

    def locate(self, address: str) -> Location | None:
        """Where the chunk ``address`` is packed, or None if no known pack holds it."""
        self.ensure_loaded()
        found = self._where.get(address)
        return None if found is None else Location(*found)

    def holds(self, address: str) -> bool:
        """Whether a known pack holds the chunk ``address``."""
        self.ensure_loaded()
        return address in self._where

    def addresses(self) -> set[str]:
        """The addresses of every packed chunk."""
        self.ensure_loaded()
        return set(self._where)


def _register(
    pack: PackInfo, where: dict[str, tuple[str, int, int]], modified: dict[str, datetime]
) -> None:
    modified[pack.pack_id] = pack.modified
    pack_id = pack.pack_id
    for entry in pack.entries:
        where[entry.address] = (pack_id, entry.offset, entry.length)


class PackWriter:
    """Writes records into packs of at most about ``max_bytes``, then publishes their indexes.

    :meth:`write` stores the packs' records, streamed (a record at a time), but nothing can
    find them until :meth:`publish` writes their indexes; :meth:`discard` deletes packs
    that were never published. A record whose address was already written by this writer
    is skipped.

    Args:
        store: The object store.
        catalog: Told about each pack once its index is written.
        max_bytes: Start a new pack once a pack holds this many bytes.
    """

    def __init__(self, store: ObjectStore, catalog: PackCatalog, max_bytes: int) -> None:
        self._store = store
        self._catalog = catalog
        self._max_bytes = max_bytes
        self._written: set[str] = set()
        self._staged: list[tuple[str, list[IndexEntry], int]] = []
        self._failure: Exception | None = None

    def holds(self, address: str) -> bool:
        """Whether this writer wrote a record for ``address`` already."""
        return address in self._written

    def write(self, records: Iterable[Record]) -> None:
        """Store ``records`` (consumed lazily) in as many packs as their size needs.

        Raises:
            Exception: Whatever iterating ``records`` or writing to the store raised; call
                :meth:`discard` then to delete the packs already written.
        """
        source = iter(records)
        while (first := self._next_new(source)) is not None:
            pack_id = secrets.token_hex(_ID_HEX_LENGTH // 2)
            entries: list[IndexEntry] = []
            info = self._store.put(pack_key(pack_id), self._body(first, source, entries))
            self._staged.append((pack_id, entries, info.size))
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure

    def _next_new(self, source: Iterator[Record]) -> Record | None:
        for record in source:
            if record.address not in self._written:
                return record
        return None

    def _body(
        self, first: Record, source: Iterator[Record], entries: list[IndexEntry]
    ) -> Iterator[bytes]:
        # A failure upstream ends the pack early and is raised by write() once the put
        # returns: raised in here, it would surface from inside the store's upload code.
        offset = 0
        pending: list[bytes] = []  # records are joined into ~1 MiB writes
        pending_bytes = 0
        record: Record | None = first
        try:
            while record is not None:
                self._written.add(record.address)
                entries.append(IndexEntry(record.address, offset, len(record.blob), record.size))
                pending.append(record.blob)
                offset += len(record.blob)
                pending_bytes += len(record.blob)
                if pending_bytes >= _WRITE_BYTES:
                    yield b"".join(pending)
                    pending, pending_bytes = [], 0
                if offset >= self._max_bytes:
                    break
                record = self._next_new(source)
        except Exception as exc:  # re-raised by write()
            self._failure = exc
        if pending:
            yield b"".join(pending)

    def publish(self) -> list[PackInfo]:
        """Write the index of every pack written so far; they become findable.

        Returns:
            The published packs.
        """
        published = []
        while self._staged:
            pack_id, entries, size = self._staged[0]
            info = self._store.put(index_key(pack_id), encode_index(entries, size))
            # Once its index is stored a pack is no longer this writer's to discard.
            del self._staged[0]
            pack = PackInfo(pack_id, info.modified, size, tuple(entries))
            self._catalog.add(pack)
            published.append(pack)
        return published

    def discard(self) -> None:
        """Delete the packs written but not published (best effort; gc removes leftovers)."""
        for pack_id, _entries, _size in self._staged:
            try:
                self._store.delete(pack_key(pack_id))
            except Exception:  # noqa: S112 - an unpublished pack is garbage anyway
                continue
        self._staged = []
