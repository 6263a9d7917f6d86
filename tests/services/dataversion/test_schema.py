"""Schema inference, serialisation, and the schema-evolution rules of every mode."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.schema import (
    ChangeKind,
    CompatibilityMode,
    Schema,
    SchemaChange,
    SchemaField,
    SchemaIncompatibleError,
    check_compatibility,
    diff_schemas,
    infer_schema,
    parse_type,
    read_conflict,
    require_compatible,
)

Mode = CompatibilityMode


def schema(*fields: tuple[str, str, bool]) -> Schema:
    return Schema(tuple(SchemaField(name, type_, nullable) for name, type_, nullable in fields))


ID = ("id", "int64", False)

# One evolution step per row: (name, old, new, verdict per mode). BACKWARD: new reads old
# data; FORWARD: old reads new data; FULL: both; NONE: anything. The transitive modes give
# the same verdicts when there is a single earlier schema.
EVOLUTIONS: list[tuple[str, Schema, Schema, dict[Mode, bool]]] = [
    (
        "add nullable column",
        schema(ID),
        schema(ID, ("x", "int64", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "add required column",
        schema(ID),
        schema(ID, ("x", "int64", False)),
        {Mode.BACKWARD: False, Mode.FORWARD: True, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "drop nullable column",
        schema(ID, ("x", "string", True)),
        schema(ID),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "drop required column",
        schema(ID, ("x", "string", False)),
        schema(ID),
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "widen int32 to int64",
        schema(ID, ("x", "int32", True)),
        schema(ID, ("x", "int64", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "widen float32 to float64",
        schema(ID, ("x", "float", True)),
        schema(ID, ("x", "double", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "widen int32 to float64",
        schema(ID, ("x", "int32", True)),
        schema(ID, ("x", "double", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "int64 to float64 is lossy",
        schema(ID, ("x", "int64", True)),
        schema(ID, ("x", "double", True)),
        {Mode.BACKWARD: False, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "narrow int64 to int32",
        schema(ID, ("x", "int64", True)),
        schema(ID, ("x", "int32", True)),
        {Mode.BACKWARD: False, Mode.FORWARD: True, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "incompatible int64 to string",
        schema(ID, ("x", "int64", True)),
        schema(ID, ("x", "string", True)),
        {Mode.BACKWARD: False, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "nullable becomes required",
        schema(ID, ("x", "int64", True)),
        schema(ID, ("x", "int64", False)),
        {Mode.BACKWARD: False, Mode.FORWARD: True, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "required becomes nullable",
        schema(ID, ("x", "int64", False)),
        schema(ID, ("x", "int64", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
    (
        "string to large_string",
        schema(ID, ("x", "string", True)),
        schema(ID, ("x", "large_string", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "large_string to string",
        schema(ID, ("x", "large_string", True)),
        schema(ID, ("x", "string", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "dictionary-encode a string column",
        schema(ID, ("x", "string", True)),
        schema(ID, ("x", "dictionary<values=string, indices=int32, ordered=0>", True)),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "reorder columns",
        schema(ID, ("x", "int64", True)),
        schema(("x", "int64", True), ID),
        {Mode.BACKWARD: True, Mode.FORWARD: True, Mode.FULL: True, Mode.NONE: True},
    ),
    (
        "rename a required column",
        schema(ID, ("x", "int64", False)),
        schema(ID, ("y", "int64", False)),
        {Mode.BACKWARD: False, Mode.FORWARD: False, Mode.FULL: False, Mode.NONE: True},
    ),
]

_TRANSITIVE_OF = {
    Mode.BACKWARD: Mode.BACKWARD_TRANSITIVE,
    Mode.FORWARD: Mode.FORWARD_TRANSITIVE,
    Mode.FULL: Mode.FULL_TRANSITIVE,
}


def _cases() -> list[Any]:
    cases = []
    for name, old, new, verdicts in EVOLUTIONS:
        for mode, accepted in verdicts.items():
            modes = [mode] + ([_TRANSITIVE_OF[mode]] if mode in _TRANSITIVE_OF else [])
            for each in modes:
                cases.append(pytest.param(old, new, each, accepted, id=f"{name}-{each.value}"))
    return cases


@pytest.mark.parametrize(("old", "new", "mode", "accepted"), _cases())
def test_mode_verdict_matches_the_compatibility_table(
    old: Schema, new: Schema, mode: Mode, accepted: bool
) -> None:
    changes = check_compatibility(new, [old], mode)
    assert (changes == []) is accepted, [c.message for c in changes]
    for change in changes:
        assert change.previous_index == 0
        assert f"'{change.column}'" in change.message


def test_every_mode_has_a_verdict_in_the_table() -> None:
    covered = {m for _, _, _, verdicts in EVOLUTIONS for m in verdicts}
    covered |= {_TRANSITIVE_OF[m] for m in covered if m in _TRANSITIVE_OF}
    assert covered == set(Mode)


def test_lossy_int_to_float_can_be_allowed() -> None:
    old = schema(("x", "int64", True))
    new = schema(("x", "double", True))
    assert check_compatibility(new, [old], Mode.BACKWARD) != []
    assert check_compatibility(new, [old], Mode.BACKWARD, allow_lossy_int_to_float=True) == []


# --- type-level conversions ----------------------------------------------------------------

TZ = "UTC"
CONVERSIONS: list[tuple[pa.DataType, pa.DataType, bool]] = [
    (pa.int8(), pa.int16(), True),
    (pa.int16(), pa.int8(), False),
    (pa.int32(), pa.int64(), True),
    (pa.uint8(), pa.int16(), True),
    (pa.uint8(), pa.int8(), False),
    (pa.uint32(), pa.uint64(), True),
    (pa.int8(), pa.uint16(), False),
    (pa.float16(), pa.float32(), True),
    (pa.float32(), pa.float64(), True),
    (pa.float64(), pa.float32(), False),
    (pa.int8(), pa.float16(), True),
    (pa.int16(), pa.float32(), True),
    (pa.int32(), pa.float32(), False),
    (pa.int32(), pa.float64(), True),
    (pa.uint32(), pa.float64(), True),
    (pa.int64(), pa.float64(), False),
    (pa.uint64(), pa.float64(), False),
    (pa.float64(), pa.int64(), False),
    (pa.bool_(), pa.int8(), False),
    (pa.string(), pa.int64(), False),
    (pa.null(), pa.int64(), True),
    (pa.int64(), pa.null(), False),
    (pa.string(), pa.large_string(), True),
    (pa.large_string(), pa.string(), True),
    (pa.string_view(), pa.string(), True),
    (pa.binary(), pa.large_binary(), True),
    (pa.binary(4), pa.binary(), True),
    (pa.binary(), pa.binary(4), False),
    (pa.string(), pa.binary(), False),
    (pa.dictionary(pa.int8(), pa.string()), pa.large_string(), True),
    (pa.dictionary(pa.int8(), pa.int32()), pa.int64(), True),
    (pa.decimal128(10, 2), pa.decimal128(12, 2), True),
    (pa.decimal128(10, 2), pa.decimal128(10, 3), False),
    (pa.decimal128(10, 2), pa.decimal128(11, 3), True),
    (pa.decimal128(30, 2), pa.decimal256(40, 2), True),
    (pa.int32(), pa.decimal128(12, 2), True),
    (pa.int32(), pa.decimal128(11, 2), False),
    (pa.uint64(), pa.decimal128(20, 0), True),
    (pa.decimal128(10, 2), pa.float64(), False),
    (pa.date32(), pa.date64(), True),
    (pa.date64(), pa.date32(), False),
    (pa.timestamp("s"), pa.timestamp("us"), True),
    (pa.timestamp("us"), pa.timestamp("s"), False),
    (pa.timestamp("us"), pa.timestamp("ns"), False),
    (pa.timestamp("s"), pa.timestamp("s", tz=TZ), False),
    (pa.timestamp("ms", tz=TZ), pa.timestamp("ms", tz="Europe/Paris"), True),
    (pa.time32("s"), pa.time64("ns"), True),
    (pa.time64("us"), pa.time32("ms"), False),
    (pa.duration("s"), pa.duration("ms"), True),
    (pa.duration("ms"), pa.duration("ns"), False),
    (pa.list_(pa.int32()), pa.large_list(pa.int64()), True),
    (pa.list_(pa.int64()), pa.list_(pa.int32()), False),
    (pa.list_(pa.int64()), pa.list_(pa.field("item", pa.int64(), nullable=False)), False),
    (pa.list_(pa.field("item", pa.int64(), nullable=False)), pa.list_(pa.int64()), True),
    (pa.list_(pa.int8(), 3), pa.list_(pa.int16()), True),
    (pa.list_(pa.int8(), 3), pa.list_(pa.int16(), 3), True),
    (pa.list_(pa.int8(), 3), pa.list_(pa.int8(), 4), False),
    (pa.list_(pa.int8()), pa.list_(pa.int8(), 3), False),
    (pa.map_(pa.string(), pa.int32()), pa.map_(pa.string(), pa.int64()), True),
    (pa.map_(pa.int64(), pa.int32()), pa.map_(pa.int32(), pa.int32()), False),
    (pa.struct([("a", pa.int32())]), pa.struct([("a", pa.int64()), ("b", pa.string())]), True),
    (pa.struct([("a", pa.int32()), ("b", pa.string())]), pa.struct([("a", pa.int32())]), True),
    (
        pa.struct([("a", pa.int32())]),
        pa.struct([("a", pa.int32()), pa.field("b", pa.string(), nullable=False)]),
        False,
    ),
    (pa.struct([("a", pa.int64())]), pa.struct([("a", pa.int32())]), False),
]


@pytest.mark.parametrize(
    ("written", "reader", "readable"),
    [pytest.param(w, r, ok, id=f"{w}->{r}") for w, r, ok in CONVERSIONS],
)
def test_lossless_conversions(written: pa.DataType, reader: pa.DataType, readable: bool) -> None:
    conflict = read_conflict(written, reader)
    assert (conflict is None) is readable, conflict


def test_run_end_encoding_is_a_layout_of_its_values() -> None:
    assert read_conflict(pa.run_end_encoded(pa.int32(), pa.string()), pa.large_string()) is None


def test_int64_to_float64_is_readable_only_when_lossy_is_allowed() -> None:
    assert "2**53" in (read_conflict(pa.int64(), pa.float64()) or "")
    assert read_conflict(pa.int64(), pa.float64(), allow_lossy_int_to_float=True) is None
    assert read_conflict(pa.int64(), pa.float32(), allow_lossy_int_to_float=True) is not None


def test_unparseable_types_compare_by_spelling() -> None:
    union = "sparse_union<a: int8=0>"
    same = schema(("u", union, True))
    assert diff_schemas(same, same) == []
    [change] = diff_schemas(same, schema(("u", "int8", True)))
    assert not change.backward_compatible
    assert not change.forward_compatible
    assert "cannot be compared" in change.message


# --- transitive checks ---------------------------------------------------------------------


def test_chain_that_passes_pairwise_fails_transitively() -> None:
    # x is dropped, then re-added with another type: each step alone is fine.
    v1 = schema(ID, ("x", "int64", True))
    v2 = schema(ID)
    v3 = schema(ID, ("x", "string", True))
    for mode in (Mode.BACKWARD, Mode.FORWARD, Mode.FULL):
        assert check_compatibility(v2, [v1], mode) == []
        assert check_compatibility(v3, [v2], mode) == []
        assert check_compatibility(v3, [v1, v2], mode) == []
        [change] = check_compatibility(v3, [v1, v2], _TRANSITIVE_OF[mode])
        assert change.column == "x"
        assert change.kind is ChangeKind.TYPE_CHANGED
        assert (change.old_type, change.new_type) == ("int64", "string")
        assert change.previous_index == 0


def test_transitive_check_reports_a_change_once_against_the_latest_schema() -> None:
    old = schema(("x", "int64", True))
    new = schema(("x", "string", True))
    [change] = check_compatibility(new, [old, old, old], Mode.BACKWARD_TRANSITIVE)
    assert change.previous_index == 2


def test_first_version_and_none_mode_accept_anything() -> None:
    anything = schema(("x", "int64", False))
    assert check_compatibility(anything, [], Mode.FULL_TRANSITIVE) == []
    assert check_compatibility(anything, [schema(("y", "string", False))], Mode.NONE) == []


def test_mode_properties() -> None:
    assert Mode.BACKWARD.checks_backward
    assert not Mode.BACKWARD.checks_forward
    assert Mode.FORWARD_TRANSITIVE.checks_forward
    assert Mode.FORWARD_TRANSITIVE.is_transitive
    assert Mode.FULL.checks_backward
    assert Mode.FULL.checks_forward
    assert not Mode.FULL.is_transitive
    assert not Mode.NONE.checks_backward
    assert not Mode.NONE.checks_forward


# --- the error -----------------------------------------------------------------------------


def test_incompatible_error_lists_every_change_by_column() -> None:
    old = schema(ID, ("a", "int64", True), ("b", "string", True), ("c", "double", False))
    new = schema(ID, ("a", "int32", True), ("b", "string", False), ("d", "bool", False))
    with pytest.raises(SchemaIncompatibleError) as caught:
        require_compatible(new, [old], Mode.BACKWARD, dataset="clicks")
    error = caught.value
    assert isinstance(error, InvalidError)
    assert error.status == 422
    assert [(c.column, c.kind) for c in error.changes] == [
        ("a", ChangeKind.TYPE_CHANGED),
        ("b", ChangeKind.NULLABILITY_CHANGED),
        ("d", ChangeKind.ADDED),
    ]
    for column in ("'a'", "'b'", "'d'"):
        assert column in error.detail
    assert "BACKWARD" in error.detail
    assert "clicks" in error.detail
    assert "3 incompatible changes" in error.detail
    problem = error.to_problem()
    assert problem["type"].endswith("schema-incompatible")
    assert problem["mode"] == "backward"
    assert problem["dataset"] == "clicks"
    assert json.loads(json.dumps(problem))["changes"][0]["column"] == "a"


def test_require_compatible_passes_silently() -> None:
    require_compatible(schema(ID), [schema(ID)], Mode.FULL_TRANSITIVE)


def test_single_change_error_without_dataset() -> None:
    error = SchemaIncompatibleError(
        check_compatibility(schema(), [schema(ID)], Mode.FORWARD), Mode.FORWARD
    )
    assert "1 incompatible change)" in error.detail
    assert "the dataset" in error.detail
    assert "dataset" not in error.extra


# --- diff ----------------------------------------------------------------------------------


def test_diff_lists_compatible_and_incompatible_changes() -> None:
    old = schema(ID, ("a", "int32", True), ("gone", "string", True), ("n", "int64", False))
    new = schema(ID, ("n", "int64", True), ("a", "int64", True), ("new", "string", True))
    changes = diff_schemas(old, new)
    assert [(c.column, c.kind) for c in changes] == [
        ("n", ChangeKind.NULLABILITY_CHANGED),
        ("a", ChangeKind.TYPE_CHANGED),
        ("new", ChangeKind.ADDED),
        ("gone", ChangeKind.REMOVED),
    ]
    by_column = {c.column: c for c in changes}
    assert by_column["a"].backward_compatible
    assert not by_column["a"].forward_compatible
    assert by_column["gone"].old_type == "string"
    assert by_column["gone"].new_type is None
    assert by_column["new"].old_nullable is None
    assert all(c.previous_index is None for c in changes)
    assert "old data reads it as null" in by_column["new"].message


def test_change_that_alters_type_and_nullability_gives_two_changes() -> None:
    changes = diff_schemas(schema(("x", "int32", False)), schema(("x", "int64", True)))
    assert [c.kind for c in changes] == [ChangeKind.TYPE_CHANGED, ChangeKind.NULLABILITY_CHANGED]


def test_change_to_dict_is_json_ready() -> None:
    [change] = diff_schemas(schema(ID), schema())
    document = change.to_dict()
    assert json.loads(json.dumps(document)) == document
    assert document["kind"] == "removed"
    assert document["forward_compatible"] is False


# --- schema model and serialisation --------------------------------------------------------


def test_infer_schema_keeps_order_types_and_declared_nullability(tmp_path: Any) -> None:
    arrow_schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("when", pa.timestamp("us", tz="UTC")),
            pa.field("tags", pa.list_(pa.string())),
        ]
    )
    table = pa.table({"id": [1, 2], "when": [None, None], "tags": [["a"], []]}, schema=arrow_schema)
    pq.write_table(table, tmp_path / "t.parquet")
    inferred = infer_schema(pq.read_table(tmp_path / "t.parquet"))
    assert inferred.names == ("id", "when", "tags")
    assert inferred["id"] == SchemaField("id", "int64", nullable=False)
    assert inferred["when"].type == "timestamp[us, tz=UTC]"
    assert inferred["tags"].type == "list<item: string>"
    assert inferred.to_arrow() == arrow_schema


def test_child_field_names_are_spelled_canonically() -> None:
    element = pa.field("element", pa.int64(), nullable=False)
    key, value = pa.field("k", pa.string(), nullable=False), pa.field("v", pa.int8())
    entries = pa.map_(key, value)  # type: ignore[call-overload]  # stubs miss field overload
    nested = pa.struct([("a", pa.large_list(element)), ("m", entries)])
    assert SchemaField.from_arrow(pa.field("x", pa.list_(element))).type == (
        "list<item: int64 not null>"
    )
    assert SchemaField.from_arrow(pa.field("x", entries)).type == "map<string, int8>"
    assert SchemaField.from_arrow(pa.field("x", nested)).type == (
        "struct<a: large_list<item: int64 not null>, m: map<string, int8>>"
    )
    fixed = pa.list_(pa.field("e", pa.int8()), 2)
    assert SchemaField.from_arrow(pa.field("x", fixed)).type == "fixed_size_list<item: int8>[2]"
    coded = pa.dictionary(pa.int16(), pa.string())
    assert SchemaField.from_arrow(pa.field("x", coded)).type == str(coded)


def test_infer_schema_accepts_batches_readers_and_schemas() -> None:
    table = pa.table({"a": [1]})
    expected = schema(("a", "int64", True))
    assert infer_schema(table.to_batches()[0]) == expected
    assert infer_schema(pa.RecordBatchReader.from_batches(table.schema, [])) == expected
    assert infer_schema(table.schema) == expected


def test_required_columns_are_declared_non_nullable() -> None:
    table = pa.table({"id": [1, 2], "note": ["x", None]})
    inferred = infer_schema(table, required=["id"])
    assert not inferred["id"].nullable
    assert inferred["note"].nullable
    with pytest.raises(InvalidError, match=r"\['note'\] contain nulls"):
        infer_schema(table, required=["note"])
    with pytest.raises(InvalidError, match=r"\['nope'\] are not in the data"):
        infer_schema(table, required=["nope"])
    assert not infer_schema(table.schema, required=["note"])["note"].nullable


def test_duplicate_column_names_are_refused() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InvalidError, match="'a' appears more than once"):
        infer_schema(table)


def test_schema_lookup() -> None:
    s = schema(ID, ("x", "string", True))
    assert "x" in s
    assert "y" not in s
    assert len(s) == 2
    assert [f.name for f in s] == ["id", "x"]
    assert s.get("y") is None
    with pytest.raises(KeyError):
        s["y"]


def test_schema_json_is_canonical() -> None:
    s = schema(("é", "int64", True))
    text = s.to_json()
    assert text == (
        '{"fields":[{"name":"é","nullable":true,"type":"int64"}],'
        '"format":"synapsenet.schema","version":1}'
    )
    assert Schema.from_json(text.encode()) == s
    assert s.fingerprint == Schema.from_json(text).fingerprint
    assert s.fingerprint != schema(("é", "int64", False)).fingerprint


def test_schema_accepts_a_list_of_fields_and_stays_hashable() -> None:
    s = Schema([SchemaField("a", "int64")])  # type: ignore[arg-type]
    assert isinstance(s.fields, tuple)
    assert hash(s) == hash(schema(("a", "int64", True)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "Not a schema document"),
        ('{"format": "other", "fields": []}', "Not a schema document"),
        ('{"format": "synapsenet.schema", "version": 9, "fields": []}', "version 9"),
        (
            '{"format": "synapsenet.schema", "version": 1, "fields": [{"name": "a"}]}',
            "field 0",
        ),
    ],
)
def test_bad_schema_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        Schema.from_json(text)


def test_to_arrow_refuses_types_it_cannot_rebuild() -> None:
    with pytest.raises(InvalidError, match="Cannot rebuild a pyarrow type"):
        schema(("u", "sparse_union<a: int8=0>", True)).to_arrow()


@pytest.mark.parametrize(
    "text",
    [
        "int65",
        "timestamp[s",
        "timestamp[xs]",
        "list<item: int64>x",
        "struct<a: b, c: int8>",
        "dictionary<values=string, indices=float, ordered=0>",
    ],
)
def test_parse_type_refuses_malformed_strings(text: str) -> None:
    with pytest.raises(InvalidError):
        parse_type(text)


# --- properties ----------------------------------------------------------------------------

_PRIMITIVES = [
    pa.null(),
    pa.bool_(),
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.string(),
    pa.large_string(),
    pa.string_view(),
    pa.binary(),
    pa.large_binary(),
    pa.binary_view(),
    pa.binary(7),
    pa.date32(),
    pa.date64(),
    pa.month_day_nano_interval(),
    pa.decimal32(7, 2),
    pa.decimal64(15, 3),
    pa.decimal128(20, 4),
    pa.decimal256(45, -2),
    pa.dictionary(pa.int32(), pa.string()),
    pa.dictionary(pa.int8(), pa.large_string(), ordered=True),
]
_UNITS = ["s", "ms", "us", "ns"]

primitive_types = st.one_of(
    st.sampled_from(_PRIMITIVES),
    st.builds(pa.timestamp, st.sampled_from(_UNITS), st.sampled_from([None, "UTC", "+01:00"])),
    st.sampled_from([pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns")]),
    st.builds(pa.duration, st.sampled_from(_UNITS)),
)
names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=":,<>"), min_size=1, max_size=6
)


def _field(name: str, t: pa.DataType, nullable: bool) -> pa.Field[Any]:
    # Arrow refuses a non-nullable field of the null type.
    return pa.field(name, t, nullable or pa.types.is_null(t))


def _fields(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.Field[Any]]:
    return st.builds(_field, names, children, st.booleans())


arrow_types = st.recursive(
    primitive_types,
    lambda children: st.one_of(
        st.builds(pa.list_, _fields(children)),
        st.builds(pa.large_list, _fields(children)),
        st.builds(pa.list_view, _fields(children)),
        st.builds(pa.list_, _fields(children), st.integers(1, 4)),
        st.builds(pa.struct, st.lists(_fields(children), max_size=3, unique_by=lambda f: f.name)),
        st.builds(
            pa.map_,
            st.sampled_from([pa.string(), pa.int64()]),
            children,
            st.booleans(),
        ),
    ),
    max_leaves=6,
)
schemas = st.lists(
    st.builds(_field, names, arrow_types, st.booleans()).map(SchemaField.from_arrow),
    max_size=6,
    unique_by=lambda f: f.name,
).map(lambda fields: Schema(tuple(fields)))


@settings(max_examples=150, deadline=None)
@given(arrow_types)
def test_type_strings_round_trip(t: pa.DataType) -> None:
    assert parse_type(str(t)) == t


@settings(max_examples=100, deadline=None)
@given(schemas)
def test_schema_is_compatible_with_itself_in_every_mode(s: Schema) -> None:
    assert diff_schemas(s, s) == []
    for mode in Mode:
        assert check_compatibility(s, [s, s], mode) == []


@settings(max_examples=100, deadline=None)
@given(schemas)
def test_schema_round_trips_through_json_and_arrow(s: Schema) -> None:
    assert Schema.from_json(s.to_json()) == s
    assert Schema.from_arrow(s.to_arrow()) == s


_MIRROR = {
    ChangeKind.ADDED: ChangeKind.REMOVED,
    ChangeKind.REMOVED: ChangeKind.ADDED,
    ChangeKind.TYPE_CHANGED: ChangeKind.TYPE_CHANGED,
    ChangeKind.NULLABILITY_CHANGED: ChangeKind.NULLABILITY_CHANGED,
}


@settings(max_examples=100, deadline=None)
@given(schemas, schemas)
def test_backward_one_way_is_forward_the_other_way(a: Schema, b: Schema) -> None:
    back = {(c.column, _MIRROR[c.kind]): c for c in diff_schemas(b, a)}
    for change in diff_schemas(a, b):
        mirror: SchemaChange = back[(change.column, change.kind)]
        assert change.backward_compatible == mirror.forward_compatible
        assert change.forward_compatible == mirror.backward_compatible
    assert len(back) == len(diff_schemas(a, b))
    assert (check_compatibility(b, [a], Mode.BACKWARD) == []) == (
        check_compatibility(a, [b], Mode.FORWARD) == []
    )


@settings(max_examples=100, deadline=None)
@given(arrow_types)
def test_every_type_reads_itself(t: pa.DataType) -> None:
    assert read_conflict(t, t) is None
