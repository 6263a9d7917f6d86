"""The data versioning domain: datasets, versions, diffs and integrity reports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.schema import CompatibilityMode, Schema, SchemaChange
from synapsenet.services.dataversion.tabular import DatasetFormat

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")


def validate_dataset_name(name: str) -> str:
    """Check a dataset name: letters, digits, ``.``, ``_``, ``-``; at most 200 characters.

    Raises:
        InvalidError: Naming the name and the rule it breaks.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidError(
            f"dataset name {name!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-' (at most 200 characters)",
            field="name",
        )
    return name


def validate_tag(tag: str) -> str:
    """Check a tag (alias) such as ``production``.

    A tag starts with a letter and never looks like ``v3``, so it cannot be mistaken for a
    version number.

    Raises:
        InvalidError: Naming the tag and the rule it breaks.
    """
    if not isinstance(tag, str) or not _TAG.match(tag) or re.fullmatch(r"v\d+", tag):
        raise InvalidError(
            f"tag {tag!r} must start with a letter, contain only letters, digits, '.', '_' "
            "and '-', and not look like a version number (v1, v2...)",
            field="tag",
        )
    return tag


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named, versioned dataset.

    Attributes:
        id: Stable identifier.
        name: Unique name.
        format: The format of its files (tabular formats get schemas and statistics).
        compatibility: Schema compatibility enforced on every commit.
        description: Free text.
        created_at: When it was created.
        head: Number of the newest version, or 0 before the first commit.
    """

    id: str
    name: str
    format: DatasetFormat
    compatibility: CompatibilityMode
    description: str
    created_at: datetime
    head: int


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a dataset.

    Attributes:
        id: Stable identifier.
        dataset: The dataset's name.
        number: Monotonic version number (``name@v3``).
        root: Merkle root of the manifest: the content address of the whole version.
        parent: Number of the version it was committed on top of, if any.
        message: Commit message.
        author: Who committed it.
        committed_at: When (aware UTC).
        files: Number of files.
        size: Total bytes of the files.
        rows: Rows, for tabular versions.
        schema: Schema, for tabular versions.
        tags: Tags (aliases) pointing at it.
        deprecated_at: When it was deprecated, if it was.
        deprecation_reason: Why.
    """

    id: str
    dataset: str
    number: int
    root: str
    parent: int | None
    message: str
    author: str
    committed_at: datetime
    files: int
    size: int
    rows: int | None
    schema: Schema | None
    tags: tuple[str, ...] = ()
    deprecated_at: datetime | None = None
    deprecation_reason: str | None = None

    @property
    def ref(self) -> str:
        """The version's reference, ``name@vN``."""
        return f"{self.dataset}@v{self.number}"


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """What changed between two versions.

    Attributes:
        old: Reference of the older side.
        new: Reference of the newer side.
        added: Paths only in ``new``.
        removed: Paths only in ``old``.
        changed: Paths in both with different content.
        unchanged: How many paths are identical.
        schema_changes: Column-level schema changes (tabular versions).
        rows_added: Rows in ``new`` not in ``old`` (as a multiset), for tabular versions.
        rows_removed: Rows in ``old`` not in ``new``, for tabular versions.
    """

    old: str
    new: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: int
    schema_changes: tuple[SchemaChange, ...] = ()
    rows_added: int | None = None
    rows_removed: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of checking a version's integrity end to end.

    Attributes:
        ref: The version checked.
        files: Files checked.
        chunks: Chunks read and hashed.
        problems: Everything found wrong (empty when the version is intact).
    """

    ref: str
    files: int
    chunks: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether every byte matched its hash."""
        return not self.problems
