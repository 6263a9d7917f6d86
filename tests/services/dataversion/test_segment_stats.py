"""Tests of segment_stats and pool_segments: pooled segments are a full pass over their rows.

The oracle is :func:`table_stats` over the selected rows gathered into one batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.services.dataversion._stats import STRING_BOUND_LENGTH, table_stats
from synapsenet.services.dataversion.segment_stats import (
    pool_segments,
    segment_schema,
    segment_stats,
)

INT64 = (-(2**63), 2**63 - 1)
_CHARACTERS = st.characters(exclude_categories=["Cs"])
_SHORT_TEXT = st.text(_CHARACTERS, max_size=8)
# Strings around the bound length, sharing long prefixes, some ending in U+10FFFF, so that
# the cut bounds of long strings are compared with each other.
_LONG_TEXT = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(
        [
            "a" * (STRING_BOUND_LENGTH - 1),
            "a" * STRING_BOUND_LENGTH,
            "b" * (STRING_BOUND_LENGTH + 3),
            "é" * STRING_BOUND_LENGTH,
            "a" * (STRING_BOUND_LENGTH - 1) + "\U0010ffff",
            "\U0010ffff" * (STRING_BOUND_LENGTH + 1),
            "\ud7ff" * STRING_BOUND_LENGTH,
        ]
    ),
    st.text(_CHARACTERS, max_size=4),
)
TEXT = _SHORT_TEXT | _LONG_TEXT
Build: TypeAlias = "Callable[[list[Any], pa.DataType], pa.Array[Any]]"
"""Makes a column of a type from its values (a list, None for nulls)."""


def _scaled(unit: str) -> st.SearchStrategy[int]:
    # Any instant a datetime can show, plus the int64 extremes it cannot.
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    low = max(INT64[0], -62_135_596_800 * per_second)
    high = min(INT64[1], 253_402_300_799 * per_second)
    return st.integers(low, high) | st.sampled_from(INT64)


def _ints(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.integers(low, high)


def _plain(values: list[Any], t: pa.DataType) -> pa.Array[Any]:
    return pa.array(values, t)


def _cast(storage: pa.DataType) -> Build:
    return lambda values, t: pa.array(values, storage).cast(t)


_PLAIN = _plain
# type -> (type, values, how to build the column from them)
TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any], Build]] = {
    "int64": (pa.int64(), _ints(*INT64), _PLAIN),
    "int32": (pa.int32(), _ints(-(2**31), 2**31 - 1), _PLAIN),
    "int8": (pa.int8(), _ints(-128, 127), _PLAIN),
    "uint8": (pa.uint8(), _ints(0, 255), _PLAIN),
    "uint32": (pa.uint32(), _ints(0, 2**32 - 1), _PLAIN),
    "uint64": (pa.uint64(), _ints(0, 2**64 - 1), _PLAIN),
    "float64": (pa.float64(), st.floats(), _PLAIN),
    "float32": (pa.float32(), st.floats(width=32), _PLAIN),
    "float16": (pa.float16(), st.floats(width=16), _cast(pa.float32())),
    "bool": (pa.bool_(), st.booleans(), _PLAIN),
    "string": (pa.string(), TEXT, _PLAIN),
    "large_string": (pa.large_string(), TEXT, _PLAIN),
    "string_view": (pa.string_view(), TEXT, _PLAIN),
    "binary": (pa.binary(), st.binary(max_size=8), _PLAIN),
    "large_binary": (pa.large_binary(), st.binary(max_size=8), _PLAIN),
    "fixed_size_binary": (pa.binary(3), st.binary(min_size=3, max_size=3), _PLAIN),
    "date32": (pa.date32(), _ints(-719_162, 2_932_896), _cast(pa.int32())),
    "date64": (
        pa.date64(),
        _ints(-719_162, 2_932_896).map(lambda days: days * 86_400_000),
        _cast(pa.int64()),
    ),
    "time32[s]": (pa.time32("s"), _ints(0, 86_399), _cast(pa.int32())),
    "time32[ms]": (pa.time32("ms"), _ints(0, 86_399_999), _cast(pa.int32())),
    "time64[ns]": (pa.time64("ns"), _ints(0, 86_400 * 10**9 - 1), _cast(pa.int64())),
    "timestamp[s]": (pa.timestamp("s"), _scaled("s"), _cast(pa.int64())),
    "timestamp[ms, UTC]": (pa.timestamp("ms", tz="UTC"), _scaled("ms"), _cast(pa.int64())),
    "timestamp[us, Paris]": (
        pa.timestamp("us", tz="Europe/Paris"),
        _scaled("us"),
        _cast(pa.int64()),
    ),
    "timestamp[ns]": (pa.timestamp("ns"), _scaled("ns"), _cast(pa.int64())),
    "duration[ms]": (pa.duration("ms"), _ints(*INT64), _cast(pa.int64())),
    "decimal128": (
        pa.decimal128(12, 3),
        st.decimals(min_value=-(10**8), max_value=10**8, places=3),
        _PLAIN,
    ),
    "decimal256": (
        pa.decimal256(40, 5),
        st.decimals(min_value=-(10**30), max_value=10**30, places=5),
        _PLAIN,
    ),
    "list": (pa.list_(pa.int64()), st.lists(st.integers(-5, 5), max_size=3), _PLAIN),
    "null": (pa.null(), st.none(), lambda values, t: pa.nulls(len(values))),
}


@st.composite
def tables(draw: st.DrawFn, names: list[str] | None = None) -> pa.Table:
    """A table of random columns of the :data:`TYPES` (with nulls, all-null columns)."""
    rows = draw(st.integers(0, 40))
    chosen = names or draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=4))
    arrays: dict[str, pa.Array[Any]] = {}
    for i, name in enumerate(chosen):
        t, values, build = TYPES[name]
        nulls = draw(st.sampled_from(["none", "some", "all"]))
        if nulls == "all":
            column: list[Any] = [None] * rows
        elif nulls == "some":
            column = draw(st.lists(values | st.none(), min_size=rows, max_size=rows))
        else:
            column = draw(st.lists(values, min_size=rows, max_size=rows))
        arrays[f"c{i}_{name}"] = build(column, t)
    table = pa.table(arrays)
    batch_rows = draw(st.integers(1, 50))
    return pa.Table.from_batches(table.to_batches(max_chunksize=batch_rows), table.schema)


@st.composite
def segmentations(draw: st.DrawFn, rows: int) -> list[int]:
    """Rows per segment, adding up to ``rows``; empty segments anywhere, even all of them."""
    cuts = sorted(draw(st.lists(st.integers(0, rows), max_size=12)))
    bounds = [0, *cuts, rows]
    return [high - low for low, high in itertools.pairwise(bounds)]


def gathered(table: pa.Table, counts: list[int], selection: list[int]) -> pa.Table:
    """The rows of the selected segments, in one batch."""
    starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    parts = [table.slice(starts[k], counts[k]) for k in selection]
    return pa.concat_tables([table.slice(0, 0), *parts]).combine_chunks()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_pooled_segments_equal_a_full_pass_over_their_rows(data: st.DataObject) -> None:
    table = data.draw(tables())
    counts = data.draw(segmentations(table.num_rows))
    segments = segment_stats(table, counts)
    assert segments.schema == segment_schema(table.schema)
    assert segments["rows"].to_pylist() == counts
    selection = data.draw(st.lists(st.integers(0, len(counts) - 1), max_size=2 * len(counts)))
    pooled = pool_segments(segments.take(pa.array(selection, pa.int64())), table.schema)
    assert pooled == table_stats(gathered(table, counts, selection))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_type_at_once_pools_to_the_full_pass(data: st.DataObject) -> None:
    table = data.draw(tables(sorted(TYPES)))
    counts = data.draw(segmentations(table.num_rows))
    segments = segment_stats(table, counts)
    everything = list(range(len(counts)))
    assert pool_segments(segments, table.schema) == table_stats(table.combine_chunks())
    half = everything[::2]
    pooled = pool_segments(segments.take(pa.array(half, pa.int64())), table.schema)
    assert pooled == table_stats(gathered(table, counts, half))


def test_empty_segments_of_no_rows_pool_to_empty_stats() -> None:
    table = pa.table({"n": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    segments = segment_stats(table, [0, 0])
    assert segments["rows"].to_pylist() == [0, 0]
    assert pool_segments(segments, table.schema) == table_stats(table)
    assert pool_segments(segments.slice(0, 0), table.schema) == table_stats(table)


def test_no_segments_at_all_give_an_empty_segment_table() -> None:
    table = pa.table({"n": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    segments = segment_stats(table, [])
    assert segments.num_rows == 0
    assert pool_segments(segments, table.schema) == table_stats(table)


def test_dictionary_columns_pool_as_their_decoded_values() -> None:
    values = pa.array(["b", None, "a", "c"]).dictionary_encode()
    table = pa.table({"d": values})
    assert segment_schema(table.schema).field("min_0").type == pa.string()
    segments = segment_stats(table, [1, 0, 3])
    assert segments["min_0"].to_pylist() == ["b", None, "a"]
    assert segments["max_0"].to_pylist() == ["b", None, "c"]
    assert pool_segments(segments, table.schema) == table_stats(table)
    assert pool_segments(segments.slice(0, 1), table.schema) == table_stats(table.slice(0, 1))


def test_segment_rows_hold_typed_bounds_and_nulls() -> None:
    table = pa.table(
        {
            "f": pa.array([1.5, float("nan"), None, -2.0, float("nan")], pa.float64()),
            "s": pa.array(["b", None, "a", "c", None]),
            "d": pa.array([Decimal("1.5"), None, Decimal("-3"), None, None], pa.decimal128(5, 2)),
        }
    )
    segments = segment_stats(table, np.array([2, 0, 2, 1]))
    assert segments.column("rows").to_pylist() == [2, 0, 2, 1]
    assert segments.column("nulls_0").to_pylist() == [0, 0, 1, 0]
    min_f = segments.column("min_0").to_pylist()
    assert min_f[0] == 1.5
    assert min_f[1] is None
    assert min_f[2] == -2.0
    assert min_f[3] != min_f[3]  # only NaN: NaN, which pooling ignores
    assert segments.column("min_1").to_pylist() == ["b", None, "a", None]
    assert segments.column("max_2").to_pylist() == [Decimal("1.5"), None, Decimal("-3"), None]
    assert segments.column("bytes").to_pylist() == [57, 0, 58, 28]
    assert pool_segments(segments, table.schema) == table_stats(table)


@pytest.mark.parametrize("counts", [[1, 1], [2, 2], [4], [2, 2, -1], [-1, 4]])
def test_counts_that_do_not_add_up_to_the_rows_are_refused(counts: list[int]) -> None:
    table = pa.table({"n": [1, 2, 3]})
    with pytest.raises(ValueError, match="segment sizes add up to"):
        segment_stats(table, counts)


@pytest.mark.parametrize("t", [pa.float64(), pa.float32()])
def test_of_signed_zeros_the_minimum_is_negative_and_the_maximum_positive(t: pa.DataType) -> None:
    # numpy's fmin/fmax leave it open which zero they return; the segments must not.
    values = [0.0, -0.0, 1.0, -0.0, 0.0] * 40 + [None, -0.0, -0.0, 0.0, 0.0, 2.0, None, 0.0]
    table = pa.table({"x": pa.array(values, t)})
    counts = np.array([200, 3, 2, 3])  # mixed; only -0.0 (and a null); only 0.0; 2.0 and 0.0
    segments = segment_stats(table, counts)

    def zero_signs(column: str) -> list[float]:
        values = segments.column(column).to_pylist()
        return [math.copysign(1, v) * (v == 0) for v in values if v is not None]

    lows, highs = zero_signs("min_0"), zero_signs("max_0")
    assert lows == [-1.0, -1.0, 1.0, 1.0]
    assert highs == [0.0, -1.0, 1.0, 0.0]  # 1.0 and 2.0 are no zeros
    assert segments.column("max_0").to_pylist() == [1.0, -0.0, 0.0, 2.0]
