"""Chunks in the object store: stored once per address, verified on every read.

:class:`ChunkStore` keeps each distinct chunk once and writes and reads whole files as
ordered chunk lists (:class:`FileEntry`) while holding only a few MiB in memory.

Where chunks live
-----------------
A write of files (a commit) puts its new chunks into pack objects, a few per commit, each
followed by its index (see :mod:`.packs`); a chunk's stored form is a codec byte and its
possibly compressed bytes (see :mod:`.chunk_codec`). A single :meth:`ChunkStore.put` stores
a *loose* object under :func:`~.chunking.chunk_key`, which is how every chunk was stored
before packs existed: stores written then stay readable, since a read looks in the packs
first and then for a loose object. Writes do not look for loose copies (that would cost a
request per chunk, a round trip on S3), so the first commit after the upgrade stores its
chunks again, once, in a pack. Every read checks the decoded bytes against their address.

Deleting chunks no version references is :mod:`.sweep`'s job; read its garbage collection
protocol before changing the order of any write here.
"""

from __future__ import annotations

import os
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager, closing, nullcontext
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, Final, NamedTuple, TypeVar, cast

import blake3

from synapsenet.core.storage import ObjectInfo, ObjectStore
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion._gc_pause import collector_paused
from synapsenet.services.dataversion._parallel import bounded_map
from synapsenet.services.dataversion.chunk_codec import ChunkCodec, Compression, CorruptDataError
from synapsenet.services.dataversion.chunking import (
    CHUNK_KEY_PREFIX,
    DEFAULT_CHUNKING,
    MAX_CHUNK_SIZE,
    ChunkingParams,
    MiB,
    address_of_key,
    chunk_address,
    chunk_key,
)
from synapsenet.services.dataversion.condemned import condemned_addresses
from synapsenet.services.dataversion.entries import ChunkRef, FileEntry, validate_path
from synapsenet.services.dataversion.packs import (
    Location,
    PackCatalog,
    PackWriter,
    Record,
    pack_key,
)
from synapsenet.services.dataversion.stream_cutter import CutGuide, StreamCutter
from synapsenet.services.dataversion.sweep import SweepReport, sweep

__all__ = [
    "ChunkRef",
    "ChunkStore",
    "Compression",
    "CorruptDataError",
    "FileEntry",
    "Observer",
    "SweepReport",
    "WrittenFile",
    "chunk_address",
    "chunk_key",
    "file_guide",
    "validate_path",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
# Work goes to threads in batches of chunks of about this many bytes: large enough that
# the per-task overhead (a hand-off between threads, each a wake-up) vanishes, small enough
# that the batches in flight (see _AHEAD) hold only a few MiB. With 256 KiB, a commit's
# hand-offs cost 5% of its increments' time and 10% of its first version's.
_BATCH_BYTES: Final = 1 * MiB
# Reads take up to this much of a pack at a time.
_SPAN_BYTES: Final = 1 * MiB
# Batches in flight to the compressing threads, at least two per thread. New chunks come
# in bursts (an edited stretch of a file, then unchanged ones): with only two, the cutting
# waits on the compression of a burst while the threads sit idle during the unchanged
# stretch that follows.
_AHEAD: Final = 4
Opener = Callable[[], AbstractContextManager[BinaryIO]]
"""Opens one file's bytes for a write; called when the write reaches that file."""
Chunk = bytes | memoryview
Observer = Callable[[str, int, str, Chunk], None]
"""Called with each chunk a write cuts, in order: path, position in the file, address, bytes."""


class WrittenFile(NamedTuple):
    """A file as a write stored it, with what the cutter found in it.

    Attributes:
        entry: The file's entry (size, hash, chunks).
        rows_aligned: Whether the file was cut at row ends and every chunk ends at one
            (see :class:`~.stream_cutter.StreamCutter`); False if not cut by rows.
        firsts: The first byte of each chunk.
    """

    entry: FileEntry
    rows_aligned: bool
    firsts: bytes

    def guide(self) -> CutGuide:
        """How the file was cut, to guide the cutting of a later version of it."""
        return file_guide(self.entry, self.firsts)


def file_guide(entry: FileEntry, firsts: bytes) -> CutGuide:
    """The guide of a stored file, given the first byte of each of its chunks."""
    chunks = entry.chunks
    return CutGuide([ref.address for ref in chunks], [ref.size for ref in chunks], firsts)


def _addressed(chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, str]]:
    for chunk in chunks:
        yield chunk, chunk_address(chunk)


def _batches(chunks: Iterator[tuple[Chunk, str]]) -> Iterator[list[tuple[Chunk, str]]]:
    batch: list[tuple[Chunk, str]] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk[0])
        if size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class _CutBatch(NamedTuple):
    """Chunks cut in a row: the new ones (bytes and reference) and every chunk's size."""

    fresh: list[tuple[Chunk, ChunkRef]]
    sizes: list[int]


class _Span(NamedTuple):
    """Chunks of one file to read together: adjacent records of one pack, or one loose chunk."""

    pack_id: str | None
    offset: int
    length: int
    chunks: list[tuple[int, Location | None]]


def _check_int(name: str, value: object, low: int, high: int, suffix: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidError(
            f"The {name!r} parameter of ChunkStore must be an int in [{low}, {high}]{suffix}. "
            f"Got {value!r} instead.",
            field=name,
        )


class ChunkStore:
    """Deduplicated, verified chunk storage on an :class:`~synapsenet.core.storage.ObjectStore`.

    Safe to share between threads.

    Args:
        store: The object store holding the packs (and any loose chunks).
        compression: ``"zstd"`` to compress chunks that shrink, or ``"none"``.
        level: zstd level, 1 (fastest) to 22. Level 1 is the default: on 16 KiB chunks of
            CSV it compressed 25% faster than level 3 and stored 0.6% more.
        workers: Threads that compress new chunks while the calling thread cuts and hashes
            them, and that read and decode chunks ahead of a reader, a bounded number at a
            time; 1 does everything in the calling thread. ``None`` picks the number of
            CPUs, at most 4 (zstd, BLAKE3 and the object store's I/O release the GIL).
        pack_size: Start a new pack once a pack holds this many bytes (1 MiB to 4 GiB).

    Raises:
        InvalidError: Naming the parameter, if one is out of range.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        compression: Compression = "zstd",
        level: int = 1,
        workers: int | None = None,
        pack_size: int = 64 * MiB,
    ) -> None:
        self.codec = ChunkCodec(compression, level)
        if workers is None:
            workers = max(1, min(4, os.cpu_count() or 1))
        _check_int("workers", workers, 1, 64, " or None")
        _check_int("pack_size", pack_size, MiB, 4096 * MiB)
        self.store = store
        self.workers = workers
        self.pack_size = pack_size
        self.packs = PackCatalog(store)

    @property
    def threads(self) -> int:
        """Threads beside the calling one that reads and writes use: 0 when ``workers`` is 1."""
        return 0 if self.workers == 1 else self.workers

    @property
    def compression(self) -> Compression:
        """How new chunks are compressed: ``"zstd"`` or ``"none"``."""
        return self.codec.compression

    @property
    def level(self) -> int:
        """The zstd level of new chunks."""
        return self.codec.level

    def __repr__(self) -> str:
        return (
            f"ChunkStore({self.store!r}, compression={self.compression!r}, "
            f"level={self.level}, workers={self.workers})"
        )

    def _condemned(self) -> frozenset[str]:
        """Chunks a write must store again rather than reuse (see :mod:`.sweep`)."""
        return condemned_addresses(self.store)

    # --- one chunk ------------------------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview) -> ChunkRef:
        """Store one chunk as a loose object unless it is already stored (and not condemned).

        Commits write packs (:meth:`write_files`); this is for single chunks.

        Args:
            data: The chunk's raw bytes, 1 byte to 16 MiB.

        Returns:
            The chunk's address and raw size.

        Raises:
            InvalidError: If the chunk is empty or larger than 16 MiB.
            UnavailableError: If the object store cannot be written.
        """
        raw = bytes(data)
        if not 1 <= len(raw) <= MAX_CHUNK_SIZE:
            raise InvalidError(
                f"A chunk must be 1 to {MAX_CHUNK_SIZE} bytes long. Got {len(raw)} bytes.",
                field="data",
            )
        address = chunk_address(raw)
        key = chunk_key(address)
        stored = self.packs.holds(address) or self.store.exists(key)
        if not stored or address in self._condemned():
            self.store.put(key, self.codec.encode(raw))
        return ChunkRef(address, len(raw))

    def get(self, address: str) -> bytes:
        """Read one chunk, from its pack or its loose object, and check it against its address.

        Args:
            address: The chunk's address.

        Returns:
            The chunk's raw bytes.

        Raises:
            InvalidError: If ``address`` is not a hex BLAKE3 digest.
            NotFoundError: If no chunk is stored under ``address``.
            CorruptDataError: Naming the address and where it was read, if the stored form
                is empty, has an unknown codec byte, does not decode, or decodes to other
                bytes.
        """
        key = chunk_key(address)
        location = self.packs.locate(address)
        if location is not None:
            try:
                return self.read_packed(address, location)
            except NotFoundError:
                pass  # its pack was collected: the chunk moved, or it is loose
        try:
            blob = self.store.get(key)
        except NotFoundError:
            self.packs.refresh()
            location = self.packs.locate(address)
            if location is None:
                raise
            return self.read_packed(address, location)
        return self.codec.decode(address, blob, f"its object {key!r}", key=key)

    def read_packed(self, address: str, location: Location) -> bytes:
        """Read and check the copy of chunk ``address`` at ``location``.

        Raises:
            NotFoundError: If the pack is gone.
            CorruptDataError: See :meth:`decode_record`.
        """
        key = pack_key(location.pack_id)
        blob = self.store.get_range(key, location.offset, location.length)
        return self.decode_record(address, blob, key, location.offset, location.length)

    def decode_record(
        self, address: str, record: bytes | memoryview, key: str, offset: int, length: int
    ) -> bytes:
        """Decode and check one record read from pack ``key`` at ``offset``.

        Raises:
            CorruptDataError: If the record is shorter than ``length`` (the pack ends
                early) or does not decode to the chunk ``address``.
        """
        where = f"its record at byte {offset} of pack {key!r}"
        if len(record) != length:
            raise CorruptDataError(
                f"Chunk {address}",
                f"{where} is cut short ({len(record)} of {length} bytes)",
                address=address,
                key=key,
            )
        return self.codec.decode(address, record, where, key=key)

    def exists(self, address: str) -> bool:
        """Whether a chunk is stored under ``address``, packed or loose (without reading it)."""
        key = chunk_key(address)
        return self.packs.holds(address) or self.store.exists(key)

    def stat(self, address: str) -> ObjectInfo:
        """Describe a chunk's loose object: its key, stored size and modification time.

        Raises:
            NotFoundError: If no loose object holds the chunk (packed chunks have none).
        """
        return self.store.stat(chunk_key(address))

    def delete(self, address: str) -> bool:
        """Delete a chunk's loose object, whoever references it; see :meth:`sweep`.

        Packed chunks are removed only by :meth:`sweep`, which rewrites their pack.

        Returns:
            Whether a loose object existed.
        """
        return self.store.delete(chunk_key(address))

    def loose_addresses(self) -> Iterator[str]:
        """Iterate, in sorted order, over the addresses of the loose chunk objects."""
        for key in self.store.list(CHUNK_KEY_PREFIX):
            address = address_of_key(key)
            if address is not None:
                yield address

    def iter_addresses(self) -> Iterator[str]:
        """Iterate, in sorted order, over the addresses of the stored chunks.

        Packed and loose chunks count once each; objects under ``chunks/`` whose keys are
        not canonical chunk keys are skipped.
        """
        self.packs.refresh()
        yield from sorted(self.packs.addresses().union(self.loose_addresses()))

    # --- writing files --------------------------------------------------------------------

    def write_stream(
        self,
        path: str,
        stream: BinaryIO,
        *,
        params: ChunkingParams = DEFAULT_CHUNKING,
        rows: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> FileEntry:
        """Chunk a stream, store its new chunks and describe it as a file entry.

        One file's :meth:`write_files`: see there.

        Raises:
            InvalidError: If ``path`` is not a safe relative path (checked before anything
                is read) or ``stream`` is text.
            UnavailableError: If the object store cannot be written.
        """
        validate_path(path)
        (entry,) = self.write_files(
            [(path, lambda: nullcontext(stream))], params=params, rows=rows, progress=progress
        )
        return entry

    def write_paths(
        self,
        files: Iterable[tuple[str, Path]],
        *,
        params: ChunkingParams = DEFAULT_CHUNKING,
        rows: bool = False,
        progress: Callable[[int], None] | None = None,
        accept: Callable[[Sequence[WrittenFile]], None] | None = None,
        observe: Observer | None = None,
        workers: int | None = None,
        guides: Mapping[str, CutGuide] | None = None,
    ) -> list[FileEntry]:
        """:meth:`write_files` of local files, each opened when the write reaches it.

        Args:
            files: ``(path in the version, local file)`` pairs.
            params: The chunk sizes.
            rows: See :meth:`write_files`.
            progress: See :meth:`write_files`.
            accept: See :meth:`write_files`.
            observe: See :meth:`write_files`.
            workers: See :meth:`write_files`.
            guides: See :meth:`write_files`.
        """
        openers = [(path, _opener(local)) for path, local in files]
        return self.write_files(
            openers,
            params=params,
            rows=rows,
            progress=progress,
            accept=accept,
            observe=observe,
            workers=workers,
            guides=guides,
        )

    def write_files(
        self,
        files: Iterable[tuple[str, Opener]],
        *,
        params: ChunkingParams = DEFAULT_CHUNKING,
        rows: bool = False,
        progress: Callable[[int], None] | None = None,
        accept: Callable[[Sequence[WrittenFile]], None] | None = None,
        observe: Observer | None = None,
        workers: int | None = None,
        guides: Mapping[str, CutGuide] | None = None,
    ) -> list[FileEntry]:
        """Chunk files, store their new chunks in packs and describe them as file entries.

        The calling thread reads, cuts and hashes each file (into views of its read
        buffers, no copies; the whole-file hash runs on a thread of its own); only chunks
        that no pack of this store holds, or that a sweep condemned, are compressed, by
        ``workers`` threads, with four 1 MiB batches in flight (at least two per
        thread), and written. New chunks stream into packs of about ``pack_size`` bytes.
        Memory is about ten MiB of data in flight plus a few hundred bytes per chunk (its
        reference and index entry, kept until the write returns): ~50 MB for a 2 GB file
        of ~20 KiB chunks.

        Args:
            files: ``(path in the version, opener)`` pairs; each path is checked before
                its file is opened.
            params: The chunk sizes.
            rows: Cut at row ends (CSV files: see :class:`~.stream_cutter.StreamCutter`).
            progress: Called with each chunk's size once that chunk is stored.
            accept: Called with the written files once every pack is written and before
                any index is: raising there (a refused schema, say) deletes the packs and
                stores nothing.
            observe: Called on the calling thread with every chunk as it is cut (the bytes
                are a view, valid during the call); raising there stops the write as a
                failed ``accept`` does.
            workers: Threads compressing for this write, 0 for the calling thread; by
                default the store's ``workers`` (0 if that is 1). Fewer leave a core to a
                caller that works alongside (the CSV statistics of a commit).
            guides: How earlier versions of files were cut (:meth:`WrittenFile.guide`), by
                path; each must have been cut with ``params`` and ``rows``. The cutting
                follows them where the bytes are unchanged: the same chunks, found faster
                (see :meth:`~.stream_cutter.StreamCutter.cut_guided`).

        Returns:
            One entry per file, in order: size, whole-file BLAKE3 and chunk list.

        Raises:
            InvalidError: If a path is not a safe relative path or a stream is text.
            UnavailableError: If the object store cannot be written. Packs written before
                the failure are deleted (and a sweep removes any a crash leaves).
        """
        if workers is None:
            workers = self.threads
        _check_int("workers", workers, 0, 64, " or None")
        writer = PackWriter(self.store, self.packs, self.pack_size)
        written: list[WrittenFile] = []
        self.packs.refresh()
        records = self._new_records(
            files, params, rows, progress, observe, writer, written, workers, guides or {}
        )
        try:
            with collector_paused():
                writer.write(records)
            if accept is not None:
                accept(written)
            writer.publish()
        except BaseException:
            records.close()
            writer.discard()
            raise
        return [file.entry for file in written]

    def _new_records(
        self,
        files: Iterable[tuple[str, Opener]],
        params: ChunkingParams,
        rows: bool,
        progress: Callable[[int], None] | None,
        observe: Observer | None,
        writer: PackWriter,
        written: list[WrittenFile],
        workers: int,
        guides: Mapping[str, CutGuide],
    ) -> Generator[Record, None, None]:
        condemned = self._condemned()

        def encode(batch: _CutBatch) -> tuple[list[Record], list[int]]:
            stored = self.codec.encode_many([raw for raw, _ref in batch.fresh])
            # The reference's size, not len(raw) again: one int per chunk, held by both.
            records = [
                Record(ref.address, ref.size, blob)
                for (_raw, ref), blob in zip(batch.fresh, stored, strict=True)
            ]
            return records, batch.sizes

        def described(
            path: str, chunks: Iterator[tuple[Chunk, str]], refs: list[ChunkRef], firsts: bytearray
        ) -> Iterator[_CutBatch]:
            # Runs on the calling thread, ahead of the encoders: shows each chunk to
            # ``observe`` in order and keeps only the chunks no pack holds (or condemned).
            for batch in _batches(chunks):
                fresh = []
                for raw, address in batch:
                    firsts.append(raw[0])
                    if observe is not None:
                        observe(path, len(refs), address, raw)
                    ref = ChunkRef.trusted(address, len(raw))  # a BLAKE3 hexdigest
                    refs.append(ref)
                    # A chunk met twice while its first copy is being compressed is
                    # compressed twice; the writer stores it once.
                    known = writer.holds(address) or (
                        address not in condemned and self.packs.holds(address)
                    )
                    if not known:
                        fresh.append((raw, ref))
                yield _CutBatch(fresh, [len(raw) for raw, _ in batch])

        ahead = max(2, _AHEAD // max(1, workers))
        for path, opener in files:
            validate_path(path)
            hasher = blake3.blake3()
            refs: list[ChunkRef] = []
            firsts = bytearray()
            cutter = StreamCutter(params, rows=rows)
            guide = guides.get(path)
            with opener() as stream:
                if guide is None:
                    cut = _addressed(cutter.cut(stream, digest=hasher))
                else:
                    cut = cutter.cut_guided(stream, guide, digest=hasher)
                batches = described(path, cut, refs, firsts)
                for records, sizes in bounded_map(encode, batches, workers, ahead=ahead):
                    yield from records
                    if progress is not None:
                        for size in sizes:
                            progress(size)
            size = sum(ref.size for ref in refs)
            entry = FileEntry(path, size, hasher.hexdigest(), tuple(refs))
            written.append(WrittenFile(entry, cutter.rows_aligned, bytes(firsts)))

    # --- reading files --------------------------------------------------------------------

    def _plan(self, entry: FileEntry) -> Iterator[_Span]:
        """Group a file's chunks into reads: adjacent records of a pack, up to ~1 MiB each."""
        if not all(map(self.packs.holds, (ref.address for ref in entry.chunks))):
            self.packs.refresh()  # packed since the catalog was loaded, or loose
        # The span being gathered, field by field (a _Span is built once it is complete).
        pack_id: str | None = None
        offset = length = 0
        chunks: list[tuple[int, Location | None]] | None = None
        locate = self.packs.locate
        for index, ref in enumerate(entry.chunks):
            location = locate(ref.address)
            if (
                chunks is not None
                and location is not None
                and location.pack_id == pack_id
                and location.offset == offset + length
                and length < _SPAN_BYTES
            ):
                chunks.append((index, location))
                length += location.length
                continue
            if chunks is not None:
                yield _Span(pack_id, offset, length, chunks)
            if location is None:
                pack_id, offset, length, chunks = None, 0, 0, [(index, None)]
            else:
                pack_id, offset, length = location.pack_id, location.offset, location.length
                chunks = [(index, location)]
        if chunks is not None:
            yield _Span(pack_id, offset, length, chunks)

    def _read_span(self, entry: FileEntry, span: _Span) -> list[bytes | str]:
        """The bytes of a span's chunks, read and checked.

        One block for the whole span if every record decodes to its chunk (the usual
        case), else one outcome per chunk: its bytes, or why it cannot be read (fsck
        wording).
        """
        if span.pack_id is not None:
            key = pack_key(span.pack_id)
            try:
                blob = memoryview(self.store.get_range(key, span.offset, span.length))
            except NotFoundError:
                pass  # the pack was collected meanwhile: find each chunk again
            else:
                located = cast(list[tuple[int, Location]], span.chunks)  # all in the pack
                records = [
                    blob[location.offset - span.offset :][: location.length]
                    for _index, location in located
                ]
                refs = [entry.chunks[index] for index, _location in located]
                if len(blob) == span.length:
                    run = self.codec.decode_run(
                        records, [ref.address for ref in refs], [ref.size for ref in refs]
                    )
                    if run is not None:
                        return [run]
                return [
                    self._checked(
                        entry,
                        index,
                        partial(
                            self.decode_record,
                            entry.chunks[index].address,
                            record,
                            key,
                            location.offset,
                            location.length,
                        ),
                    )
                    for (index, location), record in zip(located, records, strict=True)
                ]
        return [
            self._checked(entry, index, partial(self.get, entry.chunks[index].address))
            for index, _location in span.chunks
        ]

    @staticmethod
    def _checked(entry: FileEntry, index: int, read: Callable[[], bytes]) -> bytes | str:
        ref = entry.chunks[index]
        try:
            data = read()
        except NotFoundError:
            return f"{_where(entry, index)} is missing"
        except CorruptDataError as exc:
            return f"{_where(entry, index)} is corrupt: {exc.problem}"
        if len(data) == ref.size:
            return data
        # Only a hash collision or a wrong manifest gets here: the address matched.
        return f"{_where(entry, index)} is {len(data)} bytes, not {ref.size}"

    def _outcomes(self, entry: FileEntry) -> Generator[bytes | str, None, None]:
        spans = bounded_map(lambda s: self._read_span(entry, s), self._plan(entry), self.threads)
        # Closing this generator early must stop the read-ahead now, not when collected.
        with closing(spans):
            for outcomes in spans:
                yield from outcomes

    @staticmethod
    def _corrupt_file(entry: FileEntry, problem: str) -> CorruptDataError:
        return CorruptDataError(f"File {entry.path!r}", problem, path=entry.path)

    def read_stream(
        self, entry: FileEntry, *, rehash: bool = False
    ) -> Generator[bytes, None, None]:
        """Read a file back in blocks, every chunk checked against its address.

        A file is its chunks back to back in the order its entry lists them (an entry's
        chunk sizes add up to its size), and the entry comes from a manifest read by its
        own hash, so chunks that match their addresses and sizes are the file's exact
        bytes. ``rehash`` hashes the whole file once more and compares it with
        ``entry.content_hash``, as :meth:`verify_entry` does: an independent second check
        that costs a full BLAKE3 pass on the calling thread (about a third of a checkout's
        CPU).

        Adjacent records of a pack are read together (about 1 MiB per read) and decoded on
        ``workers`` threads, a bounded number of reads ahead; ``close()`` the generator to
        stop early. A read's chunks are decompressed in one call and hashed in another,
        each releasing the GIL once, and come as one block (a read with a damaged, missing
        or unknown record is decoded chunk by chunk, to name it). The whole-file check can
        only fail after the last block was yielded, so write to a temporary file and keep
        it only once the generator is exhausted.

        Args:
            entry: The file to read.
            rehash: Also check the whole file's hash.

        Yields:
            The file's bytes: blocks of one or more whole chunks, a read's worth each (about
            1 MiB of stored records, so more bytes where they compress well).

        Raises:
            CorruptDataError: Naming the path (and the chunk), if a chunk is missing or
                corrupt, or (``rehash``) the file's bytes do not hash to
                ``entry.content_hash``.
        """
        hasher = blake3.blake3() if rehash else None
        outcomes = self._outcomes(entry)
        with closing(outcomes):
            for outcome in outcomes:
                if isinstance(outcome, str):
                    raise self._corrupt_file(entry, outcome)
                if hasher is not None:
                    hasher.update(outcome)
                yield outcome
        if hasher is not None and hasher.hexdigest() != entry.content_hash:
            raise self._corrupt_file(
                entry,
                f"its bytes hash to {hasher.hexdigest()}, not the recorded {entry.content_hash}",
            )

    def verify_entry(self, entry: FileEntry) -> list[str]:
        """Check that a file can be read back intact, without keeping its bytes (fsck).

        Args:
            entry: The file to check.

        Returns:
            One message per problem found, each naming the path; empty if the file is
            intact.
        """
        problems: list[str] = []
        hasher = blake3.blake3()
        for outcome in self._outcomes(entry):
            if isinstance(outcome, str):
                problems.append(f"{entry.path}: {outcome}")
            else:
                hasher.update(outcome)
        if not problems and hasher.hexdigest() != entry.content_hash:
            problems.append(
                f"{entry.path}: its bytes hash to {hasher.hexdigest()}, "
                f"not the recorded {entry.content_hash}"
            )
        return problems

    # --- garbage collection ---------------------------------------------------------------

    def sweep(
        self,
        referenced: Collection[str],
        *,
        older_than: datetime,
        dry_run: bool = False,
        clock: Callable[[], datetime] | None = None,
        now: datetime | None = None,
    ) -> SweepReport:
        """Delete the chunk copies no version references that were condemned before a cutoff.

        See :func:`.sweep.sweep` and the garbage collection protocol there.
        """
        return sweep(self, referenced, older_than=older_than, dry_run=dry_run, clock=clock, now=now)


def _where(entry: FileEntry, index: int) -> str:
    """Chunk ``index`` of ``entry``, as problems with it name it."""
    return f"its chunk {index + 1} of {len(entry.chunks)} ({entry.chunks[index].address})"


def _opener(local: Path) -> Opener:
    return lambda: open(local, "rb")
