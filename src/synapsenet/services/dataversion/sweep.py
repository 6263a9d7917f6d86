"""Garbage collection of chunks: the protocol that keeps commits in flight safe, and the sweep.

Chunks are shared between versions, so only a sweep over every committed version may delete
one, and a commit may reuse any stored chunk, however old: a dataset that gains a version a
day stores each day only what changed. A sweep therefore deletes in two steps, with a grace
period between them, and keeps a list of what it means to delete (see :mod:`.condemned`).

1. A commit writes its new chunks into packs, then the packs' indexes, then its manifest,
   then its version row (the commit point). Before it decides which chunks it can reuse it
   reads the condemned list, and it stores a condemned chunk again, in its own pack, instead
   of reusing it.
2. A collector takes the cutoff ``older_than = now - grace`` *first*, then reads the
   referenced addresses from every committed manifest, then calls
   :meth:`ChunkStore.sweep`, which reads the condemned list. Every stored copy of a chunk
   (a record of a pack, or a loose object) that no version references is either deleted,
   if it was condemned at or before the cutoff, or condemned (it keeps the time it was
   first condemned). The sweep then replaces the list with the copies it condemned, each
   stamped, if new, with the time just before the list is written. A pack losing some
   records is *repacked*: its other records are read, verified and copied into a new pack,
   whose index is durable before the old index and then the old pack are deleted (a reader
   that finds the old pack gone reloads the indexes and finds the new one). A pack without
   an index whose object is older than the cutoff is deleted: its commit died or was
   refused. A referenced chunk stored more than once keeps one copy, once that copy has
   been read back intact.

Why that is safe: take a commit that starts at ``s``, reuses a chunk copy and records its
version at ``c``, and a sweep that deletes that copy. The copy was condemned at a time ``t``
at or before that sweep's cutoff, so the sweep read the references after ``t + grace``; if
``c`` came first, the copy was referenced and kept. Otherwise the commit read a list
written before the copy was condemned (it does not reuse condemned chunks), that is before
about ``t``, so it took longer than ``grace``. Commits that finish within ``grace`` are
therefore safe, whatever the age of the chunks they reuse; no clock but the collector's is
compared, except for packs without an index (the object store's times: allow for the clock
skew in ``grace``). A copy a commit stored after reading a list that condemned the chunk is
a different copy: its pack is new, or, for a loose object, its modification time is later
than the condemnation. A sweep with ``older_than`` at or after its start deletes every
unreferenced copy at once, which is only safe while no commit runs. Packs are never
rewritten in place (a new pack gets a new random id), so no commit can race the sweep on a
pack. Run one collector at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Literal

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion._parallel import bounded_map
from synapsenet.services.dataversion.chunk_codec import CorruptDataError
from synapsenet.services.dataversion.chunking import MiB
from synapsenet.services.dataversion.condemned import LOOSE, Copy, load_condemned, save_condemned
from synapsenet.services.dataversion.packs import (
    IndexEntry,
    Location,
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
        deleted: Chunk copies deleted (or, in a dry run, that would have been): unreferenced
            ones condemned at or before the cutoff, and extra copies of referenced chunks.
        kept_referenced: Chunks kept because a version references them.
        kept_recent: Unreferenced chunk copies kept, condemned: first found unreferenced
            after the cutoff (by this sweep, or by one less than the grace period ago), they
            may belong to a commit in flight. A later sweep deletes those still unreferenced.
        bytes_freed: Stored (possibly compressed) bytes of the deleted copies, plus the
            bytes of deleted packs that had no index.
        packs_rewritten: Packs whose referenced chunks were copied into a new pack.
        packs_deleted: Packs deleted whole (nothing referenced, or no index).
        stats_deleted: Per-chunk statistics objects of files no version holds (see
            :mod:`.chunk_stats`), deleted by the engine's gc.
        cuts_deleted: Stored cuts of versions not recorded (see :mod:`.stored_cuts`),
            deleted by the engine's gc.
    """

    deleted: int
    kept_referenced: int
    kept_recent: int
    bytes_freed: int
    packs_rewritten: int = 0
    packs_deleted: int = 0
    stats_deleted: int = 0
    cuts_deleted: int = 0


def sweep(
    chunks: ChunkStore,
    referenced: Collection[str],
    *,
    older_than: datetime,
    dry_run: bool = False,
    clock: Callable[[], datetime] | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """Delete the chunk copies no version references that were condemned before a cutoff.

    Follow the module's garbage collection protocol: take ``older_than = now - grace``
    before reading ``referenced`` from the committed manifests. Unreferenced
    copies are deleted if an earlier sweep condemned them at or before ``older_than``, and
    condemned otherwise; packs losing records are rewritten without them, or deleted if
    none is left; loose chunks are deleted one by one.

    Args:
        chunks: The chunk store to sweep.
        referenced: Addresses of every chunk a committed version references.
        older_than: Aware cutoff. At or after ``now`` it deletes every unreferenced copy
            at once: only safe while no commit runs.
        dry_run: Count what would be deleted without deleting or writing anything.
        clock: The current time (aware), the collector's clock for condemnation times; by
            default the system's.
        now: When the collector took its cutoff (``clock()`` by default): copies no
            sweep condemned before count as condemned then.

    Returns:
        What was deleted and kept.

    Raises:
        InvalidError: If ``older_than`` is naive.
        CorruptDataError: If a referenced chunk of a pack to rewrite is damaged (that pack
            is left as it was), or if the condemned list is (delete it: see
            :func:`.condemned.decode_condemned`).
    """
    if not isinstance(older_than, datetime) or older_than.utcoffset() is None:
        raise InvalidError(
            "The 'older_than' parameter of sweep must be a timezone-aware datetime. "
            f"Got {older_than!r} instead.",
            field="older_than",
        )
    keep = referenced if isinstance(referenced, set | frozenset) else frozenset(referenced)
    clock = clock or partial(datetime.now, UTC)
    now = clock() if now is None else now
    run = _Run(chunks, keep, load_condemned(chunks.store), older_than, now, dry_run)
    packed = _sweep_packs(run)
    loose = _sweep_loose(run)
    if not dry_run:
        # Copies condemned by this sweep count from now: the list takes effect once written.
        stamp = clock()
        save_condemned(
            chunks.store, {copy: stamp if since is None else since for copy, since in run.after}
        )
    return SweepReport(*(a + b for a, b in zip(_counts(packed), _counts(loose), strict=True)))


@dataclass(slots=True)
class _Run:
    """One sweep's inputs, and the copies it condemns (None: first condemned by this sweep)."""

    chunks: ChunkStore
    keep: Collection[str]
    before: dict[Copy, datetime]
    older_than: datetime
    now: datetime
    dry_run: bool
    after: list[tuple[Copy, datetime | None]] = field(default_factory=list)

    def doomed(self, copy: Copy, written: datetime | None = None) -> bool:
        """Whether an unreferenced copy goes now; if not, it is condemned.

        ``written``: a loose object's modification time, since a write rewrites a loose
        object in place: a copy written after its condemnation is a new one.
        """
        since = self.before.get(copy)
        if since is not None and written is not None and written > since:
            since = None
        if (self.now if since is None else since) <= self.older_than:
            return True
        self.after.append((copy, since))
        return False


def _counts(report: SweepReport) -> tuple[int, ...]:
    return (
        report.deleted,
        report.kept_referenced,
        report.kept_recent,
        report.bytes_freed,
        report.packs_rewritten,
        report.packs_deleted,
    )


def _sweep_loose(run: _Run) -> SweepReport:
    chunks = run.chunks
    kept_referenced = 0

    def unreferenced() -> Iterator[str]:
        nonlocal kept_referenced
        for address in chunks.loose_addresses():
            if address in run.keep:
                kept_referenced += 1
            else:
                yield address

    def collect(address: str) -> tuple[Literal["deleted", "recent", "gone"], int]:
        try:
            info = chunks.stat(address)
        except NotFoundError:
            return "gone", 0  # deleted concurrently: nothing to count
        if not run.doomed(Copy(address, LOOSE), info.modified):
            return "recent", 0
        if not run.dry_run:
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


def _sweep_packs(run: _Run) -> SweepReport:
    chunks, store = run.chunks, run.chunks.store
    deleted = kept_referenced = kept_recent = bytes_freed = rewritten = dropped = 0
    packs, indexes = list_packs(store)
    for pack_id in sorted(packs - indexes):
        # No index: its commit died or was refused, or is still writing (then it is new).
        try:
            info = store.stat(pack_key(pack_id))
        except NotFoundError:
            continue  # published or deleted since the listing
        if info.modified < run.older_than:
            if not run.dry_run:
                store.delete(info.key)
            dropped += 1
            bytes_freed += info.size
    kept: dict[str, Location] = {}  # the copy kept of each referenced chunk
    for pack_id in sorted(indexes):
        try:
            pack = load_pack(store, pack_id)
        except NotFoundError:
            continue  # collected concurrently
        live: list[IndexEntry] = []
        condemned = len(run.after)
        for entry in pack.entries:
            if entry.address in run.keep:
                if entry.address not in kept:
                    kept[entry.address] = Location(pack_id, entry.offset, entry.length)
                    kept_referenced += 1
                    live.append(entry)
                elif not _intact(chunks, entry.address, kept[entry.address]):
                    live.append(entry)  # the other copy is damaged: keep this one too
            elif not run.doomed(Copy(entry.address, pack_id)):
                kept_recent += 1
                live.append(entry)
        if len(live) == len(pack.entries):
            continue
        deleted += len(pack.entries) - len(live)
        bytes_freed += sum(e.length for e in pack.entries) - sum(e.length for e in live)
        if live:
            rewritten += 1
        else:
            dropped += 1
        if not run.dry_run:
            moved = _drop_pack(chunks, pack, live)
            if moved is not None:
                # The copies this pack kept now live in the new one.
                run.after[condemned:] = [
                    (Copy(copy.address, moved.pack_id), since)
                    for copy, since in run.after[condemned:]
                ]
                for entry in moved.entries:
                    location = kept.get(entry.address)
                    if location is not None and location.pack_id == pack_id:
                        kept[entry.address] = Location(moved.pack_id, entry.offset, entry.length)
    if not run.dry_run and (rewritten or dropped):
        chunks.packs.refresh()
    return SweepReport(deleted, kept_referenced, kept_recent, bytes_freed, rewritten, dropped)


def _intact(chunks: ChunkStore, address: str, location: Location) -> bool:
    """Whether the copy of ``address`` at ``location`` reads back intact."""
    try:
        chunks.read_packed(address, location)
    except (CorruptDataError, NotFoundError):
        return False
    return True


def _drop_pack(chunks: ChunkStore, pack: PackInfo, live: list[IndexEntry]) -> PackInfo | None:
    """Copy a pack's ``live`` records into a new pack, then delete the old one.

    Returns:
        The new pack, None if nothing was live.
    """
    moved = None
    if live:
        writer = PackWriter(chunks.store, chunks.packs, max_bytes=2**62)
        try:
            writer.write(_live_records(chunks, pack, live))
            (published,) = writer.publish()  # durable before the old pack goes
        except BaseException:
            writer.discard()
            raise
        moved = published
    # Index first: an index never names a pack that is gone or incomplete.
    chunks.store.delete(index_key(pack.pack_id))
    chunks.store.delete(pack_key(pack.pack_id))
    return moved


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
