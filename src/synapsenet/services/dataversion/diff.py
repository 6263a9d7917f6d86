"""What changed between two versions: files, schema, and rows of tabular data.

Files are compared through the two manifests (path and whole-file BLAKE3), so nothing is
read for them. Rows are compared as multisets: every row is hashed on the columns both
versions share, and ``rows_added`` counts the hashes in the new version beyond their count
in the old one (``rows_removed`` the reverse). An appended row is one added; an edited row is
one removed and one added; a moved row is nothing.

Only files that differ are read: the rows of a file identical on both sides appear in both
multisets equally and cancel, so an append to one file of ten reads two files, not twenty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.models import DatasetVersion, VersionDiff
from synapsenet.services.dataversion.schema import Schema, diff_schemas

__all__ = ["diff_versions", "row_hashes"]

Hashes = npt.NDArray[np.uint64]

# Stand-in hash of a null cell: nulls compare equal to nulls whatever the column's type.
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0x100000001B3)


def diff_versions(engine: DatasetVersioningEngine, old_ref: str, new_ref: str) -> VersionDiff:
    """Compare two versions (of one dataset, or of two).

    Args:
        engine: The versioning engine holding both versions.
        old_ref: The older side (``name@v1``, a tag...).
        new_ref: The newer side.

    Returns:
        Paths added, removed and changed; schema changes; and, when both versions are
        tabular, how many rows were added and removed (as multisets of rows).

    Raises:
        NotFoundError: Either version does not exist.
    """
    old, new = engine.resolve(old_ref), engine.resolve(new_ref)
    old_files = {f.path: f.content_hash for f in engine.manifests.load(old.root).files}
    new_files = {f.path: f.content_hash for f in engine.manifests.load(new.root).files}
    added = sorted(new_files.keys() - old_files.keys())
    removed = sorted(old_files.keys() - new_files.keys())
    common = old_files.keys() & new_files.keys()
    changed = sorted(p for p in common if old_files[p] != new_files[p])
    schema_changes = (
        tuple(diff_schemas(old.schema, new.schema))
        if old.schema is not None and new.schema is not None
        else ()
    )
    rows_added = rows_removed = None
    if old.schema is not None and new.schema is not None:
        if added or removed or changed:
            rows_added, rows_removed = _row_changes(
                engine, old, new, old_paths=removed + changed, new_paths=added + changed
            )
        else:
            rows_added = rows_removed = 0
    return VersionDiff(
        old=old.ref,
        new=new.ref,
        added=tuple(added),
        removed=tuple(removed),
        changed=tuple(changed),
        unchanged=len(common) - len(changed),
        schema_changes=schema_changes,
        rows_added=rows_added,
        rows_removed=rows_removed,
    )


def _row_changes(
    engine: DatasetVersioningEngine,
    old: DatasetVersion,
    new: DatasetVersion,
    *,
    old_paths: Sequence[str],
    new_paths: Sequence[str],
) -> tuple[int, int]:
    assert old.schema is not None
    assert new.schema is not None
    old_table = _load(engine, old, old_paths)
    new_table = _load(engine, new, new_paths)
    shared = [name for name in new.schema.names if name in old.schema]
    if not shared:
        # Nothing to match rows on: every row is different.
        return _rows(new_table), _rows(old_table)
    old_hashes = row_hashes(_aligned(old_table, shared, new.schema))
    new_hashes = row_hashes(new_table.select(shared) if new_table is not None else None)
    return _multiset_difference(new_hashes, old_hashes), _multiset_difference(
        old_hashes, new_hashes
    )


def _load(
    engine: DatasetVersioningEngine, version: DatasetVersion, paths: Sequence[str]
) -> pa.Table | None:
    if not paths:
        return None
    tables = [engine.load_table(version.ref, path=path) for path in paths]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _aligned(table: pa.Table | None, columns: Sequence[str], target: Schema) -> pa.Table | None:
    """``table`` restricted to ``columns``, cast to the types ``target`` gives them.

    A widened column (int32 to int64, int to float64) then hashes the same on both sides.
    A column that cannot be cast keeps its type: its rows then count as changed.
    """
    if table is None:
        return None
    arrays = []
    for name in columns:
        column = table.column(name)
        wanted = target[name].to_arrow().type
        if column.type != wanted:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                column = column.cast(wanted)
        arrays.append(column)
    return pa.table(arrays, names=list(columns))


def row_hashes(table: pa.Table | None) -> Hashes:
    """One 64-bit hash per row of ``table``, over all its columns in order.

    Cells hash by value, not by how pyarrow or pandas store them: an int64 column with
    nulls hashes its values like one without, and a null hashes the same in every column.

    Args:
        table: The rows (None for no rows).

    Returns:
        The hashes, in row order.
    """
    if table is None or table.num_rows == 0:
        return np.zeros(0, dtype=np.uint64)
    combined = np.zeros(table.num_rows, dtype=np.uint64)
    for index, column in enumerate(table.columns):
        values = _column_hashes(column.combine_chunks())
        # Multiply-xor folding keeps column order significant: (a, b) != (b, a).
        combined = (combined * _MIX) ^ values ^ np.uint64(index + 1)
    return combined


def _column_hashes(array: Any) -> Hashes:
    # Typed Any: pyarrow-stubs lose the array type through cast and fill_null.
    kind = array.type
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        filled = pc.fill_null(array.cast(pa.int64(), safe=False), 0)
        values: Any = filled.to_numpy(zero_copy_only=False)
    elif pa.types.is_floating(kind):
        values = pc.fill_null(array.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    else:
        values = _as_text(array)
    import pandas as pd  # only diffs of tabular data need it; it is slow to import

    hashes: Hashes = pd.util.hash_array(values)
    hashes[nulls] = _NULL_HASH
    return hashes


def _as_text(array: Any) -> npt.NDArray[np.object_]:
    try:
        text: Any = pc.fill_null(array.cast(pa.large_string()), "")
        values: npt.NDArray[np.object_] = text.to_numpy(zero_copy_only=False)
        return values
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Nested and other types without a text cast: their Python form is canonical enough.
        return np.asarray([repr(value) for value in array.to_pylist()], dtype=object)


def _multiset_difference(left: Hashes, right: Hashes) -> int:
    """How many elements of ``left`` remain after removing ``right`` (as multisets)."""
    if left.size == 0 or right.size == 0:
        return int(left.size)
    left_values, left_counts = np.unique(left, return_counts=True)
    right_values, right_counts = np.unique(right, return_counts=True)
    _, left_at, right_at = np.intersect1d(
        left_values, right_values, assume_unique=True, return_indices=True
    )
    shared = np.minimum(left_counts[left_at], right_counts[right_at]).sum()
    return int(left.size - shared)
