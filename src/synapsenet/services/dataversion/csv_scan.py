"""Per-chunk CSV statistics read straight from the bytes, without building columns.

:func:`scan_segment_stats` gives what :func:`.segment_stats.segment_stats` gives for the
rows pyarrow's CSV reader would parse from row-aligned chunks, with the options of
:func:`.tabular._csv_conversion` and the file's column types, but in one pass over the bytes
in compiled code (``_csvscan.c``): no Arrow columns are built, and only each chunk's rows,
nulls, string bytes and bounds are kept. That is most of a CSV commit's description cost
(parsing and summarising the new chunks; see ``benchmarks/README.md``).

It takes the common shapes of CSV only, and reads them exactly: columns of type int64,
float64, date32, bool and string; values in a strict grammar (decimal integers, decimal
numbers with an optional exponent, ``YYYY-MM-DD`` dates, pyarrow's true and false words,
UTF-8 strings), unquoted or quoted (doubled quotes inside); pyarrow's null words, unquoted.
For anything else it returns None and the caller parses the bytes with pyarrow, which
reads or refuses them: a value with spaces around it, ``inf``, a timestamp column, an empty
line, a line end inside quotes, a quote inside an unquoted field. Floats are converted with
correct rounding, as pyarrow's reader does, so the bounds are the same doubles.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import pyarrow as pa

from synapsenet.services.dataversion._arrow_numpy import array_of, validity_of
from synapsenet.services.dataversion._csvscan import scan
from synapsenet.services.dataversion.segment_stats import segment_schema

__all__ = ["scan_kinds", "scan_segment_stats"]

log = logging.getLogger(__name__)

_KINDS: Final[dict[pa.DataType, bytes]] = {
    pa.int64(): b"i",
    pa.float64(): b"f",
    pa.date32(): b"d",
    pa.bool_(): b"b",
    pa.string(): b"s",
}
_STRING: Final = ord("s")
_FLOAT: Final = ord("f")
_DATE: Final = ord("d")
_BOOL: Final = ord("b")
# Decoded bytes per value of the fixed-width kinds (booleans count one byte, as in _stats).
_WIDTHS: Final = {ord("i"): 8, _DATE: 4, _BOOL: 1}


def scan_kinds(schema: pa.Schema) -> bytes | None:
    """The column kinds the scanner reads ``schema``'s columns as, or None if it cannot."""
    kinds = [_KINDS.get(field.type) for field in schema]
    if not kinds or any(kind is None for kind in kinds):
        return None
    return b"".join(kind for kind in kinds if kind is not None)


def scan_segment_stats(
    data: bytes | bytearray | memoryview, ends: np.ndarray, schema: pa.Schema
) -> pa.Table | None:
    """Statistics of each chunk of headerless, row-aligned CSV bytes, or None.

    Args:
        data: The chunks' rows back to back, without the header.
        ends: Where each chunk ends in ``data`` (non-decreasing, the last at its end).
        schema: The file's columns.

    Returns:
        One row per chunk with the columns of :func:`.segment_stats.segment_schema`, equal
        to ``segment_stats`` of the parsed rows; or None where the bytes are not of the
        shapes read here (the caller then parses them with pyarrow).
    """
    kinds = scan_kinds(schema)
    if kinds is None:
        return None
    segments = len(ends)
    shape = (len(kinds), segments)
    nulls = np.empty(shape, dtype=np.int64)
    text = np.empty(shape, dtype=np.int64)
    low = np.zeros(shape, dtype=np.int64)
    high = np.zeros(shape, dtype=np.int64)
    flow = np.zeros(shape, dtype=np.float64)
    fhigh = np.zeros(shape, dtype=np.float64)
    rows = np.empty(segments, dtype=np.int64)
    offsets = np.ascontiguousarray(ends, dtype=np.int64)
    outcome = scan(data, offsets, kinds, nulls, text, low, high, flow, fhigh, rows)
    if isinstance(outcome, str):
        log.debug("CSV chunks parsed with pyarrow: %s", outcome)
        return None
    strings = iter(outcome)
    columns: list[pa.Array[Any]] = [array_of(rows, pa.int64())]
    size = np.zeros(segments, dtype=np.int64)
    for i, kind in enumerate(kinds):
        empty = rows == nulls[i]
        if kind == _STRING:
            size += rows * 4 + text[i]
            low_text, low_offsets, high_text, high_offsets = next(strings)
            lows = _strings(low_text, low_offsets, empty)
            highs = _strings(high_text, high_offsets, empty)
        elif kind == _FLOAT:
            size += rows * 8
            lows = array_of(flow[i], pa.float64(), empty)
            highs = array_of(fhigh[i], pa.float64(), empty)
        else:
            size += rows * _WIDTHS[kind]
            lows, highs = _bounds(kind, low[i], empty), _bounds(kind, high[i], empty)
        columns += [array_of(nulls[i], pa.int64()), lows, highs]
    columns.insert(1, array_of(size, pa.int64()))
    return pa.Table.from_arrays(columns, schema=segment_schema(schema))


def _bounds(kind: int, values: np.ndarray, empty: np.ndarray) -> pa.Array[Any]:
    """Integer bounds in the column's own type: int64, date32 (days) or bool."""
    if kind == _DATE:
        days = array_of(values, pa.int32(), empty)
        return pa.Array.from_buffers(
            pa.date32(), len(days), days.buffers(), null_count=days.null_count
        )
    if kind == _BOOL:
        return array_of(values, pa.int8(), empty).cast(pa.bool_())
    return array_of(values, pa.int64(), empty)


def _strings(text: bytes, offsets: bytes, empty: np.ndarray) -> pa.Array[Any]:
    """A string array from its data and int32 offsets, null where ``empty``."""
    validity, nulls = validity_of(empty)
    return pa.Array.from_buffers(
        pa.string(),
        len(empty),
        [validity, pa.py_buffer(offsets), pa.py_buffer(text)],
        null_count=nulls,
    )
