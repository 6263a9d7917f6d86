"""DatasetVersioningEngine: datasets, commits, checkout, diff, statistics, fsck and gc.

A commit streams every file through content-defined chunking into the chunk store's packs
while a second thread checks the files and infers their schema (see
:mod:`.commit_description`; CSV files are cut at row ends and their statistics reuse those of
the parent's chunks); the packs are published only once the schema is accepted and the
statistics are computed (a rejected commit deletes them and stores nothing). It then
writes the manifest, and only then records the version in one transaction that also writes
its event. A crash before that transaction leaves at most unreferenced packs, which
:meth:`gc` removes.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.core.storage import ObjectStore
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.chunk_stats import sweep_stats
from synapsenet.services.dataversion.chunking import DEFAULT_CHUNKING, ChunkingParams
from synapsenet.services.dataversion.chunks import (
    ChunkStore,
    Compression,
    FileEntry,
    Observer,
    SweepReport,
    WrittenFile,
)
from synapsenet.services.dataversion.commit_description import CommitDescription
from synapsenet.services.dataversion.manifest import Manifest, ManifestStore
from synapsenet.services.dataversion.models import (
    Dataset,
    DatasetVersion,
    VerifyReport,
    validate_dataset_name,
    validate_tag,
)
from synapsenet.services.dataversion.recent_cuts import RecentCuts
from synapsenet.services.dataversion.schema import (
    CompatibilityMode,
    Schema,
    require_compatible,
)
from synapsenet.services.dataversion.sources import CommitSource, SourceFile, materialize
from synapsenet.services.dataversion.store import DatasetRecord, TagRecord, VersionRecord
from synapsenet.services.dataversion.stored_cuts import load_guides, save_cuts, sweep_cuts
from synapsenet.services.dataversion.stream_cutter import CutGuide
from synapsenet.services.dataversion.tabular import (
    DatasetFormat,
    DatasetStats,
    detect_format,
    read_table,
)

EVENT_SOURCE = "/dataversion"
HEAD = "head"
"""Commit on top of whatever version is newest when the commit starts."""

_REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<at>.+))?$")
_WRITE_BUFFER = 4 * 1024 * 1024  # checkout writes chunks of tens of KiB: batch the syscalls
Progress = Callable[[int], None]
"""Called with the number of bytes just stored or restored (for progress bars)."""


def _dataset_from_record(record: DatasetRecord) -> Dataset:
    return Dataset(
        id=record.id,
        name=record.name,
        format=DatasetFormat(record.format),
        compatibility=CompatibilityMode(record.compatibility),
        description=record.description,
        created_at=record.created_at,
        head=record.head,
    )


def _version_from_record(
    record: VersionRecord, dataset: str, tags: Sequence[str] = ()
) -> DatasetVersion:
    return DatasetVersion(
        id=record.id,
        dataset=dataset,
        number=record.number,
        root=record.root,
        parent=record.parent,
        message=record.message,
        author=record.author,
        committed_at=record.committed_at,
        files=record.files,
        size=record.size,
        rows=record.rows,
        schema=Schema.from_json(record.schema_json) if record.schema_json else None,
        tags=tuple(sorted(tags)),
        deprecated_at=record.deprecated_at,
        deprecation_reason=record.deprecation_reason,
    )


class DatasetVersioningEngine:
    """Versions datasets in content-addressed, deduplicated storage.

    Args:
        db: The platform database (migrated).
        store: The object store for chunks and manifests.
        compression: ``"zstd"`` (default) or ``"none"`` for chunks.
        chunking: Content-defined chunk sizes.
        gc_grace: How long a chunk stays condemned (found unreferenced by :meth:`gc`)
            before a later gc may delete it; longer than any commit takes.
        clock: Source of the current time (aware UTC).
    """

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        compression: Compression = "zstd",
        chunking: ChunkingParams = DEFAULT_CHUNKING,
        gc_grace: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.gc_grace = gc_grace
        self.chunks = ChunkStore(store, compression=compression)
        self.manifests = ManifestStore(store)
        self.chunking = chunking
        self._cuts = RecentCuts()
        self.clock = clock

    # ------------------------------------------------------------------ datasets

    def create_dataset(
        self,
        name: str,
        *,
        format: DatasetFormat | str,
        compatibility: CompatibilityMode | str = CompatibilityMode.BACKWARD,
        description: str = "",
    ) -> Dataset:
        """Create an empty dataset.

        Raises:
            InvalidError: A bad name, format or compatibility mode.
            ConflictError: The name is taken.
        """
        validate_dataset_name(name)
        fmt = _enum(DatasetFormat, format, "format")
        mode = _enum(CompatibilityMode, compatibility, "compatibility")
        record = DatasetRecord(
            id=secrets.token_hex(8),
            name=name,
            format=fmt.value,
            compatibility=mode.value,
            description=description,
            created_at=self.clock(),
            head=0,
        )
        try:
            with self.db.transaction() as session:
                session.add(record)
                session.flush()
                self._emit(session, "dataset.created", name, {"dataset": name, "format": fmt})
        except IntegrityError:
            raise ConflictError(f"a dataset named {name!r} exists already") from None
        return _dataset_from_record(record)

    def get_dataset(self, name: str) -> Dataset:
        """The dataset called ``name``.

        Raises:
            NotFoundError: None is.
        """
        with self.db.transaction() as session:
            return _dataset_from_record(self._dataset(session, name))

    def list_datasets(self) -> builtins.list[Dataset]:
        """Every dataset, by name."""
        with self.db.transaction() as session:
            rows = session.scalars(select(DatasetRecord).order_by(DatasetRecord.name))
            return [_dataset_from_record(r) for r in rows]

    # ------------------------------------------------------------------ commit

    def commit(
        self,
        dataset: str,
        source: CommitSource,
        *,
        message: str = "",
        author: str = "",
        parent: int | str | None = HEAD,
        tags: Iterable[str] = (),
        name: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Commit a new version of ``dataset``.

        Args:
            dataset: The dataset's name.
            source: A file or directory path, a pandas/polars DataFrame, a pyarrow Table or a
                numpy array (in-memory data is written in the dataset's format).
            message: What changed.
            author: Who commits.
            parent: The version this commit builds on: ``"head"`` (the newest when the commit
                starts), a version number, or None for the first version. If another commit
                moved the dataset on meanwhile, this one fails with a conflict.
            tags: Tags (aliases) to point at the new version.
            name: Path in the version for a single file or in-memory data.
            progress: Called with bytes as they are stored.

        Returns:
            The new version, or the current head unchanged when the content is identical to
            it (committing the same content twice is a no-op).

        Raises:
            NotFoundError: No such dataset.
            InvalidError: Unreadable or malformed data, unsafe paths, files not in the
                dataset's format.
            SchemaIncompatibleError: The schema breaks the dataset's compatibility mode
                (nothing is stored).
            ConflictError: The dataset moved past ``parent`` during the commit.
        """
        current = self.get_dataset(dataset)
        expected = current.head if parent == HEAD else parent
        if expected is not None and not isinstance(expected, int):
            raise InvalidError(f"parent must be 'head', a version number or None, not {parent!r}")
        tag_list = [validate_tag(t) for t in tags]
        parent_root, parent_files = self._parent_of(current.name, expected)
        written: builtins.list[WrittenFile] = []
        with (
            materialize(source, current.format, name=name) as files,
            ThreadPoolExecutor(1, thread_name_prefix="describe") as pool,
        ):
            # The format and schema checks (pyarrow, which releases the GIL) read the files
            # and CSV chunks are parsed while the chunk store cuts, hashes and compresses
            # them; it publishes nothing until the schema is accepted and the statistics
            # are known.
            description = CommitDescription(
                self.chunks.store,
                current,
                files,
                pool,
                parent_files,
            )

            def accept(files_written: Sequence[WrittenFile]) -> None:
                written.extend(files_written)
                schema = description.result()
                if schema is not None:
                    previous = self._schemas(current.name)
                    if previous:
                        require_compatible(
                            schema, previous, current.compatibility, dataset=current.name
                        )
                description.finish(files_written)

            entries = self._store_files(
                files,
                progress,
                accept,
                rows=description.rows,
                observe=description.observe if description.rows else None,
                guides=self._guides(parent_root, parent_files, description.rows),
            )
            schema, stats = description.result(), description.stats
            manifest = Manifest(tuple(entries), {"dataset": current.name})
            root = self.manifests.save(manifest)
            save_cuts(self.chunks.store, root, self.chunking, description.rows, written)
            self._cuts.remember(root, self.chunking, description.rows, written)
        # Every chunk and the manifest are durable here, before the version references them.
        return self._record_version(
            current.name,
            expected,
            root,
            manifest,
            schema,
            stats,
            message=message,
            author=author,
            tags=tag_list,
        )

    def content_root(self, dataset: str, source: CommitSource, *, name: str | None = None) -> str:
        """The root a commit of ``source`` would get, without recording a version.

        The chunks and manifest are stored (they are content-addressed, and :meth:`gc`
        removes them if no version ever references them); replays compare this root with
        the recorded one.
        """
        current = self.get_dataset(dataset)
        with materialize(source, current.format, name=name) as files:
            rows = current.format is DatasetFormat.CSV
            entries = self._store_files(files, None, None, rows=rows)
            return self.manifests.save(Manifest(tuple(entries), {"dataset": current.name}))

    def _guides(
        self, root: str | None, files: Sequence[FileEntry], rows: bool
    ) -> dict[str, CutGuide]:
        """How the files of version ``root`` were cut: remembered, else as stored."""
        if root is None:
            return {}
        remembered = self._cuts.guides(root, self.chunking, rows)
        if remembered:
            return remembered
        return load_guides(self.chunks.store, root, files, self.chunking, rows)

    def _parent_of(
        self, dataset: str, number: int | None
    ) -> tuple[str | None, builtins.list[FileEntry]]:
        """Root and files of version ``number`` of ``dataset`` (none for None or a missing one)."""
        if number is None:
            return None, []
        with self.db.transaction() as session:
            record = self._dataset(session, dataset)
            root = session.scalar(
                select(VersionRecord.root).where(
                    VersionRecord.dataset_id == record.id, VersionRecord.number == number
                )
            )
        if root is None:
            return None, []
        return root, list(self.manifests.load_recent(root).files)

    def _store_files(
        self,
        files: Sequence[SourceFile],
        progress: Progress | None,
        accept: Callable[[Sequence[WrittenFile]], None] | None,
        *,
        rows: bool,
        observe: Observer | None = None,
        guides: Mapping[str, CutGuide] | None = None,
    ) -> builtins.list[FileEntry]:
        return self.chunks.write_paths(
            [(file.path, Path(file.local)) for file in files],
            params=self.chunking,
            rows=rows,
            progress=progress,
            accept=accept,
            observe=observe,
            # The CSV statistics parse on a thread of their own. A file cut along its
            # parent's chunks (guided) has few new chunks to compress, in bursts: one
            # compressing thread fewer leaves the parsing and the guided cutting a core (on
            # 2 cores, nine 1% increments of a 200 MB CSV took 7.7-8.4 s against 8.0-8.8 s
            # with two). A first version is all new chunks, and compressing them is most of
            # its CPU: every thread compresses (its commit took 1.7-1.9 s against 2.0-2.2 s).
            workers=csv_threads(self.chunks.threads) if observe is not None and guides else None,
            guides=guides,
        )

    def _record_version(
        self,
        dataset: str,
        expected: int | None,
        root: str,
        manifest: Manifest,
        schema: Schema | None,
        stats: DatasetStats | None,
        *,
        message: str,
        author: str,
        tags: Sequence[str],
    ) -> DatasetVersion:
        now = self.clock()
        with self.db.transaction(write=True) as session:
            record = self._dataset(session, dataset, lock=True)
            head = record.head
            if (expected or 0) != head:
                raise ConflictError(
                    f"dataset {dataset!r} moved on to v{head} while this commit was based on "
                    f"{'v' + str(expected) if expected else 'no version'}; commit again on top "
                    "of the new head",
                    head=head,
                )
            if head:
                current = self._version(session, record, head)
                if current.root == root:
                    return _version_from_record(
                        current, dataset, self._tags_of(session, record, head)
                    )
            version = VersionRecord(
                id=secrets.token_hex(8),
                dataset_id=record.id,
                number=head + 1,
                root=root,
                parent=head or None,
                message=message,
                author=author,
                committed_at=now,
                files=len(manifest.files),
                size=manifest.total_size,
                rows=stats.rows if stats is not None else None,
                schema_json=schema.to_json() if schema is not None else None,
                stats_json=json.dumps(stats.to_dict()) if stats is not None else None,
            )
            session.add(version)
            record.head = head + 1
            for tag in tags:
                self._set_tag(session, record, tag, head + 1, now)
            self._emit(
                session,
                "version.committed",
                f"{dataset}@v{head + 1}",
                {
                    "dataset": dataset,
                    "version": head + 1,
                    "root": root,
                    "files": len(manifest.files),
                    "size": manifest.total_size,
                    "rows": version.rows,
                    "tags": list(tags),
                },
            )
            session.flush()
            return _version_from_record(version, dataset, tags)

    # ------------------------------------------------------------------ reading

    def resolve(self, ref: str) -> DatasetVersion:
        """The version a reference names.

        ``name`` is the head; ``name@v3`` and ``name@3`` a number; ``name@production`` a tag;
        ``name@<merkle root>`` a content address.

        Raises:
            NotFoundError: No such dataset or version, or the dataset has no version yet.
        """
        match = _REF.match(ref)
        if match is None:
            raise InvalidError(f"malformed version reference {ref!r}", field="ref")
        name, at = match["name"], match["at"]
        with self.db.transaction() as session:
            record = self._dataset(session, name)
            number = self._number(session, record, at)
            version = self._version(session, record, number)
            return _version_from_record(version, name, self._tags_of(session, record, number))

    def log(self, dataset: str, *, limit: int | None = None) -> builtins.list[DatasetVersion]:
        """A dataset's versions, newest first."""
        with self.db.transaction() as session:
            record = self._dataset(session, dataset)
            query = (
                select(VersionRecord)
                .where(VersionRecord.dataset_id == record.id)
                .order_by(VersionRecord.number.desc())
            )
            if limit is not None:
                query = query.limit(limit)
            tags: dict[int, list[str]] = {}
            for tag in session.scalars(select(TagRecord).where(TagRecord.dataset_id == record.id)):
                tags.setdefault(tag.number, []).append(tag.tag)
            return [
                _version_from_record(v, dataset, tags.get(v.number, ()))
                for v in session.scalars(query)
            ]

    def versions_at(self, dataset: str, moment: datetime) -> DatasetVersion | None:
        """The version that was newest at ``moment`` (aware), or None if none existed yet.

        Raises:
            InvalidError: ``moment`` is naive.
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidError(
                f"timestamp {moment.isoformat()} has no time zone; give an aware UTC time",
                field="timestamp",
            )
        with self.db.transaction() as session:
            record = self._dataset(session, dataset)
            version = session.scalars(
                select(VersionRecord)
                .where(VersionRecord.dataset_id == record.id)
                .where(VersionRecord.committed_at <= moment)
                .order_by(VersionRecord.number.desc())
                .limit(1)
            ).first()
            if version is None:
                return None
            return _version_from_record(
                version, dataset, self._tags_of(session, record, version.number)
            )

    def tag(self, ref: str, tag: str) -> DatasetVersion:
        """Point ``tag`` at the version ``ref`` names (moving it if it pointed elsewhere)."""
        validate_tag(tag)
        version = self.resolve(ref)
        with self.db.transaction(write=True) as session:
            record = self._dataset(session, version.dataset, lock=True)
            self._set_tag(session, record, tag, version.number, self.clock())
            self._emit(
                session,
                "version.tagged",
                version.ref,
                {"dataset": version.dataset, "version": version.number, "tag": tag},
            )
        return self.resolve(version.ref)

    def untag(self, dataset: str, tag: str) -> None:
        """Remove a tag.

        Raises:
            NotFoundError: The dataset has no such tag.
        """
        with self.db.transaction(write=True) as session:
            record = self._dataset(session, dataset)
            row = session.get(TagRecord, (record.id, tag))
            if row is None:
                raise NotFoundError(f"dataset {dataset!r} has no tag {tag!r}")
            self._emit(
                session,
                "version.untagged",
                f"{dataset}@v{row.number}",
                {"dataset": dataset, "version": row.number, "tag": tag},
            )
            session.delete(row)

    def manifest(self, ref: str) -> Manifest:
        """The manifest (files and chunks) of a version, verified against its root.

        One of the last manifests this engine saved or read is not read again (a manifest
        never changes under its root); :meth:`verify` always reads the stored one.
        """
        return self.manifests.load_recent(self.resolve(ref).root)

    def stats(self, ref: str) -> DatasetStats | None:
        """Statistics of a tabular version (rows, bytes, per-column nulls and min/max)."""
        version = self.resolve(ref)
        with self.db.transaction() as session:
            record = session.get(VersionRecord, version.id)
            assert record is not None
            document = record.stats_json
        return DatasetStats.from_dict(json.loads(document)) if document else None

    def read_file(self, ref: str, path: str) -> Iterator[bytes]:
        """Stream one file of a version, every chunk verified against its address and size.

        Raises:
            NotFoundError: The version has no such file.
        """
        manifest = self.manifest(ref)
        entry = manifest.find(path)
        if entry is None:
            raise NotFoundError(f"{ref} has no file {path!r}")
        return self.chunks.read_stream(entry)

    def checkout(
        self,
        ref: str,
        destination: str | os.PathLike[str],
        *,
        paths: Sequence[str] | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        rehash: bool = False,
    ) -> builtins.list[Path]:
        """Restore a version's exact bytes (every chunk's hash verified) under ``destination``.

        Each file is written to a temporary name and renamed into place only once all its
        chunks matched their addresses and sizes, so an interrupted checkout never leaves a
        corrupt file under its real name. ``rehash`` also checks each file's whole-content
        hash, as :meth:`verify` does (a second BLAKE3 pass over the bytes).

        Args:
            ref: The version.
            destination: Directory to write into (created if missing).
            paths: Only these files (partial checkout); all by default.
            overwrite: Replace files that exist already.
            progress: Called with bytes as they are restored.
            rehash: Also check every file's whole-content hash.

        Returns:
            The files written.

        Raises:
            NotFoundError: A requested path is not in the version.
            ConflictError: A file exists and ``overwrite`` is False.
        """
        manifest = self.manifest(ref)
        entries = list(manifest.files)
        if paths is not None:
            wanted = set(paths)
            missing = sorted(wanted - {e.path for e in entries})
            if missing:
                raise NotFoundError(f"{ref} has no file(s) {', '.join(missing)}")
            entries = [e for e in entries if e.path in wanted]
        root = Path(destination)
        targets = [(entry, root / entry.path) for entry in entries]
        if not overwrite:
            existing = [str(t) for _, t in targets if t.exists()]
            if existing:
                raise ConflictError(
                    f"{len(existing)} file(s) exist already, e.g. {existing[0]}; "
                    "pass overwrite to replace them"
                )
        written = []
        for entry, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as handle:
                    for block in self.chunks.read_stream(entry, rehash=rehash):
                        handle.write(block)
                        if progress is not None:
                            progress(len(block))
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            written.append(target)
        return written

    def load_table(self, ref: str, *, path: str | None = None) -> pa.Table:
        """A tabular version (or one of its files) as a pyarrow Table, hashes verified.

        Raises:
            InvalidError: The version is not tabular.
        """
        version = self.resolve(ref)
        dataset = self.get_dataset(version.dataset)
        if not dataset.format.is_tabular and dataset.format is not DatasetFormat.NUMPY:
            raise InvalidError(
                f"{version.ref} holds {dataset.format.value} files, not a table", field="ref"
            )
        manifest = self.manifests.load_recent(version.root)
        entries = [manifest.find(path)] if path is not None else list(manifest.files)
        if any(e is None for e in entries):
            raise NotFoundError(f"{version.ref} has no file {path!r}")
        tables = []
        with tempfile.TemporaryDirectory(prefix="synapsenet-load-") as tmp:
            for entry in entries:
                assert entry is not None
                local = Path(tmp) / entry.path
                local.parent.mkdir(parents=True, exist_ok=True)
                with open(local, "wb") as handle:
                    for block in self.chunks.read_stream(entry):
                        handle.write(block)
                tables.append(read_table(local, detect_format(entry.path)))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def load_dataframe(self, ref: str, *, path: str | None = None) -> Any:
        """A tabular version as a pandas DataFrame."""
        return self.load_table(ref, path=path).to_pandas()

    # ------------------------------------------------------------------ integrity

    def verify(self, ref: str) -> VerifyReport:
        """Check a version end to end: manifest root, every chunk, every file hash."""
        version = self.resolve(ref)
        problems: list[str] = []
        try:
            manifest = self.manifests.load(version.root)
        except Exception as exc:
            return VerifyReport(version.ref, 0, 0, (f"manifest {version.root}: {exc}",))
        chunks = 0
        for entry in manifest.files:
            problems.extend(self.chunks.verify_entry(entry))
            chunks += len(entry.chunks)
        return VerifyReport(version.ref, len(manifest.files), chunks, tuple(problems))

    def gc(
        self, *, grace: timedelta | None = None, dry_run: bool = False, force: bool = False
    ) -> SweepReport:
        """Delete chunks no committed version references, and what gone versions left.

        Deletion takes two runs: a run condemns the unreferenced chunks it finds, and a
        run at least ``grace`` later deletes those still unreferenced (see :mod:`.sweep`),
        so a commit in flight (chunks stored or reused, version not yet recorded) never
        loses its chunks, however old the chunks it reuses. Per-chunk statistics of CSV
        files (a cache, see :mod:`.chunk_stats`) of files no version holds, and the stored
        cuts (see :mod:`.stored_cuts`) of versions not recorded, are deleted once written
        ``grace`` ago.

        Args:
            grace: How long a chunk must have been condemned to be deleted; the engine's
                ``gc_grace`` by default. Zero (with ``force``) deletes every unreferenced
                chunk in one run.
            dry_run: Count what would be deleted, delete nothing.
            force: Allow a grace shorter than the engine's: safe only when no commit runs.
                (A dry run deletes nothing, so it takes any grace.)

        Raises:
            InvalidError: ``grace`` is shorter than ``gc_grace``, without ``force``, in a
                real run.
        """
        grace = self.gc_grace if grace is None else grace
        if grace < self.gc_grace and not (force or dry_run):
            raise InvalidError(
                f"a gc grace of {grace} is shorter than the engine's {self.gc_grace}, which "
                "commits in flight rely on; pass force only when no commit is running",
                field="grace",
            )
        now = self.clock()
        cutoff = now - grace
        with self.db.transaction() as session:
            roots = set(session.scalars(select(VersionRecord.root)))
        referenced: set[str] = set()
        live_files: set[str] = set()
        for root in roots:
            manifest = self.manifests.load(root)
            referenced |= manifest.addresses
            live_files.update(entry.content_hash for entry in manifest.files)
        report = self.chunks.sweep(
            referenced, older_than=cutoff, dry_run=dry_run, clock=self.clock, now=now
        )
        stale = sweep_stats(self.chunks.store, live_files, older_than=cutoff, dry_run=dry_run)
        cuts = sweep_cuts(self.chunks.store, roots, older_than=cutoff, dry_run=dry_run)
        return dataclasses.replace(report, stats_deleted=stale, cuts_deleted=cuts)

    def deprecate(
        self, ref: str, *, reason: str, impact: dict[str, Any] | None = None
    ) -> DatasetVersion:
        """Mark a version deprecated and announce it with what it affects.

        Args:
            ref: The version.
            reason: Why (shown to everyone who resolves it).
            impact: The downstream impact to publish with the event (from the lineage graph).
        """
        version = self.resolve(ref)
        now = self.clock()
        with self.db.transaction(write=True) as session:
            record = session.get(VersionRecord, version.id, with_for_update=True)
            assert record is not None
            if record.deprecated_at is not None:
                raise ConflictError(f"{version.ref} is deprecated already")
            record.deprecated_at = now
            record.deprecation_reason = reason
            self._emit(
                session,
                "version.deprecated",
                version.ref,
                {
                    "dataset": version.dataset,
                    "version": version.number,
                    "reason": reason,
                    "impact": impact or {},
                },
            )
        return self.resolve(version.ref)

    # ------------------------------------------------------------------ internals

    def _schemas(self, dataset: str) -> builtins.list[Schema]:
        with self.db.transaction() as session:
            record = self._dataset(session, dataset)
            documents = session.scalars(
                select(VersionRecord.schema_json)
                .where(VersionRecord.dataset_id == record.id)
                .order_by(VersionRecord.number)
            )
            return [Schema.from_json(d) for d in documents if d]

    @staticmethod
    def _dataset(session: Session, name: str, *, lock: bool = False) -> DatasetRecord:
        query = select(DatasetRecord).where(DatasetRecord.name == name)
        if lock:
            query = query.with_for_update()
        record = session.scalars(query).first()
        if record is None:
            raise NotFoundError(f"no dataset named {name!r}")
        return record

    @staticmethod
    def _number(session: Session, record: DatasetRecord, at: str | None) -> int:
        if at is None or at == HEAD:
            if record.head == 0:
                raise NotFoundError(f"dataset {record.name!r} has no version yet")
            return record.head
        digits = at[1:] if at[:1] in ("v", "V") and at[1:].isdigit() else at
        if digits.isdigit():
            return int(digits)
        tag = session.get(TagRecord, (record.id, at))
        if tag is not None:
            return tag.number
        by_root = session.scalars(
            select(VersionRecord.number)
            .where(VersionRecord.dataset_id == record.id)
            .where(VersionRecord.root == at)
        ).first()
        if by_root is not None:
            return by_root
        raise NotFoundError(f"dataset {record.name!r} has no version, tag or root {at!r}")

    @staticmethod
    def _version(session: Session, record: DatasetRecord, number: int) -> VersionRecord:
        version = session.scalars(
            select(VersionRecord)
            .where(VersionRecord.dataset_id == record.id)
            .where(VersionRecord.number == number)
        ).first()
        if version is None:
            raise NotFoundError(f"dataset {record.name!r} has no version v{number}")
        return version

    @staticmethod
    def _tags_of(session: Session, record: DatasetRecord, number: int) -> builtins.list[str]:
        return list(
            session.scalars(
                select(TagRecord.tag)
                .where(TagRecord.dataset_id == record.id)
                .where(TagRecord.number == number)
            )
        )

    @staticmethod
    def _set_tag(
        session: Session, record: DatasetRecord, tag: str, number: int, now: datetime
    ) -> None:
        row = session.get(TagRecord, (record.id, tag))
        if row is None:
            session.add(TagRecord(dataset_id=record.id, tag=tag, number=number, updated_at=now))
        else:
            row.number = number
            row.updated_at = now

    @staticmethod
    def _emit(session: Session, event: str, subject: str, data: dict[str, Any]) -> None:
        record_event(
            session,
            Event(
                type=f"dataversion.{event}",
                source=EVENT_SOURCE,
                subject=subject,
                data=json.loads(json.dumps(data, default=str)),
            ),
        )


def csv_threads(threads: int) -> int:
    """Compressing threads for a CSV commit, given the chunk store's (0: none at all)."""
    return max(1, threads - 1) if threads else 0


def _enum(cls: Any, value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(member.value for member in cls)
        raise InvalidError(
            f"unknown {field} {value!r}; use one of {allowed}", field=field
        ) from None
