"""Dataset schemas: inference, canonical serialisation, and schema-evolution checks.

A :class:`Schema` is the ordered list of a table's columns, each with a name, a canonical
pyarrow type string (``str(pyarrow_type)``, e.g. ``int64``, ``timestamp[us, tz=UTC]``,
``list<item: string>``, with list elements always called ``item`` whatever the writer
named them) and a declared nullability. Nullability is the one Arrow declares,
never guessed from the data: CSV, JSON and pandas inputs are therefore always nullable, and
Parquet or Arrow files keep the ``not null`` their writer declared. Schema-level metadata
(e.g. pandas' index description) is not part of the schema.

Compatibility follows the Confluent Schema Registry / Avro rules, adapted to tabular data
where columns are matched **by name** (column order never matters). For each change we ask
two questions: can data written with the old schema be read with the new one (*backward*),
and can data written with the new schema be read with the old one (*forward*)? A reader
fills a column missing from the data with nulls when its own column is nullable, ignores
columns it does not know, and reads a value of another type only through a lossless
conversion (see :func:`read_conflict`).

===============================  ========  ========  ====  ====
change from previous to new      BACKWARD  FORWARD   FULL  NONE
===============================  ========  ========  ====  ====
add a nullable column            yes       yes       yes   yes
add a required column            no        yes       no    yes
drop a nullable column           yes       yes       yes   yes
drop a required column           yes       no        no    yes
widen a type (int32 -> int64)    yes       no        no    yes
narrow a type (int64 -> int32)   no        yes       no    yes
incompatible type (int -> str)   no        no        no    yes
required -> nullable             yes       no        no    yes
nullable -> required             no        yes       no    yes
same logical type, other layout  yes       yes       yes   yes
===============================  ========  ========  ====  ====

``FORWARD`` accepts narrowing because the old reader, with the wider type, reads the
narrower values losslessly. The ``*_TRANSITIVE`` modes apply the same rule against every
earlier schema instead of only the latest one.

Lossless conversions (the "widenings"): ``null`` to any type; signed integers to wider
signed integers; unsigned integers to wider unsigned or strictly wider signed integers;
floats to wider floats; an integer to a float whose mantissa holds all its values (int8 and
uint8 to float16 and up, int16 and uint16 to float32 and up, int32 and uint32 to float64);
integers and decimals to decimals with enough integer digits and scale; ``date32`` to
``date64``; timestamps and durations to a finer unit up to microseconds (nanoseconds cover
only the years 1677-2262, so a coarser unit never widens to them); times to any finer unit;
fixed-size binary to binary; lists, maps and structs element by element, where a struct
follows the column rules above for its fields. int64 and uint64 to float64 is **not** a
widening by default, because integers beyond 2**53 change value silently; pass
``allow_lossy_int_to_float=True`` to accept it.

Some types share one logical type and differ only in memory layout: ``string``,
``large_string`` and ``string_view``; ``binary``, ``large_binary`` and ``binary_view``;
the list layouts; a dictionary-encoded column and its value type. Changes among them are
compatible both ways: they are what pandas, polars and the CSV reader produce for the same
data, and Arrow readers convert between them without touching a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import blake3
import pyarrow as pa

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion._arrow_types import (
    canonical_type,
    conflict_between,
    parse_type,
    read_conflict,
)

__all__ = [
    "ChangeKind",
    "CompatibilityMode",
    "Schema",
    "SchemaChange",
    "SchemaField",
    "SchemaIncompatibleError",
    "check_compatibility",
    "diff_schemas",
    "infer_schema",
    "parse_type",
    "read_conflict",
    "require_compatible",
]

_FORMAT = "synapsenet.schema"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One column of a :class:`Schema`.

    Attributes:
        name: The column name.
        type: The canonical pyarrow type string: ``str(pyarrow_type)`` with list elements
            named ``item`` and map entries ``key``/``value``.
        nullable: Whether the column may hold nulls.
    """

    name: str
    type: str
    nullable: bool = True

    @classmethod
    def from_arrow(cls, field: pa.Field[Any]) -> SchemaField:
        """Describe a pyarrow field, with its type in canonical spelling."""
        return cls(name=field.name, type=str(canonical_type(field.type)), nullable=field.nullable)

    def to_arrow(self) -> pa.Field[Any]:
        """Rebuild the pyarrow field.

        Raises:
            InvalidError: If the type string names a type :func:`parse_type` cannot rebuild.
        """
        return pa.field(self.name, parse_type(self.type), nullable=self.nullable)

    def to_dict(self) -> dict[str, Any]:
        """The field as a JSON-ready dict."""
        return {"name": self.name, "nullable": self.nullable, "type": self.type}


@dataclass(frozen=True, slots=True)
class Schema:
    """The ordered columns of a tabular dataset version.

    Attributes:
        fields: The columns, in table order; names are unique.
    """

    fields: tuple[SchemaField, ...]

    def __post_init__(self) -> None:
        # Callers may hand in a list; store a tuple so the schema stays hashable.
        object.__setattr__(self, "fields", tuple(self.fields))
        seen: set[str] = set()
        for field in self.fields:
            if field.name in seen:
                raise InvalidError(
                    f"Column '{field.name}' appears more than once; columns are matched by "
                    "name, so names must be unique.",
                    field="schema",
                )
            seen.add(field.name)

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(field.name for field in self.fields)

    def get(self, name: str) -> SchemaField | None:
        """The column called ``name``, or None."""
        return next((field for field in self.fields if field.name == name), None)

    def __getitem__(self, name: str) -> SchemaField:
        field = self.get(name)
        if field is None:
            raise KeyError(name)
        return field

    def __contains__(self, name: object) -> bool:
        return any(field.name == name for field in self.fields)

    def __iter__(self) -> Iterator[SchemaField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        """Describe a pyarrow schema (its metadata is dropped)."""
        return cls(tuple(SchemaField.from_arrow(field) for field in schema))

    def to_arrow(self) -> pa.Schema:
        """Rebuild the pyarrow schema.

        Raises:
            InvalidError: If a type string names a type :func:`parse_type` cannot rebuild.
        """
        return pa.schema([field.to_arrow() for field in self.fields])

    def to_dict(self) -> dict[str, Any]:
        """The schema as a JSON-ready dict, tagged with its format and version."""
        return {
            "fields": [field.to_dict() for field in self.fields],
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
        }

    @classmethod
    def from_dict(cls, document: Any) -> Schema:
        """Read a schema written by :meth:`to_dict`.

        Raises:
            InvalidError: If the document is not a schema document.
        """
        if (
            not isinstance(document, dict)
            or document.get("format") != _FORMAT
            or not isinstance(document.get("fields"), list)
        ):
            raise InvalidError("Not a schema document.", field="schema")
        if document.get("version") != _FORMAT_VERSION:
            raise InvalidError(
                f"Unsupported schema document version {document.get('version')!r}; "
                f"this release reads version {_FORMAT_VERSION}.",
                field="schema",
            )
        fields: list[SchemaField] = []
        for index, item in enumerate(document["fields"]):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("name"), str)
                and isinstance(item.get("type"), str)
                and isinstance(item.get("nullable"), bool)
            ):
                raise InvalidError(
                    f"Schema field {index} needs a string 'name', a string 'type' and a "
                    "boolean 'nullable'.",
                    field="schema",
                )
            fields.append(SchemaField(item["name"], item["type"], item["nullable"]))
        return cls(tuple(fields))

    def to_json(self) -> str:
        """The canonical JSON text: keys sorted, no whitespace, non-ASCII kept as is."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        """Read a schema written by :meth:`to_json`.

        Raises:
            InvalidError: If the text is not JSON or not a schema document.
        """
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise InvalidError(f"Schema document is not JSON: {exc}", field="schema") from None
        return cls.from_dict(document)

    @property
    def fingerprint(self) -> str:
        """BLAKE3 hex digest of the canonical JSON; equal schemas share it."""
        return blake3.blake3(self.to_json().encode()).hexdigest()


def infer_schema(
    data: pa.Table | pa.RecordBatch | pa.RecordBatchReader | pa.Schema,
    *,
    required: Iterable[str] = (),
) -> Schema:
    """Infer the schema of a table.

    Args:
        data: A pyarrow table, record batch, batch reader or schema.
        required: Columns to declare non-nullable even though the source declared them
            nullable (CSV, JSON and pandas always do). They must exist and, when ``data``
            holds values, contain no nulls.

    Returns:
        The columns with their canonical type strings and declared nullability.

    Raises:
        InvalidError: If column names repeat, or a ``required`` column is missing or holds
            nulls.
    """
    schema = Schema.from_arrow(data if isinstance(data, pa.Schema) else data.schema)
    wanted = set(required)
    if not wanted:
        return schema
    missing = sorted(wanted - set(schema.names))
    if missing:
        raise InvalidError(
            f"Required columns {missing} are not in the data; it has {list(schema.names)}.",
            field="required",
        )
    if isinstance(data, pa.Table | pa.RecordBatch):
        with_nulls = sorted(name for name in wanted if data.column(name).null_count)
        if with_nulls:
            raise InvalidError(f"Required columns {with_nulls} contain nulls.", field="required")
    return Schema(
        tuple(replace(f, nullable=False) if f.name in wanted else f for f in schema.fields)
    )


# --- compatibility -------------------------------------------------------------------------


class CompatibilityMode(StrEnum):
    """Which schema changes a dataset accepts (see the table in the module docstring)."""

    BACKWARD = "backward"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD = "forward"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL = "full"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"

    @property
    def checks_backward(self) -> bool:
        """Whether the new schema must read data written with earlier schemas."""
        return self.value.startswith(("backward", "full"))

    @property
    def checks_forward(self) -> bool:
        """Whether earlier schemas must read data written with the new one."""
        return self.value.startswith(("forward", "full"))

    @property
    def is_transitive(self) -> bool:
        """Whether the new schema is checked against every earlier schema, not the latest."""
        return self.value.endswith("_transitive")

    def allows(self, change: SchemaChange) -> bool:
        """Whether this mode accepts ``change``."""
        return (change.backward_compatible or not self.checks_backward) and (
            change.forward_compatible or not self.checks_forward
        )


class ChangeKind(StrEnum):
    """What happened to a column between two schemas."""

    ADDED = "added"
    REMOVED = "removed"
    TYPE_CHANGED = "type_changed"
    NULLABILITY_CHANGED = "nullability_changed"


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One column-level difference between an old and a new schema.

    Attributes:
        column: The column name.
        kind: What changed.
        old_type: The column's type in the old schema (None when added).
        new_type: The column's type in the new schema (None when removed).
        old_nullable: The old nullability (None when added).
        new_nullable: The new nullability (None when removed).
        backward_compatible: Whether data written with the old schema can be read with the
            new one despite this change.
        forward_compatible: Whether data written with the new schema can be read with the
            old one despite this change.
        message: One sentence describing the change and its consequence.
        previous_index: For :func:`check_compatibility`, the index in ``previous`` of the
            schema this change was found against; None from :func:`diff_schemas`.
    """

    column: str
    kind: ChangeKind
    old_type: str | None
    new_type: str | None
    old_nullable: bool | None
    new_nullable: bool | None
    backward_compatible: bool
    forward_compatible: bool
    message: str
    previous_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The change as a JSON-ready dict."""
        return {
            "column": self.column,
            "kind": self.kind.value,
            "old_type": self.old_type,
            "new_type": self.new_type,
            "old_nullable": self.old_nullable,
            "new_nullable": self.new_nullable,
            "backward_compatible": self.backward_compatible,
            "forward_compatible": self.forward_compatible,
            "message": self.message,
            "previous_index": self.previous_index,
        }


class SchemaIncompatibleError(InvalidError):
    """A new schema breaks the dataset's compatibility mode; nothing was stored.

    The ``changes`` extension member of the problem document lists every incompatible
    change as :meth:`SchemaChange.to_dict` renders it.
    """

    code = "schema-incompatible"
    title = "Incompatible schema"

    def __init__(
        self,
        changes: Sequence[SchemaChange],
        mode: CompatibilityMode,
        *,
        dataset: str | None = None,
    ) -> None:
        subject = f"dataset '{dataset}'" if dataset else "the dataset"
        count = f"{len(changes)} incompatible change" + ("" if len(changes) == 1 else "s")
        listing = "; ".join(change.message for change in changes)
        detail = (
            f"The new schema breaks the {mode.value.upper()} compatibility of {subject} "
            f"({count}): {listing}."
        )
        extra: dict[str, Any] = {
            "mode": mode.value,
            "changes": [change.to_dict() for change in changes],
        }
        if dataset is not None:
            extra["dataset"] = dataset
        super().__init__(detail, field="schema", **extra)
        self.changes = tuple(changes)
        self.mode = mode


def diff_schemas(
    old: Schema, new: Schema, *, allow_lossy_int_to_float: bool = False
) -> list[SchemaChange]:
    """Every column-level change from ``old`` to ``new``, compatible or not.

    Columns are matched by name; a rename shows as a removal and an addition, and a pure
    reordering is no change. Changes come in the new schema's column order, then removed
    columns in the old order.

    Args:
        old: The earlier schema.
        new: The later schema.
        allow_lossy_int_to_float: Count int64/uint64 to float64 as a widening.

    Returns:
        The changes, each with its backward and forward verdicts.
    """
    changes: list[SchemaChange] = []
    for field in new.fields:
        before = old.get(field.name)
        if before is None:
            changes.append(_added(field))
            continue
        if before.type != field.type:
            changes.append(_type_changed(before, field, allow_lossy_int_to_float))
        if before.nullable != field.nullable:
            changes.append(_nullability_changed(before, field))
    changes.extend(_removed(field) for field in old.fields if field.name not in new)
    return changes


def check_compatibility(
    new: Schema,
    previous: Sequence[Schema],
    mode: CompatibilityMode = CompatibilityMode.BACKWARD,
    *,
    allow_lossy_int_to_float: bool = False,
) -> list[SchemaChange]:
    """Every change of ``new`` that ``mode`` forbids.

    Args:
        new: The schema about to be committed.
        previous: The dataset's earlier schemas, oldest first (may be empty).
        mode: The dataset's compatibility mode.
        allow_lossy_int_to_float: Count int64/uint64 to float64 as a widening.

    Returns:
        The incompatible changes, empty when ``new`` is acceptable. Transitive modes check
        the latest schema first, then older ones; a change already reported against a later
        schema is not repeated. ``previous_index`` says which schema each was found against.
    """
    if mode is CompatibilityMode.NONE or not previous:
        return []
    last = len(previous) - 1
    indices = range(last, -1, -1) if mode.is_transitive else range(last, last + 1)
    found: list[SchemaChange] = []
    seen: set[tuple[Any, ...]] = set()
    for index in indices:
        for change in diff_schemas(
            previous[index], new, allow_lossy_int_to_float=allow_lossy_int_to_float
        ):
            if mode.allows(change):
                continue
            key = (
                change.column,
                change.kind,
                change.old_type,
                change.new_type,
                change.old_nullable,
                change.new_nullable,
            )
            if key not in seen:
                seen.add(key)
                found.append(replace(change, previous_index=index))
    return found


def require_compatible(
    new: Schema,
    previous: Sequence[Schema],
    mode: CompatibilityMode = CompatibilityMode.BACKWARD,
    *,
    dataset: str | None = None,
    allow_lossy_int_to_float: bool = False,
) -> None:
    """Raise unless ``new`` satisfies ``mode`` against ``previous``.

    Args:
        new: The schema about to be committed.
        previous: The dataset's earlier schemas, oldest first.
        mode: The dataset's compatibility mode.
        dataset: The dataset name, for the error message.
        allow_lossy_int_to_float: Count int64/uint64 to float64 as a widening.

    Raises:
        SchemaIncompatibleError: Listing every incompatible change.
    """
    changes = check_compatibility(
        new, previous, mode, allow_lossy_int_to_float=allow_lossy_int_to_float
    )
    if changes:
        raise SchemaIncompatibleError(changes, mode, dataset=dataset)


def _verdict(backward: bool, forward: bool) -> str:
    if backward and forward:
        return "data written with either schema can be read with the other"
    if backward:
        return "data written with the old schema can be read with the new one, not the reverse"
    if forward:
        return "data written with the new schema can be read with the old one, not the reverse"
    return "neither schema can read data written with the other"


def _describe(nullable: bool) -> str:
    return "nullable" if nullable else "required"


def _added(field: SchemaField) -> SchemaChange:
    consequence = (
        "old data reads it as null"
        if field.nullable
        else "old data has no values for it, so the new schema cannot read old data"
    )
    return SchemaChange(
        column=field.name,
        kind=ChangeKind.ADDED,
        old_type=None,
        new_type=field.type,
        old_nullable=None,
        new_nullable=field.nullable,
        backward_compatible=field.nullable,
        forward_compatible=True,
        message=f"column '{field.name}' was added as {_describe(field.nullable)} "
        f"{field.type}: {consequence}",
    )


def _removed(field: SchemaField) -> SchemaChange:
    consequence = (
        "readers of the old schema read it as null"
        if field.nullable
        else "the old schema requires it, so it cannot read new data"
    )
    return SchemaChange(
        column=field.name,
        kind=ChangeKind.REMOVED,
        old_type=field.type,
        new_type=None,
        old_nullable=field.nullable,
        new_nullable=None,
        backward_compatible=True,
        forward_compatible=field.nullable,
        message=f"{_describe(field.nullable)} column '{field.name}' ({field.type}) was "
        f"removed: {consequence}",
    )


def _type_changed(old: SchemaField, new: SchemaField, lossy: bool) -> SchemaChange:
    backward = conflict_between(old.type, new.type, lossy)
    forward = conflict_between(new.type, old.type, lossy)
    reason = next((r for r in (backward, forward) if r is not None), None)
    return SchemaChange(
        column=new.name,
        kind=ChangeKind.TYPE_CHANGED,
        old_type=old.type,
        new_type=new.type,
        old_nullable=old.nullable,
        new_nullable=new.nullable,
        backward_compatible=backward is None,
        forward_compatible=forward is None,
        message=f"column '{new.name}' changed type from {old.type} to {new.type}: "
        f"{_verdict(backward is None, forward is None)}" + (f" ({reason})" if reason else ""),
    )


def _nullability_changed(old: SchemaField, new: SchemaField) -> SchemaChange:
    if new.nullable:
        consequence = "readers of the old schema cannot accept its nulls"
    else:
        consequence = "old data may hold nulls the new schema cannot accept"
    return SchemaChange(
        column=new.name,
        kind=ChangeKind.NULLABILITY_CHANGED,
        old_type=old.type,
        new_type=new.type,
        old_nullable=old.nullable,
        new_nullable=new.nullable,
        backward_compatible=new.nullable,
        forward_compatible=old.nullable,
        message=f"column '{new.name}' became {_describe(new.nullable)}: {consequence}",
    )
