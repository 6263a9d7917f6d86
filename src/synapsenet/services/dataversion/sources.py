"""What a commit can be made from: files, directories and in-memory tables or arrays.

Every source becomes a list of (path in the version, local file) pairs; in-memory objects are
written to a temporary directory first, in the dataset's format, so every commit streams its
bytes from disk the same way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunks import validate_path
from synapsenet.services.dataversion.tabular import DatasetFormat, to_table

CommitSource = Any
"""A path (file or directory), a pandas or polars DataFrame, a pyarrow Table or a numpy
array."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file of a commit: where it goes in the version, and where its bytes are now."""

    path: str
    local: Path


def _is_in_memory(source: CommitSource) -> bool:
    return not isinstance(source, str | os.PathLike)


def _write_table(table: pa.Table, fmt: DatasetFormat, target: Path) -> None:
    if fmt is DatasetFormat.PARQUET:
        import pyarrow.parquet  # only here: ~14 MB resident that other formats never need

        pyarrow.parquet.write_table(table, target)
    elif fmt is DatasetFormat.CSV:
        pacsv.write_csv(table, target)
    elif fmt is DatasetFormat.ARROW:
        feather.write_feather(table, target, compression="uncompressed")
    elif fmt is DatasetFormat.JSONL:
        table.to_pandas().to_json(target, orient="records", lines=True)
    elif fmt is DatasetFormat.JSON:
        table.to_pandas().to_json(target, orient="records")
    else:
        raise InvalidError(
            f"a table cannot be committed to a {fmt.value} dataset; commit files instead",
            field="source",
        )


def _walk(root: Path) -> Iterator[SourceFile]:
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            local = Path(directory) / name
            if local.is_symlink():
                raise InvalidError(
                    f"{local} is a symbolic link; commit the file it points to instead",
                    field="source",
                )
            relative = local.relative_to(root).as_posix()
            yield SourceFile(validate_path(relative), local)


@contextmanager
def materialize(
    source: CommitSource, fmt: DatasetFormat, *, name: str | None
) -> Iterator[list[SourceFile]]:
    """Turn a commit source into files on disk, cleaning up any temporary ones afterwards.

    Args:
        source: What to commit.
        fmt: The dataset's format (in-memory tables are written in it).
        name: Path in the version for a single file or an in-memory object; defaults to the
            file's own name, or ``data`` plus the format's extension.

    Yields:
        The files, sorted by path.

    Raises:
        InvalidError: For a missing path, an empty directory, a symlink, an unsafe path or
            an object that cannot be written in the dataset's format.
    """
    if not _is_in_memory(source):
        local = Path(source)
        if local.is_dir():
            files = list(_walk(local))
            if not files:
                raise InvalidError(f"directory {local} has no files to commit", field="source")
            yield files
            return
        if not local.is_file():
            raise InvalidError(f"no file or directory at {local}", field="source")
        yield [SourceFile(validate_path(name or local.name), local)]
        return
    with tempfile.TemporaryDirectory(prefix="synapsenet-commit-") as tmp:
        if isinstance(source, np.ndarray) and fmt is DatasetFormat.NUMPY:
            target = Path(tmp) / "data.npy"
            np.save(target, source, allow_pickle=False)
        else:
            target = Path(tmp) / f"data{fmt.extension}"
            _write_table(to_table(source), fmt, target)
        yield [SourceFile(validate_path(name or target.name), target)]
