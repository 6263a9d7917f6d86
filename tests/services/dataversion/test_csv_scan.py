"""Tests of the compiled CSV scanner: its statistics are segment_stats of pyarrow's parse.

The oracle parses the same headerless bytes with pyarrow as :class:`CsvChunkStats` does and
summarises each segment's rows with :func:`segment_stats`; the scanner must give an equal
table (signed zeros included) or None, never anything else.
"""

from __future__ import annotations

import importlib.util
import math
import struct
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.services.dataversion._csvscan import scan
from synapsenet.services.dataversion.csv_scan import scan_kinds, scan_segment_stats
from synapsenet.services.dataversion.segment_stats import segment_stats
from synapsenet.services.dataversion.tabular import _csv_conversion

ROOT = Path(__file__).resolve().parents[3]
TYPES = {"i": pa.int64(), "f": pa.float64(), "d": pa.date32(), "b": pa.bool_(), "s": pa.string()}
NULL_WORDS = ["", "NA", "null", "NaN", "N/A", "NULL", "nan", "#N/A", "-NaN", "n/a", "1.#IND"]
BOOL_WORDS = ["1", "0", "True", "TRUE", "true", "False", "FALSE", "false"]
INT64 = (-(2**63), 2**63 - 1)


def _schema(kinds: str) -> pa.Schema:
    return pa.schema([pa.field(f"c{i}", TYPES[k]) for i, k in enumerate(kinds)])


def _parse(data: bytes, schema: pa.Schema) -> pa.Table:
    """The rows as CsvChunkStats._read parses them."""
    if not data:
        return pa.Table.from_batches([], schema)
    conversion = _csv_conversion()
    conversion.column_types = schema
    if data.startswith("\ufeff".encode()):
        data = b"\n" + data
    source: Any = pa.py_buffer(data)
    return pa_csv.read_csv(
        source,
        read_options=pa_csv.ReadOptions(column_names=schema.names, use_threads=False),
        convert_options=conversion,
    )


def _row_counts(data: bytes, ends: np.ndarray) -> np.ndarray:
    """Rows per segment: a row counts where its last byte is (one row per line)."""
    lasts = [i for i, byte in enumerate(data) if byte == ord("\n")]
    if data and not data.endswith(b"\n"):
        lasts.append(len(data) - 1)
    segment = np.searchsorted(ends, np.array(lasts, dtype=np.int64), side="right")
    return np.bincount(segment, minlength=len(ends)).astype(np.int64)


def _oracle(data: bytes, ends: np.ndarray, schema: pa.Schema) -> pa.Table:
    return segment_stats(_parse(data, schema), _row_counts(data, ends))


def _signs(column: Any) -> list[float | None]:
    return [None if v is None else math.copysign(1.0, v) for v in column.to_pylist()]


def _assert_matches(got: pa.Table | None, expected: pa.Table) -> None:
    assert got is not None, "the scanner fell back"
    assert got.schema == expected.schema
    assert got.equals(expected), f"{got.to_pylist()} != {expected.to_pylist()}"
    for name, field in zip(got.schema.names, got.schema, strict=True):
        if pa.types.is_floating(field.type):
            assert _signs(got[name]) == _signs(expected[name]), name


def _ends(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# Cells: (field text, whether it is in the scanner's grammar).
Cell = tuple[str, bool]
_DIGITS = st.text("0123456789", min_size=1, max_size=20)
_DECIMAL = st.builds(
    lambda sign, digits, point, exponent: (
        sign + digits[:point] + "." + digits[point:] + exponent
        if point <= len(digits)
        else sign + digits + exponent
    ),
    st.sampled_from(["", "-"]),
    _DIGITS,
    st.integers(0, 21),
    st.sampled_from(["", "e", "E", "e+", "e-", "E-"]).flatmap(
        lambda e: st.just("") if not e else st.integers(0, 130).map(lambda x: f"{e}{x}")
    ),
)
_FLOAT_WORDS = ["-0.0", "0.0", "-0", "0", "1e5", "1.5E-07", "007", "007.50", ".5", "5.", "-.5"]
_FLOAT_TEXT = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(_FLOAT_WORDS)
    | _DECIMAL
)
_DATES = ["2000-02-29", "1900-03-01", "0001-01-01", "9999-12-31", "1970-01-01", "1969-12-31"]
_SPECIAL_STRINGS = ["é", "日本", "🎉", "NA", "null", "", 'a"b', '""', "a,b", " x ", "Ωmega"]
_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\n\r\ufeff")
_ODD: dict[str, list[str]] = {
    "i": [" 5", "+5", "5 ", "1.0"],
    "f": ["inf", "Infinity", "+1.5", "1e", "NAN"],
    "d": ["2021-02-29", "2000-1-01", " 2000-01-01"],
    "b": ["yes", "tRue", " 1"],
    "s": ['ab"c', '"ab"c'],
}


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@st.composite
def _cells(draw: st.DrawFn, kind: str, odd: bool) -> Cell:
    roll = draw(st.integers(0, 19))
    if odd and roll == 0:
        return draw(st.sampled_from(_ODD[kind])), False
    if roll < 4:
        word = draw(st.sampled_from(NULL_WORDS))
        # Null words that start like a number send numeric columns to pyarrow (reported).
        return word, not (kind in "if" and word[:1].isdigit())
    if kind == "s":
        text = draw(st.text(_CHARS, max_size=6) | st.sampled_from(_SPECIAL_STRINGS))
        plain = not any(c in text for c in ',"') and draw(st.booleans())
        return (text if plain else _quoted(text)), True
    if kind == "i":
        number = draw(st.integers(*INT64) | st.sampled_from(INT64) | st.integers(-99, 99))
        text = str(number).replace("-", "-00" if draw(st.booleans()) else "-", 1)
        if number >= 0 and draw(st.booleans()):
            text = "00" + text
    elif kind == "f":
        text = draw(_FLOAT_TEXT)
    elif kind == "d":
        text = draw(st.dates().map(lambda d: d.isoformat()) | st.sampled_from(_DATES))
    else:
        text = draw(st.sampled_from(BOOL_WORDS))
    return (_quoted(text) if draw(st.integers(0, 7)) == 0 else text), True


@st.composite
def _csvs(draw: st.DrawFn) -> tuple[bytes, np.ndarray, pa.Schema, bool]:
    """CSV bytes, segment ends at row ends, the schema, and whether all is in the grammar."""
    kinds = draw(st.text("ifdbs", min_size=1, max_size=6))
    odd = draw(st.integers(0, 3)) == 0  # values outside the grammar, now and then
    rows = draw(st.lists(st.tuples(*(_cells(k, odd) for k in kinds)), max_size=25))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    supported = all(ok for row in rows for _, ok in row)
    if len(kinds) == 1 and any(text == "" for row in rows for text, _ in row):
        supported = False  # pyarrow skips the empty line
    lines = [(",".join(text for text, _ in row) + newline).encode() for row in rows]
    if lines and not draw(st.booleans()):
        lines[-1] = lines[-1][: -len(newline)]
        if not lines[-1]:
            supported = False  # the last row is gone
        elif lines[-1].endswith(b","):
            supported = False  # an empty last field without a line end: declined
    offsets = np.cumsum([0] + [len(line) for line in lines]).tolist()
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=6)))
    ends = _ends([offsets[k] for k in cuts] + [offsets[-1]])
    return b"".join(lines), ends, _schema(kinds), supported


@settings(max_examples=200, deadline=None)
@given(_csvs())
def test_scanner_gives_segment_stats_of_pyarrows_parse(
    case: tuple[bytes, np.ndarray, pa.Schema, bool],
) -> None:
    data, ends, schema, supported = case
    got = scan_segment_stats(data, ends, schema)
    counts = _row_counts(data, ends)
    try:
        table = _parse(data, schema)
    except pa.ArrowInvalid:
        assert got is None
        assert not supported
        return
    if table.num_rows != counts.sum():  # pyarrow skipped an empty line
        assert got is None
        assert not supported
        return
    if supported or got is not None:
        _assert_matches(got, segment_stats(table, counts))


def _mid_text(x: float, digits: int) -> str:
    """The halfway point between ``x`` and the next double, to ``digits`` digits."""
    mid = (Decimal(x) + Decimal(math.nextafter(x, math.inf))) / 2
    return format(Context(prec=digits).plus(mid), "e")


_HARD_FLOATS = [
    "4.9e-324",
    "5e-324",
    "2.2250738585072011e-308",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "9007199254740993",
    "0.1",
    "123456789012345678901e-130",
    "1e-130",
    "1e130",
    "-0",
]
_FLOAT_CASES = (
    st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | _DECIMAL
    | st.sampled_from(_HARD_FLOATS)
    | st.builds(
        _mid_text,
        st.floats(min_value=1e-300, max_value=1e300, allow_subnormal=False),
        st.integers(17, 20),
    )
)


def _bits(value: Any) -> bytes:
    return struct.pack("<d", value)


@settings(max_examples=200, deadline=None)
@given(st.lists(_FLOAT_CASES, min_size=1, max_size=40))
def test_floats_round_as_python_and_pyarrow(texts: list[str]) -> None:
    lines = [(text + "\n").encode() for text in texts]
    data = b"".join(lines)
    ends = _ends(np.cumsum([len(line) for line in lines]).tolist())
    schema = _schema("f")
    got = scan_segment_stats(data, ends, schema)
    assert got is not None
    parsed = _parse(data, schema).column(0).to_pylist()
    for text, low, high, arrow in zip(
        texts, got["min_0"].to_pylist(), got["max_0"].to_pylist(), parsed, strict=True
    ):
        assert _bits(low) == _bits(high) == _bits(float(text)) == _bits(arrow), text


def _one(kinds: str, data: bytes) -> tuple[str, bytes, list[int]]:
    return kinds, data, [len(data)]


FALLBACKS = {
    "space around a value": (_one("i", b"1\n 5\n"), {"c0": [1, 5]}),
    "inf": (_one("f", b"1.5\ninf\n"), {"c0": [1.5, math.inf]}),
    "Infinity": (_one("f", b"Infinity\n"), {"c0": [math.inf]}),
    "plus sign": (_one("f", b"+1.5\n"), {"c0": [1.5]}),
    "quote inside unquoted": (_one("s", b'ab"c\n'), {"c0": ['ab"c']}),
    "text after quoted": (_one("s", b'"ab"c\n'), {"c0": ["abc"]}),
    "line end in quotes": (_one("s", b'"a\nb"\n'), {"c0": ["a\nb"]}),
    "empty line": (_one("ii", b"1,2\n\n3,4\n"), {"c0": [1, 3], "c1": [2, 4]}),
    "lone carriage return": (_one("ii", b"1,2\r3,4\n"), {"c0": [1, 3], "c1": [2, 4]}),
    "too few fields": (_one("ii", b"1,2\n3\n"), None),
    "too many fields": (_one("ii", b"1,2,3\n"), None),
    "invalid UTF-8": (_one("s", b"a\n\xff\n"), None),
    "byte order mark": (_one("s", b"\xef\xbb\xbfab\n"), {"c0": ["\ufeffab"]}),
    "int64 overflow": (_one("i", b"9223372036854775808\n"), None),
    "invalid date": (_one("d", b"2021-02-29\n"), None),
    "quoted null word in int": (_one("i", b'"NA"\n'), None),
    "row across segment end": (("i", b"12\n34\n", [4, 6]), {"c0": [12, 34]}),
    "bytes after last end": (("i", b"12\n34\n", [3]), {"c0": [12, 34]}),
}


@pytest.mark.parametrize(("case", "parsed"), FALLBACKS.values(), ids=FALLBACKS.keys())
def test_fallbacks_return_none(
    case: tuple[str, bytes, list[int]], parsed: dict[str, list[Any]] | None
) -> None:
    kinds, data, ends = case
    schema = _schema(kinds)
    assert scan_segment_stats(data, _ends(ends), schema) is None
    if parsed is None:
        with pytest.raises(pa.ArrowInvalid):
            _parse(data, schema)
    else:
        assert _parse(data, schema).to_pydict() == parsed


def test_timestamp_schema_falls_back() -> None:
    schema = pa.schema([pa.field("t", pa.timestamp("s")), pa.field("x", pa.int64())])
    data = b"2020-01-01 00:00:00,1\n"
    assert scan_segment_stats(data, _ends([len(data)]), schema) is None
    assert _parse(data, schema).column(1).to_pylist() == [1]


def test_scan_kinds() -> None:
    assert scan_kinds(_schema("ifdbs")) == b"ifdbs"
    for t in [pa.timestamp("s"), pa.int32(), pa.null(), pa.large_string()]:
        assert scan_kinds(pa.schema([pa.field("a", pa.int64()), pa.field("b", t)])) is None
    assert scan_kinds(pa.schema([])) is None


def test_pow10_header_is_generated() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_pow10_table", ROOT / "scripts" / "gen_pow10_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    header = ROOT / "src/synapsenet/services/dataversion/_csvscan_pow10.h"
    assert header.read_text() == module.header()


OFFSETS = np.array([0, 1], dtype=np.int32).tobytes()
_OUTPUTS = ["nulls", "text", "low", "high", "flow", "fhigh", "rows"]


def _outputs(cells: int, segments: int) -> list[np.ndarray]:
    ints = [np.zeros(cells, dtype=np.int64) for _ in range(4)]
    floats = [np.zeros(cells, dtype=np.float64) for _ in range(2)]
    return [*ints, *floats, np.zeros(segments, dtype=np.int64)]


def test_scan_reads_its_arguments() -> None:
    outputs = _outputs(2, 1)
    assert scan(b"1,x\n", _ends([4]), b"is", *outputs) == ((b"x", OFFSETS, b"x", OFFSETS),)


@pytest.mark.parametrize("name", _OUTPUTS)
def test_scan_refuses_wrong_output_sizes(name: str) -> None:
    outputs = _outputs(2, 1)
    index = _OUTPUTS.index(name)
    outputs[index] = np.zeros(len(outputs[index]) + 1, dtype=outputs[index].dtype)
    with pytest.raises(ValueError, match=f"^{name} holds"):
        scan(b"1,2\n", _ends([4]), b"ii", *outputs)


def test_scan_refuses_unknown_kinds_and_ragged_ends() -> None:
    with pytest.raises(ValueError, match="unknown column kind x"):
        scan(b"1\n", _ends([2]), b"x", *_outputs(1, 1))
    with pytest.raises(ValueError, match="ends must be int64"):
        scan(b"1\n", np.zeros(7, dtype=np.uint8), b"i", *_outputs(1, 1))
    with pytest.raises(ValueError, match="no column"):
        scan(b"1\n", _ends([2]), b"", *_outputs(0, 1))


def test_empty_data_and_empty_segments() -> None:
    schema = _schema("ifdbs")
    for ends in [[], [0], [0, 0, 0]]:
        _assert_matches(
            scan_segment_stats(b"", _ends(ends), schema), _oracle(b"", _ends(ends), schema)
        )


def test_single_row() -> None:
    schema = _schema("ifdbs")
    for data in [b'-7,2.5,2000-02-29,TRUE,"h""i"\n', b"9,-0.0,0001-01-01,0,\xc3\xa9"]:
        ends = _ends([0, len(data), len(data)])
        expected = _oracle(data, ends, schema)
        assert expected["rows"].to_pylist() == [0, 1, 0]
        _assert_matches(scan_segment_stats(data, ends, schema), expected)


def test_many_segments() -> None:
    rng = np.random.default_rng(7)
    lines = [
        f"{rng.integers(-(10**12), 10**12)},{rng.normal():.6g},{'NA' if k % 7 == 0 else k}\n"
        for k in range(3000)
    ]
    offsets = np.cumsum([0] + [len(line) for line in lines])
    cuts = np.sort(np.append(rng.integers(0, len(lines), size=998), 0))
    ends = np.append(offsets[cuts], offsets[-1]).astype(np.int64)
    data = "".join(lines).encode()
    schema = _schema("ifs")
    expected = _oracle(data, ends, schema)
    assert expected.num_rows == 1000
    assert expected["rows"].to_pylist()[0] == 0
    _assert_matches(scan_segment_stats(data, ends, schema), expected)


def test_signed_zero_bounds_follow_segment_stats() -> None:
    # numpy's fmin/fmax reductions over [nan, 0.0, 1.0, -0.0, 1.0, 1.0] give -0.0 as min.
    data = b",1\n0.0,1\n1.0,1\n-0.0,1\n1.0,1\n1.0,1\n"
    ends = _ends([len(data)])
    _assert_matches(
        scan_segment_stats(data, ends, _schema("fi")), _oracle(data, ends, _schema("fi"))
    )


@pytest.mark.parametrize(
    ("kinds", "data", "last"),
    [("ss", b'"a",', ""), ("is", b'"1",', ""), ("ib", b'"1",', "error"), ("ss", b"a,", None)],
)
def test_an_empty_last_field_without_a_line_end_is_left_to_pyarrow(
    kinds: str, data: bytes, last: str | None
) -> None:
    # At the end of data without a line end, pyarrow reads an empty field that follows a
    # quoted one as quoted: an empty string, not null (and no bool at all); the scanner
    # declines every empty last field there.
    schema, ends = _schema(kinds), _ends([len(data)])
    assert scan_segment_stats(data, ends, schema) is None
    if last == "error":
        with pytest.raises(pa.ArrowInvalid):
            _parse(data, schema)
    else:
        assert _oracle(data, ends, schema)["min_1"].to_pylist() == [last]
    terminated = data + b"\n"  # with a line end, the field is missing
    _assert_matches(
        scan_segment_stats(terminated, _ends([len(terminated)]), schema),
        _oracle(terminated, _ends([len(terminated)]), schema),
    )


def test_null_words_led_by_digits_are_read_in_numeric_columns() -> None:
    # The module reads pyarrow's null words; these fall back in int64 and float64 columns.
    data = b"1,1.5\n1.#IND,-1.#QNAN\n"
    ends, schema = _ends([len(data)]), _schema("if")
    _assert_matches(scan_segment_stats(data, ends, schema), _oracle(data, ends, schema))
