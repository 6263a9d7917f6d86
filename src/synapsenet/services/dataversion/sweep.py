"""Garbage collection of chunks: the protocol that keeps commits in flight safe, and the sweep.

Chunks are shared between versions, so only a sweep over every committed version may delete
one. The order of writes and of the sweep's steps keeps a concurrent commit safe:

1. A commit writes its new chunks into packs, then the packs' indexes, then its manifest,
   then its version row (the commit point).
2. A collector takes a cutoff ``T = now - grace`` *first*, then reads the referenced
   addresses from every committed manifest, then calls :meth:`ChunkStore.sweep` with
   ``older_than=T``. The sweep looks only at packs whose index was written before ``T``
   (and at loose chunks written before ``T``). Such a pack holding no referenced chunk is
   deleted; one holding some is *repacked*: its referenced chunks are read, verified and
   copied into a new pack, whose index is durable before the old index and then the old
   pack are deleted (a reader that finds the old pack gone reloads the indexes and finds
   the new one). A pack without an index written before ``T`` is deleted too: its commit
   died or was refused. Unreferenced loose chunks written before ``T`` are deleted.

Why that is safe: take a commit whose first write starts at ``s`` and whose version row
lands at ``c``. If ``c`` comes before the collector reads the references, its chunks are
referenced, and repacking keeps them. Otherwise ``c`` is after the cutoff was taken, so
``c > T + grace``. The packs the commit wrote were written after ``s``, and a sweep touches
them only if ``s < T``, that is if the commit took longer than ``grace``. A chunk the commit
*reuses* may sit in an old pack that also holds unreferenced chunks, so the commit reuses a
packed chunk only if its pack's index was written less than ``freshen_after`` ago, and
otherwise writes the chunk again into its own pack (as git rewrites an object it would have
written). Every pack the commit relies on was therefore written after ``s - freshen_after``,
and the collector is safe against every commit that finishes within ``grace -
freshen_after`` of its first write: choose ``grace`` larger than ``freshen_after`` by that
margin plus the clock skew between the collector and the object store (S3 times are whole
seconds). With the default ``freshen_after`` of 30 minutes and a one-hour grace, commits
have 30 minutes. A sweep with ``older_than=now`` is only safe while no commit runs. Packs
are never rewritten in place (a new pack gets a new random id), so no commit can race the
sweep on a pack. One window remains for loose chunks: the sweep reads a loose chunk's time
and then deletes it, and a :meth:`ChunkStore.put` that rewrites that very chunk between the
two loses it. Run one collector at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion._parallel import bounded_map
from synapsenet.services.dataversion.chunking import MiB
from synapsenet.services.dataversion.packs import (
    IndexEntry,
    PackInfo,
    PackWriter,
    Record,
    index_key,
    list_packs,
    load_pack,
    pack_key,
)

if TYPE_CHECKING:
    from synapsenet.services.dataversion.chunks import ChunkStore

__all__ = ["SweepReport", "sweep"]

# Referenced records of a pack being rewritten are read this many bytes at a time.
_READ_BYTES = MiB


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one :meth:`ChunkStore.sweep` did.

    Attributes:
        deleted: Chunks deleted (or, in a dry run, that would have been).
        kept_referenced: Chunks kept because a version references them.
        kept_recent: Unreferenced chunks kept because they were written at or after the
            cutoff (they may belong to a commit in flight).
        bytes_freed: Stored (possibly compressed) bytes of the deleted chunks, plus the
            bytes of deleted packs that had no index.
        packs_rewritten: Packs whose referenced chunks were copied into a new pack.
        packs_deleted: Packs deleted whole (nothing referenced, or no index).
        stats_deleted: Per-chunk statistics objects of files no version holds (see
            :mod:`.chunk_stats`), deleted by the engine's gc.
    """

    deleted: int
    kept_referenced: int
    kept_recent: int
    bytes_freed: int
    packs_rewritten: int = 0
    packs_deleted: int = 0
    stats_deleted: int = 0


def sweep(
    chunks: ChunkStore,
    referenced: Collection[str],
    *,
    older_than: datetime,
    dry_run: bool = False,
) -> SweepReport:
    """Delete the chunks no version references that were last written before a cutoff.

    Follow the module's garbage collection protocol: take ``older_than`` before reading
    ``referenced`` from the committed manifests, and leave a grace period for commits in
    flight. Packs written before the cutoff lose their unreferenced chunks (the pack is
    rewritten without them, or deleted if none is referenced); loose chunks are deleted one
    by one.

    Args:
        chunks: The chunk store to sweep.
        referenced: Addresses of every chunk a committed version references.
        older_than: Aware cutoff; unreferenced chunks written at or after it are kept.
        dry_run: Count what would be deleted without deleting or writing anything.

    Returns:
        What was deleted and kept.

    Raises:
        InvalidError: If ``older_than`` is naive.
        CorruptDataError: If a referenced chunk of a pack to rewrite is damaged; that pack
            is left as it was.
    """
    if not isinstance(older_than, datetime) or older_than.utcoffset() is None:
        raise InvalidError(
            "The 'older_than' parameter of sweep must be a timezone-aware datetime. "
            f"Got {older_than!r} instead.",
            field="older_than",
        )
    keep = referenced if isinstance(referenced, set | frozenset) else frozenset(referenced)
    packed = _sweep_packs(chunks, keep, older_than, dry_run)
    loose = _sweep_loose(chunks, keep, older_than, dry_run)
    return SweepReport(*(a + b for a, b in zip(_counts(packed), _counts(loose), strict=True)))


def _counts(report: SweepReport) -> tuple[int, ...]:
    return (
        report.deleted,
        report.kept_referenced,
        report.kept_recent,
        report.bytes_freed,
        report.packs_rewritten,
        report.packs_deleted,
    )


def _sweep_loose(
    chunks: ChunkStore, keep: Collection[str], older_than: datetime, dry_run: bool
) -> SweepReport:
    kept_referenced = 0

    def unreferenced() -> Iterator[str]:
        nonlocal kept_referenced
        for address in chunks.loose_addresses():
            if address in keep:
                kept_referenced += 1
            else:
                yield address

    def collect(address: str) -> tuple[Literal["deleted", "recent", "gone"], int]:
        try:
            info = chunks.stat(address)
        except NotFoundError:
            return "gone", 0  # deleted concurrently: nothing to count
        if info.modified >= older_than:
            return "recent", 0
        if not dry_run:
            chunks.store.delete(info.key)
        return "deleted", info.size

    deleted = kept_recent = bytes_freed = 0
    for outcome, size in bounded_map(collect, unreferenced(), chunks.threads):
        if outcome == "deleted":
            deleted += 1
            bytes_freed += size
        elif outcome == "recent":
            kept_recent += 1
    return SweepReport(deleted, kept_referenced, kept_recent, bytes_freed)


def _sweep_packs(
    chunks: ChunkStore, keep: Collection[str], older_than: datetime, dry_run: bool
) -> SweepReport:
    store = chunks.store
    deleted = kept_referenced = kept_recent = bytes_freed = rewritten = dropped = 0
    packs, indexes = list_packs(store)
    for pack_id in sorted(packs - indexes):
        # No index: its commit died or was refused, or is still writing (then it is new).
        try:
            info = store.stat(pack_key(pack_id))
        except NotFoundError:
            continue  # published or deleted since the listing
        if info.modified < older_than:
            if not dry_run:
                store.delete(info.key)
            dropped += 1
            bytes_freed += info.size
    for pack_id in sorted(indexes):
        try:
            pack = load_pack(store, pack_id)
        except NotFoundError:
            continue  # collected concurrently
        live = [e for e in pack.entries if e.address in keep]
        dead = len(pack.entries) - len(live)
        kept_referenced += len(live)
        if pack.modified >= older_than:
            kept_recent += dead
            continue
        if not dead:
            continue
        deleted += dead
        bytes_freed += sum(e.length for e in pack.entries) - sum(e.length for e in live)
        if live:
            rewritten += 1
        else:
            dropped += 1
        if not dry_run:
            _drop_pack(chunks, pack, live)
    if not dry_run and (rewritten or dropped):
        chunks.packs.refresh()
    return SweepReport(deleted, kept_referenced, kept_recent, bytes_freed, rewritten, dropped)


def _drop_pack(chunks: ChunkStore, pack: PackInfo, live: list[IndexEntry]) -> None:
    """Copy a pack's ``live`` records into a new pack, then delete the old one."""
    if live:
        writer = PackWriter(chunks.store, chunks.packs, max_bytes=2**62)
        try:
            writer.write(_live_records(chunks, pack, live))
            writer.publish()  # durable before the old pack goes
        except BaseException:
            writer.discard()
            raise
    # Index first: an index never names a pack that is gone or incomplete.
    chunks.store.delete(index_key(pack.pack_id))
    chunks.store.delete(pack_key(pack.pack_id))


def _live_records(chunks: ChunkStore, pack: PackInfo, live: list[IndexEntry]) -> Iterator[Record]:
    """The ``live`` records of a pack, read about 1 MiB at a time and each verified."""
    key = pack_key(pack.pack_id)
    groups: list[list[IndexEntry]] = []
    for entry in live:
        group = groups[-1] if groups else None
        if (
            group is not None
            and entry.offset == group[-1].offset + group[-1].length
            and entry.offset - group[0].offset < _READ_BYTES
        ):
            group.append(entry)
        else:
            groups.append([entry])
    for group in groups:
        start = group[0].offset
        end = group[-1].offset + group[-1].length
        blob = memoryview(chunks.store.get_range(key, start, end - start))
        for item in group:
            record = blob[item.offset - start : item.offset - start + item.length]
            chunks.decode_record(item.address, record, key, item.offset, item.length)
            yield Record(item.address, item.size, bytes(record))
