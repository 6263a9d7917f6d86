"""What a commit's files hold: their format checked, their schema, their statistics.

:class:`CommitDescription` does the reading a commit needs besides storing bytes. Its
:meth:`~CommitDescription.describe` runs on a thread of its own while the chunk store cuts
the files: it checks each file's format, infers the schema (for CSV from the first block,
as the streaming reader does) and, for tabular formats other than CSV, computes the
statistics in one streaming pass. CSV files are cut at row ends, and their statistics come
from :meth:`~CommitDescription.finish`, once the files are cut: the chunks the parent
version already had keep their statistics (see :mod:`.chunk_stats`), and only the new ones
are parsed. Both run before any pack is published, so a malformed file stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunk_stats import CsvChunkStats, CsvFileStats
from synapsenet.services.dataversion.chunks import WrittenFile
from synapsenet.services.dataversion.entries import FileEntry
from synapsenet.services.dataversion.models import Dataset
from synapsenet.services.dataversion.schema import Schema, infer_schema
from synapsenet.services.dataversion.sources import SourceFile
from synapsenet.services.dataversion.tabular import (
    DatasetFormat,
    DatasetStats,
    csv_schema,
    detect_format,
    open_batches,
    table_stats,
)

__all__ = ["CommitDescription"]


class CommitDescription:
    """The schema and statistics of one commit's files.

    Submits :meth:`describe` to ``executor`` at once; CSV chunks are parsed there too.

    Args:
        store: The object store (for the per-chunk statistics of CSV files).
        dataset: The dataset committed to.
        files: The commit's files.
        executor: A single thread for the reading (pyarrow releases the GIL).
        parent: The files of the version the commit builds on (for CSV, their per-chunk
            statistics are reused).

    Attributes:
        schema: The files' schema once :meth:`describe` ran (None for non-tabular data).
        stats: Their statistics, once :meth:`describe` (and for CSV :meth:`finish`) ran.
    """

    def __init__(
        self,
        store: ObjectStore,
        dataset: Dataset,
        files: Sequence[SourceFile],
        executor: Executor,
        parent: Sequence[FileEntry] = (),
    ) -> None:
        self.store = store
        self.dataset = dataset
        self.files = files
        self.executor = executor
        self.parent = parent
        self.schema: Schema | None = None
        self.stats: DatasetStats | None = None
        self._chunk_stats: CsvChunkStats | None = None
        self._file_stats: dict[str, CsvFileStats] = {}
        self._current: CsvFileStats | None = None
        self._described = executor.submit(self.describe)

    def result(self) -> Schema | None:
        """Wait for :meth:`describe` and return the schema (or raise what it raised)."""
        return self._described.result()

    @property
    def rows(self) -> bool:
        """Whether the files are cut at row ends (CSV)."""
        return self.dataset.format is DatasetFormat.CSV

    def describe(self) -> Schema | None:
        """Check the files' format and infer their schema (see the module).

        Returns:
            The schema, or None for non-tabular data.

        Raises:
            InvalidError: A file is not in the dataset's format, is malformed, or has other
                columns than the others.
        """
        dataset = self.dataset
        if not dataset.format.is_tabular:
            if dataset.format is DatasetFormat.NUMPY:
                for file in self.files:
                    if detect_format(file.path) is not DatasetFormat.NUMPY:
                        raise InvalidError(
                            f"{file.path} is not a .npy file; dataset {dataset.name!r} "
                            "holds numpy arrays",
                            field="source",
                        )
            return None
        for file in self.files:
            fmt = detect_format(file.path, require_tabular=True)
            if fmt is not dataset.format:
                raise InvalidError(
                    f"{file.path} is {fmt.value}, but dataset {dataset.name!r} holds "
                    f"{dataset.format.value} files",
                    field="source",
                )
            # CSV: the first block's types only (the statistics come from the chunks).
            reader = open_batches(file.local, fmt) if not self.rows else None
            arrow_schema = reader.schema if reader is not None else csv_schema(file.local)
            file_schema = infer_schema(arrow_schema)
            if self.schema is not None and file_schema != self.schema:
                raise InvalidError(
                    f"{file.path} has columns {list(file_schema.names)}, unlike the other "
                    f"files of this commit ({list(self.schema.names)})",
                    field="source",
                )
            self.schema = file_schema
            if reader is not None:
                self._add(table_stats(reader))
            elif self._chunk_stats is None:
                self._chunk_stats = CsvChunkStats(self.store, arrow_schema)
                self._chunk_stats.remember(entry.content_hash for entry in self.parent)
        return self.schema

    def observe(self, path: str, position: int, address: str, data: bytes | memoryview) -> None:
        """Take the chunk at ``position`` of the file at ``path`` as it is cut (CSV only).

        Raises:
            InvalidError: What :meth:`describe` raised, if it failed.
        """
        current = self._current
        if current is None or current.name != path:
            self.result()
            if self._chunk_stats is None:
                return
            current = self._chunk_stats.start_file(path, self.executor)
            self._file_stats[path] = self._current = current
        current.add(position, address, data)

    def _add(self, stats: DatasetStats) -> None:
        self.stats = stats if self.stats is None else self.stats + stats

    def finish(self, written: Sequence[WrittenFile]) -> None:
        """Compute the statistics of CSV files once they are cut (nothing to do otherwise).

        The per-chunk statistics are stored for later commits as soon as they are known.

        Args:
            written: The files as the chunk store wrote them, in the order of ``files``.

        Raises:
            InvalidError: Naming the file, if a row does not parse with the column types.
        """
        if not self.rows:
            return
        for file, source in zip(written, self.files, strict=True):
            gathered = self._file_stats.get(source.path)
            found = None
            if gathered is not None:
                found = gathered.finish(file.entry, rows_aligned=file.rows_aligned)
            if found is None:
                self._add(table_stats(open_batches(source.local, DatasetFormat.CSV)))
            else:
                stats, table = found
                self._add(stats)
                # Stored now, not after the manifest: a cache, which gc removes if the
                # commit fails, and not worth holding in memory meanwhile.
                assert self._chunk_stats is not None
                self._chunk_stats.save(file.entry, table)
