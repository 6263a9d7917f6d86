"""Request and response schemas of the data versioning API.

Request bodies forbid unknown fields, so a typo is a 422 instead of a silent default.
Response schemas ignore unknown fields, so an older client keeps parsing a newer server's
answers. Datetimes are ISO 8601 with a timezone. Lineage nodes travel in their string form:
``dataset:<name>@v<N>``, ``run:<id>``, ``model:<name>@<version>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints

from synapsenet.services.dataversion.chunks import FileEntry, SweepReport
from synapsenet.services.dataversion.graph import Edge, ImpactReport, NodeDistance
from synapsenet.services.dataversion.lineage_model import NodeRef, Transformation
from synapsenet.services.dataversion.models import (
    Dataset,
    DatasetVersion,
    VerifyReport,
    VersionDiff,
)
from synapsenet.services.dataversion.schema import CompatibilityMode, SchemaChange
from synapsenet.services.dataversion.tabular import DatasetFormat, DatasetStats

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A dataset name or tag: 1 to 200 characters (the engine checks the characters)."""
_FORBID = ConfigDict(extra="forbid")

Direction = Literal["up", "down"]
"""Lineage direction: ``up`` for ancestors, ``down`` for descendants."""


# ---------------------------------------------------------------------- datasets


class DatasetCreate(BaseModel):
    """A new, empty dataset."""

    model_config = _FORBID

    name: Name
    format: DatasetFormat
    compatibility: CompatibilityMode = CompatibilityMode.BACKWARD
    description: str = Field(default="", max_length=10_000)


class DatasetPublic(BaseModel):
    """A dataset and its newest version number (0 before the first commit)."""

    id: str
    name: str
    format: DatasetFormat
    compatibility: CompatibilityMode
    description: str
    created_at: datetime
    head: int

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetPublic:
        """Build from the domain object."""
        return cls(
            id=dataset.id,
            name=dataset.name,
            format=dataset.format,
            compatibility=dataset.compatibility,
            description=dataset.description,
            created_at=dataset.created_at,
            head=dataset.head,
        )


# ---------------------------------------------------------------------- versions


class ColumnPublic(BaseModel):
    """One column of a version's schema."""

    name: str
    type: str
    nullable: bool


class VersionPublic(BaseModel):
    """One immutable version; ``root`` is the Merkle root that identifies its content."""

    id: str
    dataset: str
    number: int
    ref: str = Field(description="``name@vN``")
    root: str
    parent: int | None
    message: str
    author: str
    committed_at: datetime
    files: int
    size: int
    rows: int | None
    columns: list[ColumnPublic] | None = Field(
        description="The schema of a tabular version; null for other formats."
    )
    tags: list[str]
    deprecated_at: datetime | None
    deprecation_reason: str | None

    @classmethod
    def of(cls, version: DatasetVersion) -> VersionPublic:
        """Build from the domain object."""
        columns = (
            [ColumnPublic(name=f.name, type=f.type, nullable=f.nullable) for f in version.schema]
            if version.schema is not None
            else None
        )
        return cls(
            id=version.id,
            dataset=version.dataset,
            number=version.number,
            ref=version.ref,
            root=version.root,
            parent=version.parent,
            message=version.message,
            author=version.author,
            committed_at=version.committed_at,
            files=version.files,
            size=version.size,
            rows=version.rows,
            columns=columns,
            tags=list(version.tags),
            deprecated_at=version.deprecated_at,
            deprecation_reason=version.deprecation_reason,
        )


class CommitPublic(VersionPublic):
    """The answer to an upload: the version, and whether the upload created it."""

    created: bool = Field(
        description="False when the content equals the head's, which is returned unchanged."
    )

    @classmethod
    def of_commit(cls, version: DatasetVersion, *, created: bool) -> CommitPublic:
        """Build from the committed (or unchanged) version."""
        return cls(**VersionPublic.of(version).model_dump(), created=created)


class FilePublic(BaseModel):
    """One file of a version, as its manifest lists it."""

    path: str
    size: int
    blake3: str = Field(description="Hex BLAKE3 of the whole file.")
    chunks: int

    @classmethod
    def of(cls, entry: FileEntry) -> FilePublic:
        """Build from a manifest entry."""
        return cls(
            path=entry.path, size=entry.size, blake3=entry.content_hash, chunks=len(entry.chunks)
        )


class ColumnStatsPublic(BaseModel):
    """Statistics of one column."""

    name: str
    type: str
    null_count: int
    min: bool | int | float | str | None
    max: bool | int | float | str | None


class StatsPublic(BaseModel):
    """Statistics of a version; ``rows``, ``bytes`` and ``columns`` only when tabular."""

    ref: str
    tabular: bool
    rows: int | None = None
    bytes: int | None = None
    columns: list[ColumnStatsPublic] = Field(default_factory=list)

    @classmethod
    def of(cls, ref: str, stats: DatasetStats | None) -> StatsPublic:
        """Build from the version's statistics (None when it is not tabular)."""
        if stats is None:
            return cls(ref=ref, tabular=False)
        return cls(
            ref=ref,
            tabular=True,
            rows=stats.rows,
            bytes=stats.bytes,
            columns=[
                ColumnStatsPublic(
                    name=name,
                    type=column.type,
                    null_count=column.null_count,
                    min=column.min,
                    max=column.max,
                )
                for name, column in stats.columns.items()
            ],
        )


class SchemaChangePublic(BaseModel):
    """One column-level schema change and whether old and new readers survive it."""

    column: str
    kind: str
    old_type: str | None
    new_type: str | None
    old_nullable: bool | None
    new_nullable: bool | None
    backward_compatible: bool
    forward_compatible: bool
    message: str

    @classmethod
    def of(cls, change: SchemaChange) -> SchemaChangePublic:
        """Build from the domain object."""
        data = change.to_dict()
        data.pop("previous_index", None)
        return cls.model_validate(data)


class DiffPublic(BaseModel):
    """What changed between two versions."""

    old: str
    new: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int
    schema_changes: list[SchemaChangePublic]
    rows_added: int | None
    rows_removed: int | None

    @classmethod
    def of(cls, diff: VersionDiff) -> DiffPublic:
        """Build from the domain object."""
        return cls(
            old=diff.old,
            new=diff.new,
            added=list(diff.added),
            removed=list(diff.removed),
            changed=list(diff.changed),
            unchanged=diff.unchanged,
            schema_changes=[SchemaChangePublic.of(c) for c in diff.schema_changes],
            rows_added=diff.rows_added,
            rows_removed=diff.rows_removed,
        )


class TagRequest(BaseModel):
    """Point a tag (alias) at a version."""

    model_config = _FORBID

    tag: Name


class VerifyPublic(BaseModel):
    """The outcome of checking every byte of a version against its hashes."""

    ref: str
    ok: bool
    files: int
    chunks: int
    problems: list[str]

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyPublic:
        """Build from the domain object."""
        return cls(
            ref=report.ref,
            ok=report.ok,
            files=report.files,
            chunks=report.chunks,
            problems=list(report.problems),
        )


class DeprecateRequest(BaseModel):
    """Why a version must no longer be used."""

    model_config = _FORBID

    reason: str = Field(min_length=1, max_length=2_000)


# ---------------------------------------------------------------------- lineage


TRANSFORMATION_EXAMPLE: dict[str, Any] = {
    "id": "clean-2026-11-26-01",
    "type": "clean",
    "name": "drop_incomplete_rows",
    "version": "1",
    "inputs": ["dataset:transactions@v1"],
    "outputs": ["dataset:transactions-clean@v1"],
    "parameters": {"columns": ["amount"]},
    "started_at": "2026-11-26T07:00:00Z",
    "finished_at": "2026-11-26T07:00:02Z",
    "status": "completed",
}
"""A transformation document as ``POST /v1/datasets/lineage/transformations`` takes it."""


class TransformationSummary(BaseModel):
    """A recorded transformation, in brief."""

    id: str
    name: str
    type: str
    version: str | None
    inputs: list[str]
    outputs: list[str]

    @classmethod
    def of(cls, transformation: Transformation) -> TransformationSummary:
        """Build from the domain object."""
        return cls(
            id=transformation.id,
            name=transformation.name,
            type=transformation.type.value,
            version=transformation.version,
            inputs=[str(n) for n in transformation.inputs],
            outputs=[str(n) for n in transformation.outputs],
        )


class ImpactPublic(BaseModel):
    """Everything downstream of a node: what a bad version contaminated."""

    source: str
    dataset_versions: list[str]
    runs: list[str]
    model_versions: list[str]
    transformations: list[TransformationSummary]

    @classmethod
    def of(cls, report: ImpactReport) -> ImpactPublic:
        """Build from the domain object."""
        return cls(
            source=str(report.source),
            dataset_versions=[str(n) for n in report.dataset_versions],
            runs=[str(n) for n in report.runs],
            model_versions=[str(n) for n in report.model_versions],
            transformations=[TransformationSummary.of(t) for t in report.transformations],
        )

    def to_event_data(self) -> dict[str, Any]:
        """The impact as the ``version.deprecated`` event publishes it."""
        return self.model_dump(mode="json")


class DeprecationPublic(BaseModel):
    """A deprecated version and the downstream impact announced with it."""

    version: VersionPublic
    impact: ImpactPublic


class NodeDistancePublic(BaseModel):
    """A node reached by a lineage traversal, and how many edges away it is."""

    node: str
    kind: str
    distance: int

    @classmethod
    def of(cls, item: NodeDistance) -> NodeDistancePublic:
        """Build from the domain object."""
        return cls(node=str(item.node), kind=item.node.kind.value, distance=item.distance)


class EdgePublic(BaseModel):
    """One lineage edge; ``transformation_id`` is null for a usage link."""

    source: str
    target: str
    transformation_id: str | None

    @classmethod
    def of(cls, edge: Edge) -> EdgePublic:
        """Build from the domain object."""
        return cls(
            source=str(edge.source),
            target=str(edge.target),
            transformation_id=edge.transformation_id,
        )


class LineagePublic(BaseModel):
    """The ancestors or descendants of a version, and the edges between them."""

    node: str
    direction: Direction
    depth: int | None
    nodes: list[NodeDistancePublic]
    edges: list[EdgePublic]


class LinkCreate(BaseModel):
    """A usage edge: a run read a dataset version, or a run produced a model version."""

    model_config = _FORBID

    source: str = Field(min_length=1, max_length=500, examples=["dataset:orders@v3", "run:8f2c"])
    target: str = Field(min_length=1, max_length=500, examples=["run:8f2c", "model:fraud@4"])

    def nodes(self) -> tuple[NodeRef, NodeRef]:
        """Both ends, parsed.

        Raises:
            InvalidError: An end is not a node reference (naming ``source`` or ``target``).
        """
        return (
            NodeRef.parse(self.source, field="source"),
            NodeRef.parse(self.target, field="target"),
        )


class LinkPublic(BaseModel):
    """A recorded usage edge."""

    source: str
    target: str


# ---------------------------------------------------------------------- maintenance


class GcRequest(BaseModel):
    """Garbage collection of chunks no version references."""

    model_config = _FORBID

    grace_seconds: FiniteFloat = Field(
        default=3600.0,
        ge=0,
        le=366 * 86_400,
        description=(
            "A run deletes the unreferenced chunks an earlier run condemned at least this "
            "long ago and condemns the others (commits in flight rely on it)."
        ),
    )
    dry_run: bool = False


class GcPublic(BaseModel):
    """What a garbage collection deleted (or, in a dry run, would have)."""

    dry_run: bool
    deleted: int
    kept_referenced: int
    kept_recent: int
    bytes_freed: int
    stats_deleted: int = 0
    cuts_deleted: int = 0

    @classmethod
    def of(cls, report: SweepReport, *, dry_run: bool) -> GcPublic:
        """Build from the domain object."""
        return cls(
            dry_run=dry_run,
            deleted=report.deleted,
            kept_referenced=report.kept_referenced,
            kept_recent=report.kept_recent,
            bytes_freed=report.bytes_freed,
            stats_deleted=report.stats_deleted,
            cuts_deleted=report.cuts_deleted,
        )
