"""Per-version statistics of tabular data, as poolable sufficient statistics.

Each record batch gives a :class:`DatasetStats`; ``+`` pools two of them, so a file of any
size is summarised while streaming its batches. Re-exported by :mod:`.tabular`, where
callers import it from.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias, cast

import pyarrow as pa
import pyarrow.compute as pc

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion._arrow_types import canonical_type, try_parse_type

__all__ = [
    "STRING_BOUND_LENGTH",
    "ColumnStats",
    "DatasetStats",
    "JsonScalar",
    "table_stats",
]

JsonScalar: TypeAlias = "bool | int | float | str"
"""A JSON-ready minimum or maximum."""

STRING_BOUND_LENGTH = 256
"""Longest string kept as a min or max; longer ones become bounds (see :class:`ColumnStats`)."""

_STATS_FORMAT = "synapsenet.stats"
_STATS_VERSION = 1
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_EPOCH = datetime(1970, 1, 1)  # naive on purpose: only a base for arithmetic


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Summary of one column.

    ``min`` and ``max`` are JSON-ready: numbers and booleans as is (infinities as the
    strings ``"Infinity"``/``"-Infinity"``), strings as is, decimals as exact strings,
    dates, times and timestamps as ISO 8601 strings (UTC with ``+00:00`` when the column has
    a timezone), durations as integers in the column's unit. They are None when undefined:
    no non-null values, only NaN, or a type without an order (binary, nested, intervals).
    Strings longer than :data:`STRING_BOUND_LENGTH` characters are cut: ``min`` becomes a
    prefix (still a lower bound) and ``max`` a prefix with its last character incremented
    (still an upper bound), as Parquet statistics do.

    Attributes:
        type: The column's canonical pyarrow type string.
        null_count: Number of nulls.
        min: Smallest non-null value, or None.
        max: Largest non-null value, or None.
    """

    type: str
    null_count: int = 0
    min: JsonScalar | None = None
    max: JsonScalar | None = None

    def __add__(self, other: ColumnStats) -> ColumnStats:
        if self.type != other.type:
            raise InvalidError(
                f"Cannot pool statistics of a {self.type} column with a {other.type} one.",
                field="stats",
            )
        key = functools.partial(_order_key, self.type)
        return ColumnStats(
            type=self.type,
            null_count=self.null_count + other.null_count,
            min=_pick(self.min, other.min, key, min),
            max=_pick(self.max, other.max, key, max),
        )

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict."""
        return {"type": self.type, "null_count": self.null_count, "min": self.min, "max": self.max}


@dataclass(frozen=True, slots=True)
class DatasetStats:
    """Summary of a tabular dataset version.

    Attributes:
        rows: Number of rows.
        bytes: Decoded size of the values: fixed-width values at their width (booleans as
            one byte), strings and binaries as their bytes plus offsets, dictionaries as if
            decoded, nested values as the sum of their parts; validity bitmaps not counted.
            Unlike Arrow's ``nbytes`` it does not depend on how rows are batched.
        columns: Per-column statistics, in column order.
    """

    rows: int
    bytes: int
    columns: Mapping[str, ColumnStats]

    def __add__(self, other: DatasetStats) -> DatasetStats:
        if list(self.columns) != list(other.columns):
            raise InvalidError(
                f"Cannot pool statistics of columns {list(self.columns)} with "
                f"{list(other.columns)}.",
                field="stats",
            )
        return DatasetStats(
            rows=self.rows + other.rows,
            bytes=self.bytes + other.bytes,
            columns={name: stats + other.columns[name] for name, stats in self.columns.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """The statistics as a JSON-ready dict, tagged with their format and version."""
        return {
            "format": _STATS_FORMAT,
            "version": _STATS_VERSION,
            "rows": self.rows,
            "bytes": self.bytes,
            "columns": [{"name": name, **s.to_dict()} for name, s in self.columns.items()],
        }

    @classmethod
    def from_dict(cls, document: Any) -> DatasetStats:
        """Read statistics written by :meth:`to_dict`.

        Raises:
            InvalidError: If the document is not a statistics document.
        """
        try:
            if document["format"] != _STATS_FORMAT or document["version"] != _STATS_VERSION:
                raise ValueError("format")
            columns = {
                str(item["name"]): ColumnStats(
                    type=str(item["type"]),
                    null_count=int(item["null_count"]),
                    min=item["min"],
                    max=item["max"],
                )
                for item in document["columns"]
            }
            return cls(rows=int(document["rows"]), bytes=int(document["bytes"]), columns=columns)
        except (KeyError, TypeError, ValueError):
            raise InvalidError("Not a statistics document.", field="stats") from None

    def to_json(self) -> str:
        """Canonical JSON: keys sorted, no whitespace, non-ASCII kept as is."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> DatasetStats:
        """Read statistics written by :meth:`to_json`.

        Raises:
            InvalidError: If the text is not a statistics document.
        """
        try:
            document = json.loads(text)
        except ValueError:
            raise InvalidError("Statistics document is not JSON.", field="stats") from None
        return cls.from_dict(document)


def table_stats(
    data: pa.Table | pa.RecordBatch | pa.RecordBatchReader | Iterable[pa.RecordBatch],
) -> DatasetStats:
    """Summarise tabular data batch by batch: rows, bytes, per-column nulls and min/max.

    Args:
        data: A table, a batch, a batch reader (e.g. from :func:`open_batches`) or any
            iterable of batches sharing one schema. Only one batch is held at a time.

    Returns:
        The pooled statistics. With no batch at all the columns are those of the reader's
        or table's schema (none for an empty plain iterable).
    """
    if isinstance(data, pa.RecordBatch):
        data = [data]
    total = _empty_stats(data.schema) if isinstance(data, pa.Table | pa.RecordBatchReader) else None
    batches: Iterable[pa.RecordBatch] = data.to_batches() if isinstance(data, pa.Table) else data
    for batch in batches:
        stats = _batch_stats(batch)
        total = stats if total is None else total + stats
    return total if total is not None else DatasetStats(rows=0, bytes=0, columns={})


def _empty_stats(schema: pa.Schema) -> DatasetStats:
    return DatasetStats(
        rows=0, bytes=0, columns={field.name: ColumnStats(_type_text(field)) for field in schema}
    )


def _batch_stats(batch: pa.RecordBatch) -> DatasetStats:
    columns: dict[str, ColumnStats] = {}
    size = 0
    for field, column in zip(batch.schema, batch.columns, strict=True):
        values = _decoded(column)
        size += _value_bytes(values)
        low, high = _min_max(values)
        # Nulls counted after decoding: a dictionary may itself hold a null value.
        columns[field.name] = ColumnStats(
            type=_type_text(field), null_count=values.null_count, min=low, max=high
        )
    return DatasetStats(rows=batch.num_rows, bytes=size, columns=columns)


def _type_text(field: pa.Field[Any]) -> str:
    return str(canonical_type(field.type))


def _decoded(array: pa.Array[Any]) -> pa.Array[Any]:
    if isinstance(array.type, pa.DictionaryType):
        return _decoded(cast("pa.DictionaryArray[Any, Any]", array).dictionary_decode())
    return array


_VIEW_HEADER_BYTES = 16
# Offsets (and sizes, for list views) stored per row by each list layout.
_LIST_OFFSET_BYTES: dict[type[pa.DataType], int] = {
    pa.ListType: 4,
    pa.LargeListType: 8,
    pa.ListViewType: 8,
    pa.LargeListViewType: 16,
    pa.FixedSizeListType: 0,
}


def _value_bytes(array: pa.Array[Any]) -> int:
    """Decoded size of the values, which adds up the same however rows are batched.

    Arrow's ``nbytes`` does not: a slice still counts a whole dictionary, and validity
    bitmaps round to whole bytes per slice.
    """
    t = array.type
    rows = len(array)
    if isinstance(t, pa.DictionaryType):
        return _value_bytes(_decoded(array))
    if pa.types.is_null(t):
        return 0
    if pa.types.is_boolean(t):
        return rows  # one byte per value, as numpy and pandas hold them
    if t in (pa.string_view(), pa.binary_view()):
        wide = array.cast(pa.large_string() if t == pa.string_view() else pa.large_binary())
        return rows * _VIEW_HEADER_BYTES + _text_bytes(wide)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return rows * 4 + _text_bytes(array)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return rows * 8 + _text_bytes(array)
    if isinstance(t, pa.MapType):
        entries = pa.list_(pa.struct([t.key_field, t.item_field]))
        return _value_bytes(array.cast(entries))
    offsets = _LIST_OFFSET_BYTES.get(type(t))
    if offsets is not None:
        flat = cast("pa.ListArray[Any]", array).flatten()
        return rows * offsets + _value_bytes(flat)
    if isinstance(t, pa.StructType):
        children = cast("pa.StructArray", array).flatten()
        return sum(_value_bytes(child) for child in children)
    try:
        return rows * int(t.bit_width) // 8
    except ValueError:
        return int(array.nbytes)  # unions, run-end encoded, extensions: Arrow's estimate


def _text_bytes(array: pa.Array[Any]) -> int:
    lengths = pc.binary_length(cast("pa.StringArray", array))
    return int(pc.sum(lengths).as_py() or 0)


def _orderable(array: pa.Array[Any]) -> pa.Array[Any] | None:
    """The array in a type pyarrow's min_max has a kernel for, or None if unordered."""
    t = array.type
    if t == pa.string_view():
        return array.cast(pa.large_string())
    if t == pa.float16():
        return array.cast(pa.float32())
    if isinstance(t, pa.DurationType):
        return array.cast(pa.int64())
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_decimal(t)
        or pa.types.is_temporal(t)
    ) and not pa.types.is_interval(t):
        return array
    return None


def _min_max(array: pa.Array[Any]) -> tuple[JsonScalar | None, JsonScalar | None]:
    orderable = _orderable(array)
    if orderable is None or orderable.null_count == len(orderable):
        return None, None
    result = pc.min_max(orderable)
    low, high = result["min"], result["max"]
    return _json_value(low, upper=False), _json_value(high, upper=True)


def _json_value(scalar: pa.Scalar[Any], *, upper: bool) -> JsonScalar | None:
    t = scalar.type
    if isinstance(t, pa.TimestampType):
        # The raw integer, because as_py() cannot hold nanoseconds in a datetime.
        text = _iso_timestamp(int(cast(Any, scalar).value), t.unit)
        return text if text is None or t.tz is None else text + "+00:00"
    if isinstance(t, pa.Time32Type | pa.Time64Type):
        return _iso_time(int(cast(Any, scalar).value), t.unit)
    value = scalar.as_py()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return _string_bound(value, upper=upper)
    if isinstance(value, bool | int):
        return value
    return cast(str, value.isoformat())  # dates


def _iso_timestamp(value: int, unit: str) -> str | None:
    digits = _UNIT_DIGITS[unit]
    seconds, fraction = divmod(value, 10**digits)
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
    # Fixed-width fields keep ISO strings in chronological order when compared as text.
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return text + (f".{fraction:0{digits}d}" if digits else "")


def _iso_time(value: int, unit: str) -> str:
    digits = _UNIT_DIGITS[unit]
    seconds, fraction = divmod(value, 10**digits)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{fraction:0{digits}d}" if digits else "")


def _string_bound(value: str, *, upper: bool) -> str:
    if len(value) <= STRING_BOUND_LENGTH:
        return value
    prefix = value[:STRING_BOUND_LENGTH]
    if not upper:
        return prefix
    # Incrementing the last character that can be incremented keeps an upper bound.
    for end in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[end]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000  # surrogates are not characters; skip over them
        if code <= sys.maxunicode:
            return prefix[:end] + chr(code)
    return value  # every character is U+10FFFF: no shorter bound exists


def _order_key(type_text: str, value: JsonScalar) -> Any:
    kind = _value_kind(type_text)
    if kind == "float":
        return float(value)  # parses the "Infinity" spellings too
    if kind == "decimal":
        return Decimal(str(value))
    return value


@functools.lru_cache(maxsize=256)
def _value_kind(type_text: str) -> str:
    t = try_parse_type(type_text)
    if t is None:
        return "other"
    while isinstance(t, pa.DictionaryType):
        t = t.value_type
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    return "other"


def _pick(a: JsonScalar | None, b: JsonScalar | None, key: Any, choose: Any) -> JsonScalar | None:
    if a is None:
        return b
    if b is None:
        return a
    return cast(JsonScalar, choose(a, b, key=key))
