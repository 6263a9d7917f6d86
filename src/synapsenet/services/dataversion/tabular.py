"""Dataset formats, reading tabular data as pyarrow, and per-version statistics.

Every tabular input becomes a :class:`pyarrow.Table` (or a stream of record batches) here,
so the rest of the service works on one type. Files are read with pyarrow's own readers;
in-memory inputs (pandas, polars, numpy, pyarrow) go through :func:`to_table`. A file that
pyarrow cannot parse raises :class:`~synapsenet.errors.InvalidError` naming the file and
quoting pyarrow's reason.

Statistics (:func:`table_stats`, implemented in :mod:`._stats`) are sufficient statistics:
each record batch gives a :class:`DatasetStats`, and ``+`` pools two of them, so a file of
any size is summarised while streaming its batches (:func:`open_batches`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion._stats import (
    STRING_BOUND_LENGTH,
    ColumnStats,
    DatasetStats,
    JsonScalar,
    table_stats,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "STRING_BOUND_LENGTH",
    "ColumnStats",
    "DatasetFormat",
    "DatasetStats",
    "JsonScalar",
    "Source",
    "detect_format",
    "open_batches",
    "read_table",
    "table_stats",
    "to_table",
]

Source: TypeAlias = "str | os.PathLike[str] | IO[bytes]"
"""A file path, or a binary file object positioned at the start of the data."""


class DatasetFormat(StrEnum):
    """How the files of a dataset version are laid out."""

    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"
    """A JSON array of records (newline-delimited records are read too)."""
    JSONL = "jsonl"
    ARROW = "arrow"
    """Arrow IPC, file format (Feather v2); the stream format is read too."""
    NUMPY = "numpy"
    """A single ``.npy`` array."""
    IMAGE_DIRECTORY = "image_directory"
    BINARY = "binary"
    """Anything else, versioned as opaque bytes."""

    @property
    def is_tabular(self) -> bool:
        """Whether the format holds records with named columns, so it has a schema."""
        return self in _TABULAR

    @property
    def extension(self) -> str:
        """The file extension to write this format with ('' for directories and bytes)."""
        return _CANONICAL_EXTENSIONS.get(self, "")


_TABULAR = frozenset(
    {
        DatasetFormat.CSV,
        DatasetFormat.PARQUET,
        DatasetFormat.JSON,
        DatasetFormat.JSONL,
        DatasetFormat.ARROW,
    }
)
_CANONICAL_EXTENSIONS = {
    DatasetFormat.CSV: ".csv",
    DatasetFormat.PARQUET: ".parquet",
    DatasetFormat.JSON: ".json",
    DatasetFormat.JSONL: ".jsonl",
    DatasetFormat.ARROW: ".arrow",
    DatasetFormat.NUMPY: ".npy",
}
_EXTENSIONS = {
    ".csv": DatasetFormat.CSV,
    ".parquet": DatasetFormat.PARQUET,
    ".pq": DatasetFormat.PARQUET,
    ".json": DatasetFormat.JSON,
    ".jsonl": DatasetFormat.JSONL,
    ".ndjson": DatasetFormat.JSONL,
    ".arrow": DatasetFormat.ARROW,
    ".feather": DatasetFormat.ARROW,
    ".ipc": DatasetFormat.ARROW,
    ".arrows": DatasetFormat.ARROW,
    ".npy": DatasetFormat.NUMPY,
}
# pyarrow's CSV and JSON readers decompress these on the fly, keyed by the path's suffix.
_COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
_TEXT_FORMATS = frozenset({DatasetFormat.CSV, DatasetFormat.JSON, DatasetFormat.JSONL})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
"""File extensions that make a directory an ``IMAGE_DIRECTORY`` (compared lowercased)."""


def detect_format(path: str | os.PathLike[str], *, require_tabular: bool = False) -> DatasetFormat:
    """Tell a dataset's format from its file name.

    A directory that exists and holds only image files is an ``IMAGE_DIRECTORY``.
    ``data.csv.gz`` is CSV (pyarrow decompresses it). Anything unknown is ``BINARY``.

    Args:
        path: A file name or path.
        require_tabular: Raise instead of answering a non-tabular format.

    Returns:
        The format.

    Raises:
        InvalidError: If ``require_tabular`` and the name does not end with a tabular
            extension.
    """
    candidate = Path(path)
    if candidate.is_dir():
        files = [p for p in candidate.rglob("*") if p.is_file()]
        images = files and all(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
        found = DatasetFormat.IMAGE_DIRECTORY if images else DatasetFormat.BINARY
    else:
        suffixes = [s.lower() for s in candidate.suffixes]
        if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSIONS:
            inner = _EXTENSIONS.get(suffixes[-2])
            found = inner if inner in _TEXT_FORMATS else DatasetFormat.BINARY
        else:
            found = _EXTENSIONS.get(suffixes[-1] if suffixes else "", DatasetFormat.BINARY)
    if require_tabular and not found.is_tabular:
        known = ", ".join(ext for ext, fmt in _EXTENSIONS.items() if fmt.is_tabular)
        raise InvalidError(
            f"Cannot read '{candidate.name}' as a table: its name does not end with a "
            f"tabular extension ({known}, optionally followed by "
            f"{', '.join(_COMPRESSIONS)} for text formats). Name the format explicitly.",
            field="format",
        )
    return found


# --- reading -------------------------------------------------------------------------------

# The streaming reader keeps a few dozen blocks in flight, so 1 MiB blocks keep a commit's
# statistics pass small whatever the file's size.
_CSV_BLOCK_SIZE = 1 << 20
_DEFAULT_BATCH_ROWS = 65_536
_MESSAGE_LIMIT = 500


def _display_name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


def _resolve_format(source: Source, fmt: DatasetFormat | None) -> DatasetFormat:
    if fmt is not None:
        return fmt
    if isinstance(source, str | os.PathLike):
        if detect_format(source) is DatasetFormat.NUMPY:
            return DatasetFormat.NUMPY
        return detect_format(source, require_tabular=True)
    raise InvalidError(
        "Cannot tell the format of a file object; pass the format explicitly.", field="format"
    )


@contextlib.contextmanager
def _reading(name: str, fmt: DatasetFormat) -> Iterator[None]:
    """Turn reader failures into errors that name the file and quote the reason."""
    try:
        yield
    except FileNotFoundError:
        raise NotFoundError(f"File '{name}' does not exist.") from None
    except (pa.ArrowException, ValueError, UnicodeDecodeError, OSError) as exc:
        # ValueError covers json/numpy parse errors; OSError covers corrupt compressed data.
        reason = " ".join(str(exc).split())[:_MESSAGE_LIMIT] or type(exc).__name__
        hint = ""
        if "conversion error" in reason:
            hint = (
                " When streaming, column types are inferred from the first block; "
                "read the file whole with read_table to infer them from every row."
            )
        raise InvalidError(
            f"Cannot read '{name}' as {fmt.name}: {reason}.{hint}", field="file"
        ) from None


def read_table(source: Source, fmt: DatasetFormat | None = None) -> pa.Table:
    """Read a whole tabular file as a pyarrow Table.

    Args:
        source: A path, or a binary file object.
        fmt: The format; detected from the path's extension when omitted. ``NUMPY`` is
            accepted too, for arrays :func:`to_table` can lay out as columns.

    Returns:
        The table, with the types pyarrow infers from every row.

    Raises:
        InvalidError: If the format is not tabular or the data is malformed.
        NotFoundError: If the path does not exist.
    """
    fmt = _resolve_format(source, fmt)
    name = _display_name(source)
    arrow_source = _arrow_source(source)
    with _reading(name, fmt):
        if fmt is DatasetFormat.CSV:
            return pa_csv.read_csv(arrow_source, convert_options=_csv_conversion())
        if fmt is DatasetFormat.PARQUET:
            return cast(pa.Table, _parquet().read_table(arrow_source))
        if fmt is DatasetFormat.JSONL:
            return pa_json.read_json(arrow_source)
        if fmt is DatasetFormat.JSON:
            return _read_json_records(arrow_source)
        if fmt is DatasetFormat.ARROW:
            return _read_ipc(arrow_source)
        if fmt is DatasetFormat.NUMPY:
            return to_table(_load_npy(source))
    raise InvalidError(f"Format {fmt.name} is not tabular; cannot read '{name}' as a table.")


def open_batches(
    source: Source,
    fmt: DatasetFormat | None = None,
    *,
    batch_rows: int = _DEFAULT_BATCH_ROWS,
    block_size: int = _CSV_BLOCK_SIZE,
) -> pa.RecordBatchReader:
    """Stream a tabular file as record batches, holding about one batch in memory.

    CSV and JSONL are read in blocks of ``block_size`` bytes and their column types are
    inferred from the first block, as pyarrow's streaming readers do; a later value that
    does not fit raises :class:`InvalidError` while iterating. Parquet, Arrow IPC and
    ``.npy`` files (read through a memory map, copying each batch out) stream in batches of
    at most ``batch_rows`` rows. A JSON array has to be parsed whole first.

    Args:
        source: A path, or a binary file object.
        fmt: The format; detected from the path's extension when omitted.
        batch_rows: Rows per batch, for the formats read by rows.
        block_size: Bytes per block, for CSV and JSONL.

    Returns:
        A reader: iterate it for batches; ``reader.schema`` is known up front.

    Raises:
        InvalidError: If the format is not tabular or the data is malformed (also raised
            during iteration).
        NotFoundError: If the path does not exist.
    """
    fmt = _resolve_format(source, fmt)
    name = _display_name(source)
    arrow_source = _arrow_source(source)
    with _reading(name, fmt):
        if fmt is DatasetFormat.CSV:
            options = pa_csv.ReadOptions(block_size=block_size)
            reader: pa.RecordBatchReader = pa_csv.open_csv(
                arrow_source, read_options=options, convert_options=_csv_conversion()
            )
        elif fmt is DatasetFormat.JSONL:
            json_options = pa_json.ReadOptions(block_size=block_size)
            reader = pa_json.open_json(arrow_source, read_options=json_options)
        elif fmt is DatasetFormat.PARQUET:
            parquet = _parquet().ParquetFile(arrow_source)
            reader = pa.RecordBatchReader.from_batches(
                parquet.schema_arrow, parquet.iter_batches(batch_size=batch_rows)
            )
        elif fmt is DatasetFormat.ARROW:
            reader = _open_ipc(arrow_source, batch_rows)
        elif fmt is DatasetFormat.JSON:
            table = _read_json_records(arrow_source)
            reader = pa.RecordBatchReader.from_batches(
                table.schema, table.to_batches(max_chunksize=batch_rows)
            )
        elif fmt is DatasetFormat.NUMPY:
            reader = _open_npy(source, batch_rows)
        else:
            raise InvalidError(
                f"Format {fmt.name} is not tabular; cannot read '{name}' as a table."
            )
    return pa.RecordBatchReader.from_batches(reader.schema, _guarded(reader, name, fmt))


def csv_schema(source: str | os.PathLike[str], *, block_size: int = _CSV_BLOCK_SIZE) -> pa.Schema:
    """The column types :func:`open_batches` infers for a CSV file, from its first block.

    The streaming reader infers them from the complete rows of the first ``block_size``
    bytes; those rows are read and parsed here as one block, without the reader's
    read-ahead (which would hold tens of MB for a schema). A first block without a whole
    row after the header, or that does not parse on its own, is left to the streaming
    reader itself.

    Args:
        source: The CSV file.
        block_size: The streaming reader's block size.

    Raises:
        InvalidError: If the file's first block is not CSV.
        NotFoundError: If the path does not exist.
    """
    name = os.fspath(source)
    with _reading(name, DatasetFormat.CSV), open(name, "rb") as handle:
        block = handle.read(block_size)
        more = bool(handle.read(1))
    if more:
        block = block[: max(block.rfind(b"\n"), block.rfind(b"\r")) + 1]
    if block:
        options = pa_csv.ReadOptions(block_size=len(block) + 1, use_threads=False)
        rows: Any = pa.py_buffer(block)
        try:
            table = pa_csv.read_csv(rows, read_options=options, convert_options=_csv_conversion())
        except pa.ArrowInvalid:
            pass  # the streaming reader decides, and words the error
        else:
            if table.num_rows or not more:
                return table.schema
    options = pa_csv.ReadOptions(block_size=block_size, use_threads=False)
    with _reading(name, DatasetFormat.CSV):
        reader = pa_csv.open_csv(name, read_options=options, convert_options=_csv_conversion())
        try:
            return reader.schema
        finally:
            reader.close()


def _parquet() -> Any:
    """``pyarrow.parquet``, imported on first use: ~14 MB resident that CSV work never needs."""
    import pyarrow.parquet

    return pyarrow.parquet


def _csv_conversion() -> pa_csv.ConvertOptions:
    # An empty unquoted field is missing, as pandas reads it; a quoted "" stays a string.
    return pa_csv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)


def _guarded(
    batches: Iterable[pa.RecordBatch], name: str, fmt: DatasetFormat
) -> Iterator[pa.RecordBatch]:
    # Streaming readers fail lazily, so the translation has to wrap the iteration too.
    with _reading(name, fmt):
        yield from batches


def _arrow_source(source: Source) -> Any:
    """What pyarrow's readers take: a path string (so they can mmap and decompress)."""
    return os.fspath(source) if isinstance(source, str | os.PathLike) else source


def _read_bytes(source: Any) -> bytes:
    if isinstance(source, str):
        # input_stream decompresses .gz/.bz2/.zst/.lz4 like the CSV and JSON readers do.
        with pa.input_stream(source) as stream:
            return bytes(stream.read())
    return bytes(source.read())


def _read_json_records(source: Any) -> pa.Table:
    data = _read_bytes(source)
    if not data.lstrip().startswith(b"["):
        # Many ".json" files are newline-delimited; read them as such.
        return pa_json.read_json(io.BytesIO(data))
    records = json.loads(data)
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(
                f"a JSON array of records must hold objects; item {index} is "
                f"{type(record).__name__}"
            )
    if not records:
        return pa.table({})
    # Re-encoding as lines lets pyarrow infer types exactly as it does for JSONL.
    lines = "\n".join(json.dumps(record, ensure_ascii=False) for record in records)
    return pa_json.read_json(io.BytesIO(lines.encode()))


def _ipc_input(source: Any) -> Any:
    # A plain file, not a memory map: a table over a map would fault (SIGBUS) if the file
    # were truncated while the table is still in use.
    if isinstance(source, str):
        return pa.OSFile(source, "rb")
    return pa.BufferReader(_read_bytes(source))


def _read_ipc(source: Any) -> pa.Table:
    with _ipc_input(source) as handle:
        try:
            return pa.ipc.open_file(handle).read_all()
        except pa.ArrowInvalid:
            handle.seek(0)
            return pa.ipc.open_stream(handle).read_all()


def _open_ipc(source: Any, batch_rows: int) -> pa.RecordBatchReader:
    handle = _ipc_input(source)
    try:
        file_reader = pa.ipc.open_file(handle)
    except pa.ArrowInvalid:
        handle.seek(0)
        stream = pa.ipc.open_stream(handle)
        return pa.RecordBatchReader.from_batches(stream.schema, _rebatch(stream, batch_rows))

    def batches() -> Iterator[pa.RecordBatch]:
        with handle:
            for index in range(file_reader.num_record_batches):
                yield file_reader.get_batch(index)

    return pa.RecordBatchReader.from_batches(file_reader.schema, _rebatch(batches(), batch_rows))


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, max(batch.num_rows, 1), rows):
            yield batch.slice(start, rows)


def _load_npy(source: Source, *, mapped: bool = False) -> np.ndarray[Any, Any]:
    # allow_pickle=False: a .npy from a user must not run code when loaded.
    target = os.fspath(source) if isinstance(source, str | os.PathLike) else source
    mmap_mode: Literal["r"] | None = "r" if mapped and isinstance(target, str) else None
    loaded = np.load(target, allow_pickle=False, mmap_mode=mmap_mode)
    if not isinstance(loaded, np.ndarray):
        raise ValueError("expected a single .npy array, found an archive of arrays")
    return loaded


def _open_npy(source: Source, batch_rows: int) -> pa.RecordBatchReader:
    array = _load_npy(source, mapped=True)
    first = to_table(np.array(array[:0]))

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(array), batch_rows):
            # A copy, so no batch points into the memory map once it is handed out.
            rows = np.array(array[start : start + batch_rows])
            yield from to_table(rows).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, batches())


# --- in-memory inputs ----------------------------------------------------------------------


def to_table(data: Any) -> pa.Table:
    """Lay out in-memory data as a pyarrow Table.

    Accepted: a pyarrow Table or RecordBatch; a pandas DataFrame (a default RangeIndex is
    dropped, any other index kept as columns) or Series; a polars DataFrame; a mapping of
    column names to sequences; a numpy array, 1-D (one column ``c0``), 2-D (columns ``c0``,
    ``c1``...) or structured (one column per field; masked values become nulls).

    Args:
        data: The data.

    Returns:
        The table.

    Raises:
        InvalidError: If the type is not accepted, the array has the wrong shape, or a
            column's values cannot be converted (e.g. mixed types in an object column).
    """
    with _converting():
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        if isinstance(data, np.ndarray):
            return _numpy_table(data)
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(data, pandas.Series | pandas.DataFrame):
            return _pandas_table(data)
        polars = sys.modules.get("polars")
        if polars is not None and isinstance(data, polars.DataFrame):
            return cast(pa.Table, data.to_arrow())
        if isinstance(data, Mapping):
            return pa.table(dict(data))
    raise InvalidError(
        f"Cannot make a table from {type(data).__module__}.{type(data).__qualname__}; pass a "
        "pyarrow Table, a pandas or polars DataFrame, a numpy array or a mapping of columns.",
        field="data",
    )


@contextlib.contextmanager
def _converting() -> Iterator[None]:
    try:
        yield
    except (pa.ArrowException, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:_MESSAGE_LIMIT]
        raise InvalidError(f"Cannot convert the data to a table: {reason}.", field="data") from None


def _pandas_table(data: Any) -> pa.Table:
    frame = data.to_frame() if data.ndim == 1 else data
    index = frame.index
    default_index = (
        type(index).__name__ == "RangeIndex"
        and index.start == 0
        and index.step == 1
        and index.name is None
    )
    return pa.Table.from_pandas(frame, preserve_index=not default_index)


def _numpy_table(array: np.ndarray[Any, Any]) -> pa.Table:
    if array.dtype.names is not None:
        if array.ndim != 1:
            raise InvalidError(
                f"A structured array must be 1-D to become a table; got shape {array.shape}.",
                field="data",
            )
        columns = {name: array[name] for name in array.dtype.names}
    elif array.ndim == 1:
        columns = {"c0": array}
    elif array.ndim == 2:
        columns = {f"c{j}": array[:, j] for j in range(array.shape[1])}
    else:
        raise InvalidError(
            f"Only 1-D, 2-D and structured arrays become tables; got shape {array.shape}.",
            field="data",
        )
    arrays = []
    for name, column in columns.items():
        if column.ndim != 1:
            raise InvalidError(
                f"Field '{name}' holds sub-arrays of shape {column.shape[1:]}; only scalar "
                "fields become columns.",
                field="data",
            )
        mask = np.ma.getmaskarray(column) if isinstance(column, np.ma.MaskedArray) else None
        arrays.append(pa.array(np.ma.getdata(column), mask=mask))
    return pa.table(arrays, names=list(columns))
