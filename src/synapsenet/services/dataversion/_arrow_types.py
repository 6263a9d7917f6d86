"""Arrow types: rebuilding them from their strings, and which ones read others losslessly.

Private to the data versioning service; :mod:`.schema` exposes what callers need.

The conversions counted as lossless, and the layout-only differences, are listed in the
docstring of :mod:`.schema`.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa

from synapsenet.errors import InvalidError

__all__ = [
    "canonical_type",
    "conflict_between",
    "parse_type",
    "read_conflict",
    "try_parse_type",
]


def canonical_type(t: pa.DataType) -> pa.DataType:
    """``t`` with the child-field names Arrow ignores spelled the default way.

    Lists name their element ``item`` and maps their entries ``key``/``value``, whatever
    the writer chose (Parquet says ``element``), and field metadata is dropped, so the same
    data gets the same type string whichever reader produced it.
    """
    if isinstance(t, pa.FixedSizeListType):
        return _build(pa.list_, _item(t.value_field), t.list_size)
    for layout, factory in _LIST_LAYOUTS:
        if isinstance(t, layout):
            return _build(factory, _item(t.value_field))  # type: ignore[attr-defined]
    if isinstance(t, pa.MapType):
        return _build(
            pa.map_,
            pa.field("key", canonical_type(t.key_type), nullable=False),
            pa.field("value", canonical_type(t.item_type), nullable=t.item_field.nullable),
            keys_sorted=t.keys_sorted,
        )
    if isinstance(t, pa.StructType):
        children = [t.field(i) for i in range(t.num_fields)]
        return pa.struct([pa.field(f.name, canonical_type(f.type), f.nullable) for f in children])
    if isinstance(t, pa.DictionaryType):
        return _build(pa.dictionary, t.index_type, canonical_type(t.value_type), t.ordered)
    return t


def _item(field: pa.Field[Any]) -> pa.Field[Any]:
    return pa.field("item", canonical_type(field.type), nullable=field.nullable)


_TIME_UNITS = ("s", "ms", "us", "ns")
# Mantissa bits (with the implicit one) bound the integers a float holds exactly.
_FLOAT_MANTISSA = {16: 11, 32: 24, 64: 53}


def read_conflict(
    written: pa.DataType, reader: pa.DataType, *, allow_lossy_int_to_float: bool = False
) -> str | None:
    """Why values of type ``written`` cannot be read as ``reader``, or None if they can.

    Args:
        written: The type the data was written with.
        reader: The type the reader expects.
        allow_lossy_int_to_float: Count int64/uint64 to float64 as readable.

    Returns:
        None when every ``written`` value converts to ``reader`` without loss (the
        conversions listed in the module docstring), else a short reason.
    """
    return _conflict(written, reader, allow_lossy_int_to_float)


def conflict_between(written: str, reader: str, lossy: bool) -> str | None:
    """Like :func:`read_conflict`, for canonical type strings; unknown types must match."""
    written_type, reader_type = try_parse_type(written), try_parse_type(reader)
    if written_type is None or reader_type is None:
        # Without a pyarrow type there is nothing to reason about but the spelling.
        return None if written == reader else f"{written} and {reader} cannot be compared"
    return _conflict(written_type, reader_type, lossy)


def _logical(t: pa.DataType) -> pa.DataType:
    """The type with layout-only differences removed."""
    if isinstance(t, pa.DictionaryType):
        return _logical(t.value_type)
    if isinstance(t, pa.RunEndEncodedType):
        return _logical(t.value_type)
    if t in (pa.large_string(), pa.string_view()):
        return pa.string()
    if t in (pa.large_binary(), pa.binary_view()):
        return pa.binary()
    return t


def _is_variable_list(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _conflict(written: pa.DataType, reader: pa.DataType, lossy: bool) -> str | None:
    w, r = _logical(written), _logical(reader)
    if w.equals(r):
        return None
    if pa.types.is_null(w):
        return None
    if pa.types.is_integer(w) and (pa.types.is_integer(r) or pa.types.is_floating(r)):
        return _integer_conflict(w, r, lossy)
    if pa.types.is_floating(w) and pa.types.is_floating(r):
        return None if r.bit_width >= w.bit_width else f"{w} values do not all fit {r}"
    if pa.types.is_decimal(r) and (pa.types.is_integer(w) or pa.types.is_decimal(w)):
        return _decimal_conflict(w, r)
    if pa.types.is_date32(w) and pa.types.is_date64(r):
        return None
    if isinstance(w, pa.TimestampType) and isinstance(r, pa.TimestampType):
        if (w.tz is None) != (r.tz is None):
            return "timezone-aware and naive timestamps are different things"
        return _unit_conflict(w, w.unit, r, r.unit, to_ns=False)
    if isinstance(w, pa.DurationType) and isinstance(r, pa.DurationType):
        return _unit_conflict(w, w.unit, r, r.unit, to_ns=False)
    if isinstance(w, pa.Time32Type | pa.Time64Type) and isinstance(
        r, pa.Time32Type | pa.Time64Type
    ):
        # A time of day is under 86,400 s, so every unit has room for it.
        return _unit_conflict(w, w.unit, r, r.unit, to_ns=True)
    if pa.types.is_fixed_size_binary(w) and r.equals(pa.binary()):
        return None
    if isinstance(w, pa.FixedSizeListType) and isinstance(r, pa.FixedSizeListType):
        if w.list_size != r.list_size:
            return f"lists of {w.list_size} and of {r.list_size} items differ in shape"
        return _element_conflict(w.value_field, r.value_field, lossy, "list items")
    if (isinstance(w, pa.FixedSizeListType) or _is_variable_list(w)) and _is_variable_list(r):
        w_item = w.value_field  # type: ignore[attr-defined]
        r_item = r.value_field  # type: ignore[attr-defined]
        return _element_conflict(w_item, r_item, lossy, "list items")
    if isinstance(w, pa.MapType) and isinstance(r, pa.MapType):
        return _element_conflict(w.key_field, r.key_field, lossy, "map keys") or (
            _element_conflict(w.item_field, r.item_field, lossy, "map values")
        )
    if isinstance(w, pa.StructType) and isinstance(r, pa.StructType):
        return _struct_conflict(w, r, lossy)
    return f"{written} values cannot be read as {reader}"


def _integer_conflict(w: pa.DataType, r: pa.DataType, lossy: bool) -> str | None:
    signed = pa.types.is_signed_integer(w)
    value_bits = w.bit_width - 1 if signed else w.bit_width
    if pa.types.is_floating(r):
        mantissa = _FLOAT_MANTISSA[r.bit_width]
        if value_bits <= mantissa or (lossy and r.bit_width == 64):
            return None
        return f"{w} values beyond 2**{mantissa} are not exact in {r}"
    if signed and pa.types.is_unsigned_integer(r):
        return f"negative {w} values do not fit {r}"
    reader_bits = r.bit_width - 1 if pa.types.is_signed_integer(r) else r.bit_width
    return None if reader_bits >= value_bits else f"{w} values do not all fit {r}"


def _integer_digits(t: pa.DataType) -> int:
    if pa.types.is_decimal(t):
        return int(t.precision - t.scale)
    largest = 2 ** (t.bit_width - 1) if pa.types.is_signed_integer(t) else 2**t.bit_width - 1
    return len(str(largest))


def _decimal_conflict(w: pa.DataType, r: pa.DataType) -> str | None:
    w_scale = int(w.scale) if pa.types.is_decimal(w) else 0
    r_scale = int(r.scale) if pa.types.is_decimal(r) else 0
    if r_scale >= w_scale and _integer_digits(r) >= _integer_digits(w):
        return None
    return f"{w} values do not all fit {r}"


def _unit_conflict(
    w: pa.DataType, w_unit: str, r: pa.DataType, r_unit: str, *, to_ns: bool
) -> str | None:
    finer = _TIME_UNITS.index(r_unit) >= _TIME_UNITS.index(w_unit)
    if finer and (to_ns or r_unit != "ns" or w_unit == "ns"):
        return None
    if finer:
        return f"{r} spans only about 584 years, far less than {w}"
    return f"{w} values lose precision as {r}"


def _element_conflict(w: pa.Field[Any], r: pa.Field[Any], lossy: bool, what: str) -> str | None:
    if w.nullable and not r.nullable:
        return f"{what} may be null in {w.type} data but are required by the reader"
    inner = _conflict(w.type, r.type, lossy)
    return None if inner is None else f"{what}: {inner}"


def _struct_conflict(w: pa.StructType, r: pa.StructType, lossy: bool) -> str | None:
    written = {w.field(i).name: w.field(i) for i in range(w.num_fields)}
    for i in range(r.num_fields):
        reader_field = r.field(i)
        source = written.get(reader_field.name)
        if source is None:
            if not reader_field.nullable:
                return f"struct field '{reader_field.name}' is required but missing"
            continue
        problem = _element_conflict(source, reader_field, lossy, f"field '{source.name}'")
        if problem is not None:
            return f"struct {problem}"
    return None


# --- type strings --------------------------------------------------------------------------

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    str(t): t
    for t in (
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
        pa.month_day_nano_interval(),
    )
}


@functools.lru_cache(maxsize=1024)
def parse_type(text: str) -> pa.DataType:
    """Rebuild a pyarrow type from its canonical string, ``str(pyarrow_type)``.

    Covers primitive, temporal, decimal, binary and string types, lists of every layout,
    structs, maps and dictionaries. The result is checked to print back as ``text``.

    Raises:
        InvalidError: If ``text`` is not the string of a supported type (unions,
            extension types, struct fields whose names contain ``": "``...).
    """
    try:
        parser = _TypeParser(text)
        result = parser.parse()
    except (ValueError, KeyError, IndexError, TypeError, pa.ArrowException):
        result = None
    if result is None or str(result) != text:
        raise InvalidError(f"Cannot rebuild a pyarrow type from '{text}'.", field="type")
    return result


def try_parse_type(text: str) -> pa.DataType | None:
    try:
        return parse_type(text)
    except InvalidError:
        return None


class _TypeParser:
    """Recursive descent over the grammar pyarrow prints types in."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> pa.DataType:
        result = self.type_()
        if self.pos != len(self.text):
            raise ValueError("trailing text")
        return result

    def accept(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.accept(token):
            raise ValueError(f"expected {token!r} at {self.pos}")

    def until(self, token: str) -> str:
        end = self.text.index(token, self.pos)
        value = self.text[self.pos : end]
        self.pos = end + len(token)
        return value

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "_"
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def type_(self) -> pa.DataType:
        name = self.word()
        if name == "date32":
            self.expect("[day]")
            return pa.date32()
        if name == "date64":
            self.expect("[ms]")
            return pa.date64()
        if name in _SIMPLE_TYPES:
            return _SIMPLE_TYPES[name]
        if name in ("timestamp", "time32", "time64", "duration"):
            return self.temporal(name)
        if name.startswith("decimal"):
            self.expect("(")
            precision = int(self.until(", "))
            scale = int(self.until(")"))
            return _build(_DECIMALS[name], precision, scale)
        if name == "fixed_size_binary":
            self.expect("[")
            return pa.binary(int(self.until("]")))
        if name in _LISTS:
            self.expect("<")
            item = self.field()
            self.expect(">")
            if name == "fixed_size_list":
                self.expect("[")
                return _build(pa.list_, item, int(self.until("]")))
            return _build(_LISTS[name], item)
        if name == "struct":
            return self.struct()
        if name == "map":
            return self.map_()
        if name == "dictionary":
            self.expect("<values=")
            values = self.type_()
            self.expect(", indices=")
            indices = self.type_()
            self.expect(", ordered=")
            ordered = self.until(">") == "1"
            return _build(pa.dictionary, indices, values, ordered=ordered)
        raise ValueError(f"unknown type {name!r}")

    def temporal(self, name: str) -> pa.DataType:
        self.expect("[")
        unit = self.word()
        if name == "timestamp" and self.accept(", tz="):
            return _build(pa.timestamp, unit, tz=self.until("]"))
        self.expect("]")
        return _build(_TEMPORALS[name], unit)

    def field(self) -> pa.Field[Any]:
        name = self.until(": ")
        value_type = self.type_()
        nullable = not self.accept(" not null")
        return pa.field(name, value_type, nullable=nullable)

    def struct(self) -> pa.DataType:
        self.expect("<")
        fields: list[pa.Field[Any]] = []
        while not self.accept(">"):
            if fields:
                self.expect(", ")
            fields.append(self.field())
        return pa.struct(fields)

    def map_(self) -> pa.DataType:
        self.expect("<")
        key = self.type_()
        key_name = self.until("')") if self.accept(" ('") else "key"
        self.expect(", ")
        item = self.type_()
        item_name = self.until("')") if self.accept(" ('") else "value"
        keys_sorted = self.accept(", keys_sorted")
        self.expect(">")
        return _build(
            pa.map_,
            pa.field(key_name, key, nullable=False),
            pa.field(item_name, item),
            keys_sorted=keys_sorted,
        )


def _build(factory: Any, *args: Any, **kwargs: Any) -> pa.DataType:
    # pyarrow-stubs overloads expect literal units and concrete type parameters; the parser
    # only has strings and DataType, so its calls are checked at runtime by parse_type.
    result = factory(*args, **kwargs)
    assert isinstance(result, pa.DataType)
    return result


_DECIMALS: dict[str, Any] = {
    "decimal32": pa.decimal32,
    "decimal64": pa.decimal64,
    "decimal128": pa.decimal128,
    "decimal256": pa.decimal256,
}
_LISTS: dict[str, Any] = {
    "list": pa.list_,
    "large_list": pa.large_list,
    "list_view": pa.list_view,
    "large_list_view": pa.large_list_view,
    "fixed_size_list": pa.list_,
}
_LIST_LAYOUTS: tuple[tuple[type[pa.DataType], Any], ...] = (
    (pa.ListType, pa.list_),
    (pa.LargeListType, pa.large_list),
    (pa.ListViewType, pa.list_view),
    (pa.LargeListViewType, pa.large_list_view),
)
_TEMPORALS: dict[str, Any] = {
    "timestamp": pa.timestamp,
    "time32": pa.time32,
    "time64": pa.time64,
    "duration": pa.duration,
}
