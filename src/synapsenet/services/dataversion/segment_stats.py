"""Column statistics of consecutive row segments at once, and pooling them into a total.

A table parsed from many chunks is cut into segments (the rows of each chunk) and
:func:`segment_stats` summarises every segment in one pass per column: rows, value bytes,
nulls, and the smallest and largest value, kept in the column's own (orderable) type so that
:func:`pool_segments` can pool any selection of segments exactly, later, with pyarrow's
``min_max``. The numbers are those :func:`~._stats.table_stats` gives for the same rows:
nulls and bytes add up, and min/max of mins is the min, NaN ignored unless all is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synapsenet.services.dataversion._arrow_numpy import array_of, null_mask, values_of
from synapsenet.services.dataversion._stats import (
    ColumnStats,
    DatasetStats,
    _decoded,
    _json_value,
    _orderable,
    _type_text,
    _value_bytes,
)

__all__ = ["pool_segments", "segment_schema", "segment_stats"]

ROWS: Final = "rows"
BYTES: Final = "bytes"


def _nulls(i: int) -> str:
    return f"nulls_{i}"


def _low(i: int) -> str:
    return f"min_{i}"


def _high(i: int) -> str:
    return f"max_{i}"


def _bound_type(t: pa.DataType) -> pa.DataType:
    """The type min/max of a column of type ``t`` are kept in (null: no order)."""
    while isinstance(t, pa.DictionaryType):
        t = t.value_type  # summarised decoded, as table_stats does
    empty: Any = pa.nulls(0, cast(Any, t))
    orderable = _orderable(empty)
    return pa.null() if orderable is None else orderable.type


def segment_schema(schema: pa.Schema) -> pa.Schema:
    """The columns :func:`segment_stats` returns for data of ``schema``."""
    fields: list[pa.Field[Any]] = [pa.field(ROWS, pa.int64()), pa.field(BYTES, pa.int64())]
    for i, field in enumerate(schema):
        bound: Any = _bound_type(field.type)
        fields += [
            pa.field(_nulls(i), pa.int64()),
            pa.field(_low(i), bound),
            pa.field(_high(i), bound),
        ]
    return pa.schema(fields)


def segment_stats(table: pa.Table, counts: Sequence[int] | np.ndarray) -> pa.Table:
    """Statistics of each run of ``counts[k]`` consecutive rows of ``table``.

    Args:
        table: The rows, all segments back to back.
        counts: Rows per segment, summing to ``table.num_rows``; zeros allowed.

    Returns:
        One row per segment, with the columns of :func:`segment_schema`.

    Raises:
        ValueError: If the counts do not add up to the table's rows.
    """
    sizes = np.asarray(counts, dtype=np.int64)
    if int(sizes.sum()) != table.num_rows or (sizes < 0).any():
        raise ValueError(f"segment sizes add up to {int(sizes.sum())}, not {table.num_rows} rows")
    segments = _Segments(sizes)
    columns: dict[str, Any] = {ROWS: array_of(sizes, pa.int64())}
    total_bytes = np.zeros(len(sizes), dtype=np.int64)
    for i, field in enumerate(table.schema):
        values = _decoded(table.column(i).combine_chunks())
        nulls = segments.nulls(values)
        total_bytes += segments.value_bytes(values)
        low, high = segments.bounds(values, sizes - nulls)
        bound: Any = _bound_type(field.type)
        columns[_nulls(i)] = array_of(nulls, pa.int64())
        columns[_low(i)] = low if low is not None else pa.nulls(len(sizes), bound)
        columns[_high(i)] = high if high is not None else pa.nulls(len(sizes), bound)
    columns[BYTES] = array_of(total_bytes, pa.int64())
    schema = segment_schema(table.schema)
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


class _Segments:
    def __init__(self, sizes: np.ndarray) -> None:
        self.sizes = sizes
        self.starts = np.cumsum(sizes) - sizes
        self.filled = sizes > 0
        # np.*.reduceat over the non-empty segments only: an empty segment has no values,
        # and reduceat would hand it its neighbour's first value instead.
        self.filled_starts = self.starts[self.filled]

    def _sums(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.sizes), dtype=np.int64)
        if self.filled_starts.size:
            out[self.filled] = np.add.reduceat(values.astype(np.int64), self.filled_starts)
        return out

    def nulls(self, values: pa.Array[Any]) -> np.ndarray:
        if values.null_count == 0:
            return np.zeros(len(self.sizes), dtype=np.int64)
        return self._sums(null_mask(values))

    def value_bytes(self, values: pa.Array[Any]) -> np.ndarray:
        t = values.type
        if pa.types.is_null(t):
            return np.zeros(len(self.sizes), dtype=np.int64)
        if pa.types.is_boolean(t):
            return self.sizes.copy()
        offset_bytes = _OFFSET_BYTES.get(t)
        if offset_bytes is not None:
            text: Any = values
            lengths: Any = pc.binary_length(text)
            lengths = np.where(null_mask(lengths), 0, values_of(lengths))
            return np.asarray(self.sizes * offset_bytes + self._sums(lengths))
        if _fixed_width(t):
            return np.asarray(self.sizes * (t.bit_width // 8))
        return np.array(
            [_value_bytes(values.slice(int(s), int(n))) for s, n in self._spans()],
            dtype=np.int64,
        )

    def _spans(self) -> zip[tuple[Any, Any]]:
        return zip(self.starts, self.sizes, strict=True)

    def bounds(
        self, values: pa.Array[Any], present: np.ndarray
    ) -> tuple[pa.Array[Any] | None, pa.Array[Any] | None]:
        """Per-segment min and max (null where a segment has no non-null value)."""
        orderable = _orderable(values)
        if orderable is None:
            return None, None
        empty = present == 0
        t = orderable.type
        if pa.types.is_floating(t):
            floats = np.where(null_mask(orderable), np.nan, values_of(orderable))
            floats = floats.astype(np.float64, copy=False)
            low, high = self._reduce(np.fmin, floats), self._reduce(np.fmax, floats)
            zeros = floats == 0
            if zeros.any():
                # Which of 0.0 and -0.0 fmin and fmax return is left open (it varies with
                # numpy's vector loops): -0.0 is the smaller, as IEEE 754's minimum has it.
                signs = np.signbit(floats)
                low = np.where((low == 0) & (self._sums(zeros & signs) > 0), -0.0, low)
                high = np.where((high == 0) & (self._sums(zeros & ~signs) > 0), 0.0, high)
            return (
                array_of(low, pa.float64(), mask=empty).cast(t),
                array_of(high, pa.float64(), mask=empty).cast(t),
            )
        ints: Any = _as_integers(orderable)
        if ints is not None:
            numbers, nulls = values_of(ints), null_mask(ints)
            info = np.iinfo(numbers.dtype)
            low = self._reduce(np.minimum, np.where(nulls, info.max, numbers))
            high = self._reduce(np.maximum, np.where(nulls, info.min, numbers))
            low_array = array_of(low, ints.type, mask=empty)
            high_array = array_of(high, ints.type, mask=empty)
            if pa.types.is_boolean(t):
                return low_array.cast(t), high_array.cast(t)
            return low_array.view(t), high_array.view(t)
        if t in _OFFSET_BYTES:
            return self._ranked_bounds(orderable, empty)
        lows: list[Any] = []
        highs: list[Any] = []
        for (start, size), none in zip(self._spans(), empty, strict=True):
            if none:
                lows.append(None)
                highs.append(None)
                continue
            result = pc.min_max(orderable.slice(int(start), int(size)))
            lows.append(result["min"].as_py())
            highs.append(result["max"].as_py())
        return pa.array(lows, type=t), pa.array(highs, type=t)

    def _ranked_bounds(
        self, values: pa.Array[Any], empty: np.ndarray
    ) -> tuple[pa.Array[Any], pa.Array[Any]]:
        """Min and max of strings through the ranks of their distinct values (byte order)."""
        encoded: Any = pc.dictionary_encode(values)
        distinct = encoded.dictionary
        order = values_of(pc.sort_indices(distinct))
        missing = len(distinct)  # ranks run 0 .. len - 1; nulls point past them
        rank = np.zeros(missing + 1, dtype=np.int64)
        rank[order] = np.arange(missing, dtype=np.int64)
        indices = encoded.indices
        nulls = null_mask(indices)
        by_rank = rank[np.where(nulls, missing, values_of(indices))]
        low = self._reduce(np.minimum, np.where(nulls, missing, by_rank))
        high = self._reduce(np.maximum, np.where(nulls, -1, by_rank))
        pick: Any = array_of(order, pa.uint64())
        low_index = array_of(np.where(empty, 0, low), pa.int64(), mask=empty)
        high_index = array_of(np.where(empty, 0, high), pa.int64(), mask=empty)
        return (
            distinct.take(pick.take(low_index)),
            distinct.take(pick.take(high_index)),
        )

    def _reduce(self, ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.sizes), dtype=values.dtype)
        if self.filled_starts.size:
            out[self.filled] = ufunc.reduceat(values, self.filled_starts)
        return out


_OFFSET_BYTES: Final[dict[pa.DataType, int]] = {
    pa.string(): 4,
    pa.binary(): 4,
    pa.large_string(): 8,
    pa.large_binary(): 8,
}
_SIGNED: Final[dict[int, pa.DataType]] = {32: pa.int32(), 64: pa.int64()}


def _fixed_width(t: pa.DataType) -> bool:
    try:
        return int(t.bit_width) % 8 == 0 and not pa.types.is_nested(t)
    except ValueError:
        return False


def _as_integers(values: pa.Array[Any]) -> pa.Array[Any] | None:
    """The values as integers in the same order, or None for types without such a view.

    Dates, times and timestamps are viewed as their storage, booleans cast to 0/1.
    """
    t = values.type
    if pa.types.is_integer(t):
        return values
    if pa.types.is_boolean(t):
        return values.cast(pa.int8())
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        return values.view(_SIGNED[t.bit_width])
    return None


def pool_segments(segments: pa.Table, schema: pa.Schema) -> DatasetStats:
    """Pool per-segment statistics (any selection of :func:`segment_stats` rows).

    Args:
        segments: Rows of :func:`segment_stats` output, for data of ``schema``.
        schema: The data's schema (names and types of the columns).

    Returns:
        The statistics of all those rows together, as :func:`~._stats.table_stats` gives.
    """
    rows = int(pc.sum(segments[ROWS]).as_py() or 0)
    size = int(pc.sum(segments[BYTES]).as_py() or 0)
    columns: dict[str, ColumnStats] = {}
    for i, field in enumerate(schema):
        nulls = int(pc.sum(segments[_nulls(i)]).as_py() or 0)
        low = _pooled(segments[_low(i)], "min", upper=False)
        high = _pooled(segments[_high(i)], "max", upper=True)
        columns[field.name] = ColumnStats(
            type=_type_text(field), null_count=nulls, min=low, max=high
        )
    return DatasetStats(rows=rows, bytes=size, columns=columns)


def _pooled(bounds: pa.ChunkedArray[Any], which: str, *, upper: bool) -> Any:
    if pa.types.is_null(bounds.type) or bounds.null_count == len(bounds):
        return None
    return _json_value(pc.min_max(bounds)[which], upper=upper)
