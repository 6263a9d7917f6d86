"""Dataset formats, reading tabular files and in-memory data, and per-version statistics."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion.tabular import (
    STRING_BOUND_LENGTH,
    ColumnStats,
    DatasetFormat,
    DatasetStats,
    _csv_conversion,
    csv_schema,
    detect_format,
    open_batches,
    read_table,
    table_stats,
    to_table,
)

F = DatasetFormat


# --- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("data.csv", F.CSV),
        ("DATA.CSV", F.CSV),
        ("data.csv.gz", F.CSV),
        ("data.jsonl.zst", F.JSONL),
        ("dir/part-0.parquet", F.PARQUET),
        ("x.pq", F.PARQUET),
        ("records.json", F.JSON),
        ("records.jsonl", F.JSONL),
        ("records.ndjson", F.JSONL),
        ("table.arrow", F.ARROW),
        ("table.feather", F.ARROW),
        ("table.arrows", F.ARROW),
        ("array.npy", F.NUMPY),
        ("model.bin", F.BINARY),
        ("README", F.BINARY),
        ("data.parquet.gz", F.BINARY),
        ("archive.tar.gz", F.BINARY),
    ],
)
def test_detect_format_by_extension(name: str, expected: DatasetFormat) -> None:
    assert detect_format(name) is expected


def test_detect_format_of_directories(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "cats").mkdir(parents=True)
    (images / "cats" / "a.PNG").write_bytes(b"x")
    (images / "b.jpg").write_bytes(b"x")
    assert detect_format(images) is F.IMAGE_DIRECTORY
    (images / "labels.csv").write_text("a\n")
    assert detect_format(images) is F.BINARY
    empty = tmp_path / "empty"
    empty.mkdir()
    assert detect_format(empty) is F.BINARY


@pytest.mark.parametrize("name", ["weights.bin", "array.npy", "notes"])
def test_detect_format_refuses_non_tabular_names_when_a_table_is_needed(name: str) -> None:
    with pytest.raises(InvalidError, match=rf"Cannot read '{name}' as a table") as caught:
        detect_format(f"some/dir/{name}", require_tabular=True)
    assert ".parquet" in caught.value.detail
    assert caught.value.field == "format"


def test_format_properties() -> None:
    assert {f for f in F if f.is_tabular} == {F.CSV, F.PARQUET, F.JSON, F.JSONL, F.ARROW}
    assert F.PARQUET.extension == ".parquet"
    assert F.NUMPY.extension == ".npy"
    assert F.IMAGE_DIRECTORY.extension == ""
    assert F("jsonl") is F.JSONL


# --- reading files -------------------------------------------------------------------------


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, None, 2.25],
            "label": ["cat", "dog", None],
        }
    )


def _values(table: pa.Table) -> dict[str, list[Any]]:
    return table.to_pydict()


EXPECTED = {"id": [1, 2, 3], "score": [0.5, None, 2.25], "label": ["cat", "dog", None]}


def _write(fmt: str, frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "csv.gz":
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    elif fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "json":
        path.write_text(json.dumps(records, indent=2))
    elif fmt in ("jsonl", "ndjson.json"):
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    elif fmt == "arrow":
        feather.write_feather(table, path)
    elif fmt == "arrows":
        with pa.ipc.new_stream(str(path), table.schema) as writer:
            writer.write_table(table)
    else:  # pragma: no cover - a typo in the parameter list
        raise AssertionError(fmt)


FILE_FORMATS = ["csv", "csv.gz", "parquet", "json", "jsonl", "arrow", "arrows"]


@pytest.mark.parametrize("suffix", FILE_FORMATS)
def test_read_table_reads_each_format(suffix: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / f"data.{suffix}"
    _write(suffix, frame, path)
    table = read_table(path)
    assert _values(table.select(["id", "score", "label"])) == EXPECTED


def test_json_file_with_one_record_per_line_is_read(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    _write("ndjson.json", frame, path)
    assert _values(read_table(path)) == EXPECTED


def test_json_array_and_jsonl_infer_the_same_types(frame: pd.DataFrame, tmp_path: Path) -> None:
    _write("json", frame, tmp_path / "a.json")
    _write("jsonl", frame, tmp_path / "a.jsonl")
    assert read_table(tmp_path / "a.json").schema == read_table(tmp_path / "a.jsonl").schema


def test_empty_json_array_is_an_empty_table(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text(" [ ] ")
    assert read_table(tmp_path / "e.json").num_rows == 0


@pytest.mark.parametrize("suffix", FILE_FORMATS[:1] + FILE_FORMATS[2:])
def test_read_table_from_a_file_object(suffix: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / f"data.{suffix}"
    _write(suffix, frame, path)
    fmt = detect_format(path)
    with path.open("rb") as handle:
        table = read_table(handle, fmt)
    assert _values(table.select(["id", "score", "label"])) == EXPECTED


def test_file_object_needs_an_explicit_format() -> None:
    with pytest.raises(InvalidError, match="pass the format explicitly"):
        read_table(io.BytesIO(b"a\n1\n"))


def test_read_table_reads_npy_without_pickle(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.arange(6, dtype=np.int32).reshape(3, 2))
    assert _values(read_table(tmp_path / "m.npy")) == {"c0": [0, 2, 4], "c1": [1, 3, 5]}
    buffer = io.BytesIO()
    np.save(buffer, np.array([1.5, 2.5]))
    buffer.seek(0)
    assert _values(read_table(buffer, F.NUMPY)) == {"c0": [1.5, 2.5]}


def test_read_table_refuses_non_tabular_formats(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00")
    with pytest.raises(InvalidError, match="BINARY is not tabular"):
        read_table(tmp_path / "x.bin", F.BINARY)
    with pytest.raises(InvalidError, match="IMAGE_DIRECTORY is not tabular"):
        open_batches(tmp_path / "x.bin", F.IMAGE_DIRECTORY)


def _parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(100))}), sink)
    return sink.getvalue()


MALFORMED: list[tuple[str, bytes, str]] = [
    ("bad.csv", b"a,b\n1,2\n3,4,5\n", "Expected 2 columns, got 3"),
    ("empty.csv", b"", "Empty CSV file"),
    ("bad.parquet", b"this is not parquet at all", "magic bytes"),
    ("cut.parquet", _parquet_bytes()[:-40], ""),
    ("bad.json", b'[{"a": 1}, {"a": ', "Expecting value"),
    ("scalars.json", b"[1, 2, 3]", "item 0 is int"),
    ("bad.jsonl", b'{"a": 1}\n{"a": oops}\n', "JSON parse error"),
    ("mixed.jsonl", b'{"a": 1}\n{"a": "x"}\n', "changed from number to string"),
    ("bad.arrow", b"not an arrow file, not a stream either", ""),
    ("bad.npy", b"\x93NUMPY garbage", ""),
]


@pytest.mark.parametrize(
    ("name", "content", "reason"), [pytest.param(*case, id=case[0]) for case in MALFORMED]
)
def test_malformed_files_raise_a_clear_error(
    name: str, content: bytes, reason: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidError) as caught:
        read_table(path)
    error = caught.value
    fmt = detect_format(path).name
    assert error.detail.startswith(f"Cannot read '{path}' as {fmt}: ")
    assert reason in error.detail
    assert error.field == "file"
    assert "Traceback" not in error.detail
    # The pyarrow exception is not chained: the error stands on its own.
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidError, match=r"as NUMPY: .*allow_pickle=False"):
        read_table(path)
    with pytest.raises(InvalidError, match="as NUMPY"):
        open_batches(path)
    with path.open("rb") as handle, pytest.raises(InvalidError, match="allow_pickle=False"):
        read_table(handle, F.NUMPY)


def test_npz_archive_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", a=np.arange(3))
    with pytest.raises(InvalidError, match="archive of arrays"):
        read_table(tmp_path / "arrays.npz", F.NUMPY)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    for name in ("nope.csv", "nope.parquet", "nope.json", "nope.arrow"):
        with pytest.raises(NotFoundError, match=f"'{tmp_path / name}' does not exist"):
            read_table(tmp_path / name)


def test_long_reader_messages_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("a,b\n" + ",".join(["x" * 50] * 30) + "\n")
    with pytest.raises(InvalidError) as caught:
        read_table(path)
    assert len(caught.value.detail) < 700


# --- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [*FILE_FORMATS, "npy"])
def test_open_batches_streams_the_same_rows(
    suffix: str, frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / f"data.{suffix}"
    if suffix == "npy":
        np.save(path, np.arange(10.0))
    else:
        _write(suffix, pd.concat([frame] * 4, ignore_index=True), path)
    whole = read_table(path)
    reader = open_batches(path, batch_rows=5, block_size=64)
    assert reader.schema == whole.schema
    batches = list(reader)
    assert pa.Table.from_batches(batches, whole.schema).equals(whole)
    if suffix in ("parquet", "arrow", "arrows", "npy", "json"):
        assert max(b.num_rows for b in batches) <= 5
        assert len(batches) > 1


def test_open_batches_from_file_objects(frame: pd.DataFrame, tmp_path: Path) -> None:
    for suffix in ("arrow", "arrows", "parquet"):
        path = tmp_path / f"d.{suffix}"
        _write(suffix, frame, path)
        with path.open("rb") as handle:
            table = open_batches(handle, detect_format(path)).read_all()
        assert _values(table.select(["id", "score", "label"])) == EXPECTED


def test_streaming_csv_reports_a_type_change_after_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("a\n" + "1\n" * 2000 + "oops\n")
    assert read_table(path).schema.field("a").type == pa.string()
    reader = open_batches(path, block_size=1024)
    with pytest.raises(InvalidError, match="inferred from the first block") as caught:
        reader.read_all()
    assert "'oops'" in caught.value.detail


def test_csv_schema_is_the_first_block_schema_open_batches_infers(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    rows = "".join(f"{i},2024-01-0{i % 9 + 1},x{i}\n" for i in range(100_000))
    path.write_text("n,day,s\n" + rows + "oops,2024-01-01,y\n")
    assert path.stat().st_size > 2**20  # the 'oops' is past the first block
    schema = csv_schema(path)
    assert schema == open_batches(path, F.CSV).schema
    assert schema.types == [pa.int64(), pa.date32(), pa.string()]
    assert read_table(path).schema.field("n").type == pa.string()


_CELLS = st.sampled_from(
    ["1", "-7", "2.5", "nan", "", "x", '"a,b"', '""', "2024-01-02", "true", "1e3", '"q""r"']
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(_CELLS, min_size=3, max_size=3), min_size=0, max_size=40),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
    block_size=st.integers(min_value=8, max_value=400),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_csv_schema_equals_the_streaming_readers_schema_for_any_block_size(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[list[str]],
    line_end: str,
    block_size: int,
    bom: bool,
    final_newline: bool,
) -> None:
    text = line_end.join(["a,b,c"] + [",".join(row) for row in rows])
    text = ("\ufeff" if bom else "") + text + (line_end if final_newline else "")
    path = tmp_path_factory.mktemp("schema") / "t.csv"
    path.write_bytes(text.encode())
    options = pa.csv.ReadOptions(block_size=block_size, use_threads=False)
    try:
        reader = pa.csv.open_csv(path, read_options=options, convert_options=_csv_conversion())
    except pa.ArrowInvalid:
        with pytest.raises(InvalidError, match="as CSV"):
            csv_schema(path, block_size=block_size)
        return
    assert csv_schema(path, block_size=block_size) == reader.schema


def test_csv_schema_of_a_first_block_without_a_whole_row_is_the_streaming_readers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("a,b\n1,2345678\nx,3\n")  # the first 8 bytes hold no whole data row
    options = pa.csv.ReadOptions(block_size=8, use_threads=False)
    streamed = pa.csv.open_csv(path, read_options=options, convert_options=_csv_conversion())
    assert csv_schema(path, block_size=8) == streamed.schema
    assert streamed.schema.types == [pa.int64(), pa.int64()]
    (tmp_path / "long-row.csv").write_text("a,b\n1," + "x" * 100 + "\n")
    with pytest.raises(InvalidError, match="straddles"):  # as the streaming reader does
        csv_schema(tmp_path / "long-row.csv", block_size=16)
    (tmp_path / "long-header.csv").write_text("a" * 40 + ",b\n1,2\n")
    with pytest.raises(InvalidError, match="as CSV"):
        csv_schema(tmp_path / "long-header.csv", block_size=16)
    (tmp_path / "ragged.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(InvalidError, match="Expected 2 columns"):
        csv_schema(tmp_path / "ragged.csv")


def test_csv_schema_of_a_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        csv_schema(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InvalidError, match=r"Cannot read '.*empty\.csv' as CSV"):
        csv_schema(tmp_path / "empty.csv")


def test_open_batches_of_a_malformed_file(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(InvalidError, match="as PARQUET"):
        open_batches(tmp_path / "bad.parquet")


# --- in-memory inputs ----------------------------------------------------------------------


def test_to_table_from_pandas_drops_only_the_default_index(frame: pd.DataFrame) -> None:
    assert to_table(frame).column_names == ["id", "score", "label"]
    indexed = frame.set_index("id")
    assert to_table(indexed).column_names == ["score", "label", "id"]
    shifted = frame.set_axis(pd.RangeIndex(10, 13))
    assert "__index_level_0__" in to_table(shifted).column_names
    assert to_table(frame["label"]).column_names == ["label"]
    assert _values(to_table(frame))["label"] == ["cat", "dog", None]


def test_to_table_from_polars_pyarrow_and_mappings() -> None:
    expected: dict[str, list[Any]] = {"a": [1, 2], "b": ["x", None]}
    assert _values(to_table(pl.DataFrame(expected))) == expected
    table = pa.table(expected)
    assert to_table(table) is table
    assert _values(to_table(table.to_batches()[0])) == expected
    assert _values(to_table(expected)) == expected


def test_to_table_from_numpy_arrays() -> None:
    assert _values(to_table(np.array([1, 2, 3]))) == {"c0": [1, 2, 3]}
    assert _values(to_table(np.array([[1.0, 2.0], [3.0, 4.0]]))) == {
        "c0": [1.0, 3.0],
        "c1": [2.0, 4.0],
    }
    records = np.array([(1, b"x"), (2, b"y")], dtype=[("n", "i4"), ("tag", "S1")])
    table = to_table(records)
    assert table.schema.field("n").type == pa.int32()
    assert _values(table) == {"n": [1, 2], "tag": [b"x", b"y"]}
    masked = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
    assert _values(to_table(masked)) == {"c0": [1, None, 3]}
    days = np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[D]")
    assert to_table(days).schema.field("c0").type == pa.date32()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((2, 2, 2)), r"got shape \(2, 2, 2\)"),
        (np.array(3), r"got shape \(\)"),
        (np.zeros((2, 2), dtype=[("a", "i4")]), "structured array must be 1-D"),
        (np.zeros(2, dtype=[("a", "i4", (3,))]), "sub-arrays of shape"),
        (np.array([1j, 2j]), "Cannot convert the data"),
        (pd.DataFrame({"mixed": [1, "a"]}), "column mixed"),
        ([1, 2, 3], "Cannot make a table from builtins.list"),
        ("a,b", "Cannot make a table from builtins.str"),
    ],
)
def test_to_table_refuses_what_it_cannot_lay_out(data: Any, message: str) -> None:
    with pytest.raises(InvalidError, match=message) as caught:
        to_table(data)
    assert caught.value.field == "data"


# --- statistics ----------------------------------------------------------------------------


def _random_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ints = pd.array(rng.integers(-1000, 1000, rows), dtype="Int64")
    ints[rng.random(rows) < 0.2] = pd.NA
    floats = rng.normal(size=rows)
    floats[rng.random(rows) < 0.1] = np.nan
    words = np.array(["apple", "kiwi", "Zebra", "éclair", "banana"], dtype=object)
    text = pd.Series(rng.choice(words, rows), dtype=object)
    text[rng.random(rows) < 0.3] = None
    days = pd.Series(
        pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D")
    )
    days[rng.random(rows) < 0.1] = None
    return pd.DataFrame({"n": ints, "x": floats, "word": text, "day": days})


def test_stats_match_pandas() -> None:
    frame = _random_frame(500, seed=7)
    stats = table_stats(pa.Table.from_pandas(frame, preserve_index=False))
    assert stats.rows == 500
    assert list(stats.columns) == ["n", "x", "word", "day"]
    for name in frame.columns:
        assert stats.columns[name].null_count == int(frame[name].isna().sum()), name
    assert stats.columns["n"].min == int(frame["n"].min())
    assert stats.columns["n"].max == int(frame["n"].max())
    assert stats.columns["x"].min == pytest.approx(float(np.nanmin(frame["x"])), abs=0)
    assert stats.columns["x"].max == float(np.nanmax(frame["x"]))
    words = frame["word"].dropna()
    assert (stats.columns["word"].min, stats.columns["word"].max) == (words.min(), words.max())
    day_min, day_max = stats.columns["day"].min, stats.columns["day"].max
    assert isinstance(day_min, str)
    assert isinstance(day_max, str)
    assert dt.datetime.fromisoformat(day_min) == frame["day"].min().to_pydatetime()
    assert dt.datetime.fromisoformat(day_max) == frame["day"].max().to_pydatetime()


def test_stats_match_numpy() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.integers(-(2**40), 2**40, size=(300, 4))
    stats = table_stats(to_table(matrix))
    for j in range(4):
        column = stats.columns[f"c{j}"]
        assert (column.min, column.max) == (int(matrix[:, j].min()), int(matrix[:, j].max()))
        assert column.null_count == 0
    assert stats.bytes == matrix.nbytes


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(0, 200), chunk=st.integers(1, 50))
def test_streaming_stats_equal_whole_table_stats(seed: int, rows: int, chunk: int) -> None:
    table = pa.Table.from_pandas(_random_frame(rows, seed), preserve_index=False)
    coded = table.append_column("code", pa.compute.dictionary_encode(table.column("word")))
    whole = table_stats(coded)
    if rows:  # a plain iterable of no batches has no schema to name the columns
        assert table_stats(coded.to_batches(max_chunksize=chunk)) == whole
    assert table_stats(
        pa.RecordBatchReader.from_batches(coded.schema, coded.to_batches(chunk))
    ) == (whole)


def test_stats_over_a_streamed_parquet_file_equal_the_whole_file(tmp_path: Path) -> None:
    frame = _random_frame(1000, seed=11)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "f.parquet")
    whole = table_stats(read_table(tmp_path / "f.parquet"))
    assert table_stats(open_batches(tmp_path / "f.parquet", batch_rows=64)) == whole


def test_stats_over_a_streamed_csv_equal_the_whole_file(tmp_path: Path) -> None:
    frame = _random_frame(1000, seed=5)
    frame.to_csv(tmp_path / "f.csv", index=False)
    whole = table_stats(read_table(tmp_path / "f.csv"))
    assert table_stats(open_batches(tmp_path / "f.csv", block_size=4096)) == whole


def test_stats_of_special_values() -> None:
    table = pa.table(
        {
            "nan": [float("nan"), None],
            "inf": [float("inf"), float("-inf")],
            "half": pa.array([1.5, -2.0], pa.float16()),
            "ts": pa.array([1, 1_700_000_000_123_456_789], pa.timestamp("ns", tz="Europe/Paris")),
            "naive": pa.array([0, 86_400], pa.timestamp("s")),
            "date64": pa.array([dt.date(2024, 2, 29), None], pa.date64()),
            "time": pa.array([3_723_000_001, 5], pa.time64("us")),
            "time32": pa.array([59, 3600], pa.time32("s")),
            "dur": pa.array([-5, 7], pa.duration("ms")),
            "dec": pa.array([Decimal("1.10"), Decimal("-3.25")], pa.decimal128(6, 2)),
            "flag": [True, None],
            "blob": [b"a", b"b"],
            "view": pa.array(["b", "a"], pa.string_view()),
            "items": [[1], None],
            "nothing": pa.nulls(2),
            "span": pa.array([(1, 2, 3), None], pa.month_day_nano_interval()),
        }
    )
    columns = table_stats(table).columns
    assert (columns["nan"].min, columns["nan"].max, columns["nan"].null_count) == (None, None, 1)
    assert (columns["inf"].min, columns["inf"].max) == ("-Infinity", "Infinity")
    assert (columns["half"].min, columns["half"].max) == (-2.0, 1.5)
    assert columns["ts"].min == "1970-01-01T00:00:00.000000001+00:00"
    assert columns["ts"].max == "2023-11-14T22:13:20.123456789+00:00"
    assert (columns["naive"].min, columns["naive"].max) == (
        "1970-01-01T00:00:00",
        "1970-01-02T00:00:00",
    )
    assert columns["date64"].min == "2024-02-29"
    assert (columns["time"].min, columns["time"].max) == ("00:00:00.000005", "01:02:03.000001")
    assert (columns["time32"].min, columns["time32"].max) == ("00:00:59", "01:00:00")
    assert (columns["dur"].min, columns["dur"].max) == (-5, 7)
    assert (columns["dec"].min, columns["dec"].max) == ("-3.25", "1.10")
    assert (columns["flag"].min, columns["flag"].max) == (True, True)
    assert (columns["view"].min, columns["view"].max) == ("a", "b")
    for unordered in ("blob", "items", "nothing", "span"):
        assert (columns[unordered].min, columns[unordered].max) == (None, None), unordered
    assert columns["nothing"].null_count == 2


def test_timestamps_outside_python_range_have_no_min_max() -> None:
    huge = pa.array([2**62], pa.timestamp("s"))
    column = table_stats(pa.table({"t": huge})).columns["t"]
    assert (column.min, column.max) == (None, None)


def test_long_strings_become_bounds() -> None:
    long_a = "a" * 300
    long_z = "z" * (STRING_BOUND_LENGTH - 1) + "zz"
    column = table_stats(pa.table({"s": ["m", long_a, long_z]})).columns["s"]
    assert column.min == "a" * STRING_BOUND_LENGTH
    assert isinstance(column.max, str)
    assert len(column.max) == STRING_BOUND_LENGTH
    assert column.max == "z" * (STRING_BOUND_LENGTH - 1) + "{"
    assert column.max > long_z
    assert column.min <= long_a


def test_string_upper_bound_skips_characters_that_cannot_grow() -> None:
    top = chr(0x10FFFF)
    text = "a" + top * (STRING_BOUND_LENGTH + 5)
    column = table_stats(pa.table({"s": [text]})).columns["s"]
    assert column.max == "b"
    only_top = top * (STRING_BOUND_LENGTH + 1)
    assert table_stats(pa.table({"s": [only_top]})).columns["s"].max == only_top
    before_gap = "\ud7ff" * (STRING_BOUND_LENGTH + 1)
    bound = table_stats(pa.table({"s": [before_gap]})).columns["s"].max
    assert isinstance(bound, str)
    assert bound[-1] == "\ue000"


def test_pooling_float_and_decimal_stats_orders_by_value() -> None:
    a = ColumnStats("double", 0, "-Infinity", 2.0)
    b = ColumnStats("double", 1, -5.0, "Infinity")
    assert a + b == ColumnStats("double", 1, "-Infinity", "Infinity")
    c = ColumnStats("decimal128(6, 2)", 0, "10.00", "10.00")
    d = ColumnStats("decimal128(6, 2)", 0, "9.00", "9.00")
    assert c + d == ColumnStats("decimal128(6, 2)", 0, "9.00", "10.00")
    odd = ColumnStats("sparse_union<a: int8=0>", 1, 3, 4)
    assert odd + ColumnStats("sparse_union<a: int8=0>", 0, 1, 2) == ColumnStats(
        "sparse_union<a: int8=0>", 1, 1, 4
    )


def test_pooling_refuses_mismatched_stats() -> None:
    with pytest.raises(InvalidError, match="int32 column with a int64"):
        ColumnStats("int32") + ColumnStats("int64")
    one = table_stats(pa.table({"a": [1]}))
    other = table_stats(pa.table({"b": [1]}))
    with pytest.raises(InvalidError, match="columns"):
        one + other


def test_empty_inputs() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert table_stats(empty) == DatasetStats(0, 0, {"a": ColumnStats("int64")})
    reader = pa.RecordBatchReader.from_batches(empty.schema, [])
    assert table_stats(reader) == DatasetStats(0, 0, {"a": ColumnStats("int64")})
    assert table_stats([]) == DatasetStats(0, 0, {})
    single = table_stats(pa.record_batch({"a": [4, None]}))
    assert single.columns["a"] == ColumnStats("int64", 1, 4, 4)


def test_bytes_count_decoded_values_whatever_the_batching() -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2, 3], pa.int32()),
            "b": [True, False, None],
            "s": ["ab", None, "cde"],
            "ls": pa.array(["x", "y", "z"], pa.large_string()),
            "sv": pa.array(["long enough to spill", "b", None], pa.string_view()),
            "l": [[1, 2], [], None],
            "fl": pa.array([[1, 2], [3, 4], [5, 6]], pa.list_(pa.int8(), 2)),
            "lv": pa.array([[1], [2, 3], None], pa.list_view(pa.int16())),
            "st": [{"a": 1}, {"a": 2}, None],
            "sd": pa.StructArray.from_arrays(
                [pa.array(["x", "y", "x"]).dictionary_encode()], names=["code"]
            ),
            "m": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "n": pa.nulls(3),
            "u": pa.UnionArray.from_sparse(
                pa.array([0, 0, 0], pa.int8()), [pa.array([1, 2, 3], pa.int8())]
            ),
        }
    )
    stats = table_stats(table)
    expected = {
        "i": 3 * 4,
        "b": 3,
        "s": 3 * 4 + 5,
        "ls": 3 * 8 + 3,
        "sv": 3 * 16 + 21,
        "l": 3 * 4 + 2 * 8,
        "fl": 6,
        "lv": 3 * 8 + 3 * 2,
        "st": 3 * 8,
        "m": 3 * 4 + (4 + 1) + 8,
        "d": 3 * 4 + 3,
        "n": 0,
    }
    sizes = {name: table_stats(table.select([name])).bytes for name in expected}
    assert sizes == expected
    assert table_stats(table.to_batches(max_chunksize=1)).bytes == stats.bytes


def test_stats_round_trip_through_json() -> None:
    frame = _random_frame(50, seed=1)
    stats = table_stats(pa.Table.from_pandas(frame, preserve_index=False))
    text = stats.to_json()
    assert json.loads(text)["format"] == "synapsenet.stats"
    assert DatasetStats.from_json(text) == stats
    assert DatasetStats.from_json(text.encode()) == stats
    assert "NaN" not in text
    assert not any(isinstance(v, float) and math.isinf(v) for v in json.loads(text).values())


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "synapsenet.stats", "version": 2, "rows": 0, "bytes": 0, "columns": []}',
        '{"format": "synapsenet.stats", "version": 1, "rows": 0, "bytes": 0, "columns": [{}]}',
    ],
)
def test_bad_stats_documents_are_refused(text: str) -> None:
    with pytest.raises(InvalidError, match="tatistics document"):
        DatasetStats.from_json(text)


def test_csv_empty_field_is_null_and_quoted_empty_is_a_string(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text('a,b\nx,1\n,2\n"",3\n')
    assert read_table(tmp_path / "e.csv").column("a").to_pylist() == ["x", None, ""]


def test_stats_use_canonical_types_and_count_nulls_inside_dictionaries() -> None:
    element = pa.field("element", pa.int64())
    nested = pa.array([[1], None], pa.list_(element))
    coded = pa.DictionaryArray.from_arrays(pa.array([0, 1, None]), pa.array(["x", None]))
    stats = table_stats(pa.table({"l": nested, "c": coded[:2]}))
    assert stats.columns["l"].type == "list<item: int64>"
    assert stats.columns["c"].null_count == 1
    whole = table_stats(pa.table({"c": coded}))
    assert whole.columns["c"] == ColumnStats(str(coded.type), 2, "x", "x")
