"""``/v1/datasets``: the data versioning REST API.

Thin routes over :class:`~synapsenet.services.dataversion.engine.DatasetVersioningEngine`,
the lineage graph and the reconstructor. Errors are not caught here: ``NotFoundError`` (404),
``ConflictError`` (409, e.g. a concurrent commit) and ``InvalidError`` (422, naming the
field; a schema-incompatible commit lists every change) become problem+json responses in
the gateway. Reads need a viewer key, everything else an operator key (enforced by the
gateway for the whole ``/v1`` tree, before an upload's body is read).

Versions are named in paths by ``{ref}``: ``v3`` or ``3``, a tag, ``head``, or a Merkle root.
Uploads stream: the body (one file, or a tar archive of many) goes to disk in bounded
blocks while it is hashed, and is committed only once it arrived whole and matches the
digest the client declared (see :mod:`~synapsenet.services.dataversion.uploads`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi import status as http_status
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from synapsenet.core.auth import ApiKey
from synapsenet.errors import InvalidError, NotFoundError, UnauthorizedError
from synapsenet.services.dataversion.chunks import validate_path
from synapsenet.services.dataversion.diff import diff_versions
from synapsenet.services.dataversion.engine import HEAD
from synapsenet.services.dataversion.lineage_model import NodeKind, NodeRef, Transformation
from synapsenet.services.dataversion.models import DatasetVersion, validate_tag
from synapsenet.services.dataversion.schemas import (
    TRANSFORMATION_EXAMPLE,
    CommitPublic,
    DatasetCreate,
    DatasetPublic,
    DeprecateRequest,
    DeprecationPublic,
    DiffPublic,
    Direction,
    EdgePublic,
    FilePublic,
    GcPublic,
    GcRequest,
    ImpactPublic,
    LineagePublic,
    LinkCreate,
    LinkPublic,
    NodeDistancePublic,
    StatsPublic,
    TagRequest,
    TransformationSummary,
    VerifyPublic,
    VersionPublic,
)
from synapsenet.services.dataversion.uploads import ExpectedDigests, extract_tar, spool

if TYPE_CHECKING:
    # service.py imports this module for its router; the type is only needed by mypy.
    from synapsenet.services.dataversion.service import DataVersionService

router = APIRouter(prefix="/datasets", tags=["datasets"])

TAR_MEDIA_TYPES = frozenset({"application/x-tar", "application/tar"})
"""Content types of a multi-file upload."""
_VERSION = "/{name}/versions/{ref}"


def get_dataversion(request: Request) -> DataVersionService:
    """The data versioning service the gateway hosts."""
    service: DataVersionService = request.app.state.services["dataversion"]
    return service


DataVersionDep = Annotated["DataVersionService", Depends(get_dataversion)]


def caller_key(request: Request) -> ApiKey:
    """The API key the gateway authenticated for this request.

    Raises:
        UnauthorizedError: The router is mounted without the gateway's authentication.
    """
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is None:
        raise UnauthorizedError("this endpoint needs an authenticated API key")
    return key


CallerKey = Annotated[ApiKey, Depends(caller_key)]


def _ref(name: str, ref: str) -> str:
    if "@" in name:
        raise NotFoundError(f"no dataset named {name!r}")
    return f"{name}@{ref}"


def _node(version: DatasetVersion) -> NodeRef:
    return NodeRef.dataset_version(version.dataset, version.number)


def _parent(value: str) -> int | str:
    if value == HEAD:
        return HEAD
    digits = value[1:] if value[:1] in ("v", "V") else value
    if not digits.isdigit():
        raise InvalidError(
            f"parent must be 'head' or a version number (3 or v3). Got {value!r} instead.",
            field="parent",
        )
    return int(digits)


def _body(first: bytes, blocks: Generator[bytes, None, None]) -> Iterator[bytes]:
    """A download's body; when the client goes away, the chunk read-ahead stops with it."""
    with closing(blocks):
        yield first
        yield from blocks


# ---------------------------------------------------------------------- platform-wide


@router.get("/lineage/openlineage")
def openlineage_events(
    service: DataVersionDep,
    node: Annotated[
        str | None,
        Query(description="Only the transformations upstream of this node (dataset:x@v3)."),
    ] = None,
) -> list[dict[str, Any]]:
    """Every transformation as an OpenLineage RunEvent (COMPLETE), producers first."""
    target = NodeRef.parse(node, field="node") if node is not None else None
    return service.lineage.openlineage_events(target)


@router.post("/lineage/links", status_code=http_status.HTTP_201_CREATED)
def link_nodes(body: LinkCreate, service: DataVersionDep) -> LinkPublic:
    """Record that a run read a dataset version, or that a run produced a model version.

    Dataset versions must exist (404 otherwise), so the graph never points at nothing.
    """
    source, target = body.nodes()
    for node in (source, target):
        if node.kind is NodeKind.DATASET_VERSION:
            service.engine.resolve(f"{node.name}@v{node.version_number}")
    service.lineage.link(source, target)
    return LinkPublic(source=str(source), target=str(target))


@router.post("/lineage/transformations", status_code=http_status.HTTP_201_CREATED)
def record_transformation(
    body: Annotated[dict[str, Any], Body(examples=[TRANSFORMATION_EXAMPLE])],
    service: DataVersionDep,
) -> TransformationSummary:
    """Record a transformation that ran outside the platform (an external pipeline step).

    The body is a transformation document (what ``Transformation.to_dict`` writes):
    ``id``, ``type``, ``name``, ``inputs``, ``outputs``, ``parameters``, ``started_at``,
    ``finished_at``, ``status`` and optionally ``version`` and ``code``. Every dataset
    version it names must exist (404). Recording the same id again is a no-op; a different
    transformation under a known id is a conflict (409), and a cycle is refused (422).
    """
    transformation = Transformation.from_dict(body)
    for node in (*transformation.inputs, *transformation.outputs):
        if node.kind is NodeKind.DATASET_VERSION:
            service.engine.resolve(f"{node.name}@v{node.version_number}")
    return TransformationSummary.of(service.lineage.record(transformation))


@router.post("/gc")
def collect_garbage(service: DataVersionDep, body: GcRequest | None = None) -> GcPublic:
    """Delete chunks no version references, condemned by a run at least the grace period ago.

    Unreferenced chunks not yet condemned that long are condemned (kept): a later run
    deletes those still unreferenced.
    """
    options = body or GcRequest()
    grace = timedelta(seconds=options.grace_seconds)
    report = service.engine.gc(grace=grace, dry_run=options.dry_run)
    return GcPublic.of(report, dry_run=options.dry_run)


# ---------------------------------------------------------------------- datasets


@router.post("", status_code=http_status.HTTP_201_CREATED)
def create_dataset(body: DatasetCreate, service: DataVersionDep) -> DatasetPublic:
    """Create an empty dataset; commit versions to it next."""
    dataset = service.engine.create_dataset(
        body.name,
        format=body.format,
        compatibility=body.compatibility,
        description=body.description,
    )
    return DatasetPublic.of(dataset)


@router.get("")
def list_datasets(service: DataVersionDep) -> list[DatasetPublic]:
    """Every dataset, by name."""
    return [DatasetPublic.of(d) for d in service.engine.list_datasets()]


@router.get("/{name}")
def get_dataset(name: str, service: DataVersionDep) -> DatasetPublic:
    """One dataset."""
    return DatasetPublic.of(service.engine.get_dataset(name))


@router.get("/{name}/as-of")
def version_as_of(
    name: str,
    timestamp: Annotated[
        AwareDatetime, Query(description="ISO 8601 with a timezone, e.g. 2024-05-01T12:00Z.")
    ],
    service: DataVersionDep,
) -> VersionPublic:
    """The version that was current at ``timestamp`` (404 if none existed yet)."""
    return VersionPublic.of(service.reconstructor.as_of(name, timestamp))


@router.get("/{name}/diff")
def diff(
    name: str,
    service: DataVersionDep,
    old: Annotated[str, Query(alias="from", description="The older version.")],
    new: Annotated[str, Query(alias="to", description="The newer version.")] = HEAD,
) -> DiffPublic:
    """Files added, removed and changed; schema changes; rows added and removed."""
    return DiffPublic.of(diff_versions(service.engine, _ref(name, old), _ref(name, new)))


@router.delete("/{name}/tags/{tag}", status_code=http_status.HTTP_204_NO_CONTENT)
def delete_tag(name: str, tag: str, service: DataVersionDep) -> Response:
    """Remove a tag (the version it pointed at is unchanged)."""
    service.engine.untag(name, tag)
    return Response(status_code=http_status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------- versions


@router.post("/{name}/versions", status_code=http_status.HTTP_201_CREATED)
async def upload_version(
    name: str,
    request: Request,
    response: Response,
    service: DataVersionDep,
    key: CallerKey,
    path: Annotated[
        str | None,
        Query(description="The file's path in the version (single-file uploads)."),
    ] = None,
    message: Annotated[str, Query(max_length=10_000)] = "",
    author: Annotated[str | None, Query(max_length=200)] = None,
    parent: Annotated[
        str, Query(description="'head' (default) or the version number this builds on.")
    ] = HEAD,
    tag: Annotated[list[str] | None, Query(description="Tags for the new version.")] = None,
    x_content_blake3: Annotated[str | None, Header()] = None,
    x_content_sha256: Annotated[str | None, Header()] = None,
) -> CommitPublic:
    """Upload a file (or a tar archive of files) as the body and commit it as a version.

    The body is the raw file (``application/octet-stream``), or a tar archive
    (``application/x-tar``) whose members become the version's files. Send
    ``X-Content-BLAKE3`` (or ``X-Content-SHA256``) to have a corrupt or truncated upload
    refused (422 naming both digests) instead of committed. Answers 201 with the new
    version, or 200 with the head when the content is identical to it.
    """
    engine = service.engine
    dataset = await run_in_threadpool(engine.get_dataset, name)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_tar = media_type in TAR_MEDIA_TYPES
    if media_type.startswith("multipart/"):
        raise InvalidError(
            "send the file itself as the body (application/octet-stream), not a multipart form",
            field="content-type",
        )
    if is_tar and path is not None:
        raise InvalidError(
            "path names the file of a single-file upload; a tar archive names its own files",
            field="path",
        )
    if not is_tar:
        if path is None:
            raise InvalidError("path is required: the file's name in the version", field="path")
        validate_path(path)
    expected_parent = _parent(parent)
    tags = [validate_tag(t) for t in tag or ()]
    expected = ExpectedDigests.from_headers(
        blake3=x_content_blake3,
        sha256=x_content_sha256,
        length=request.headers.get("content-length"),
    )
    spool_dir = service.platform.settings.data_dir / "uploads"
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=spool_dir) as tmp:
        if is_tar:
            archive = await spool(request.stream(), Path(tmp) / "archive.tar", expected)
            source = Path(tmp) / "files"
            source.mkdir()
            await run_in_threadpool(extract_tar, archive.path, source)
        else:
            assert path is not None
            # The spooled file keeps the upload's name: readers pick decompression by suffix.
            source = Path(tmp) / path.rsplit("/", 1)[-1]
            await spool(request.stream(), source, expected)
        started = engine.clock()

        def commit() -> DatasetVersion:
            return engine.commit(
                dataset.name,
                source,
                message=message,
                author=author if author is not None else (key.name or key.id),
                parent=expected_parent,
                tags=tags,
                name=None if is_tar else path,
            )

        version = await run_in_threadpool(commit)
    created = version.committed_at >= started
    if not created:
        response.status_code = http_status.HTTP_200_OK
    return CommitPublic.of_commit(version, created=created)


@router.get("/{name}/versions")
def log(
    name: str,
    service: DataVersionDep,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> list[VersionPublic]:
    """The dataset's versions, newest first."""
    return [VersionPublic.of(v) for v in service.engine.log(name, limit=limit)]


@router.get(_VERSION)
def get_version(name: str, ref: str, service: DataVersionDep) -> VersionPublic:
    """One version: ``v3`` or ``3``, a tag, ``head`` or a Merkle root."""
    return VersionPublic.of(service.engine.resolve(_ref(name, ref)))


@router.get(f"{_VERSION}/files")
def list_files(name: str, ref: str, service: DataVersionDep) -> list[FilePublic]:
    """The version's files (path, size, BLAKE3), as its verified manifest lists them."""
    return [FilePublic.of(e) for e in service.engine.manifest(_ref(name, ref)).files]


@router.get(f"{_VERSION}/files/{{path:path}}")
def download_file(name: str, ref: str, path: str, service: DataVersionDep) -> StreamingResponse:
    """Stream one file's exact bytes, every chunk verified against its hash on the way.

    ``Content-Length`` and ``X-Content-BLAKE3`` announce the file, so a client can tell a
    cut-off or damaged transfer. Damage found at rest before the first byte is sent is a
    500 problem; found later, the connection is closed early.
    """
    version_ref = _ref(name, ref)
    entry = service.engine.manifest(version_ref).find(path)
    if entry is None:
        raise NotFoundError(f"{version_ref} has no file {path!r}")
    blocks = service.engine.chunks.read_stream(entry)
    # Read the first block here, so a missing or corrupt first chunk is a problem response.
    first = next(blocks, b"")
    filename = quote(path.rsplit("/", 1)[-1], safe="")
    return StreamingResponse(
        _body(first, blocks),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(entry.size),
            "X-Content-BLAKE3": entry.content_hash,
            "ETag": f'"{entry.content_hash}"',
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
        },
    )


@router.get(f"{_VERSION}/stats")
def version_stats(name: str, ref: str, service: DataVersionDep) -> StatsPublic:
    """Rows, bytes and per-column nulls and min/max of a tabular version."""
    version = service.engine.resolve(_ref(name, ref))
    return StatsPublic.of(version.ref, service.engine.stats(version.ref))


@router.post(f"{_VERSION}/tags")
def tag_version(name: str, ref: str, body: TagRequest, service: DataVersionDep) -> VersionPublic:
    """Point a tag at the version (moving it if it pointed elsewhere)."""
    return VersionPublic.of(service.engine.tag(_ref(name, ref), body.tag))


@router.post(f"{_VERSION}/verify")
def verify_version(name: str, ref: str, service: DataVersionDep) -> VerifyPublic:
    """Read every chunk of the version back and check every hash (fsck)."""
    return VerifyPublic.of(service.engine.verify(_ref(name, ref)))


@router.post(f"{_VERSION}/deprecate")
def deprecate_version(
    name: str, ref: str, body: DeprecateRequest, service: DataVersionDep
) -> DeprecationPublic:
    """Mark the version deprecated and announce what it affects downstream."""
    version = service.engine.resolve(_ref(name, ref))
    impact = ImpactPublic.of(service.lineage.impact(_node(version)))
    deprecated = service.engine.deprecate(
        version.ref, reason=body.reason, impact=impact.to_event_data()
    )
    return DeprecationPublic(version=VersionPublic.of(deprecated), impact=impact)


# ---------------------------------------------------------------------- lineage


@router.get(f"{_VERSION}/lineage")
def version_lineage(
    name: str,
    ref: str,
    service: DataVersionDep,
    direction: Direction = "up",
    depth: Annotated[int | None, Query(ge=1, le=1_000)] = None,
) -> LineagePublic:
    """The version's ancestors (``up``) or descendants (``down``), nearest first."""
    node = _node(service.engine.resolve(_ref(name, ref)))
    dag = service.lineage.dag(nodes=[node])
    reached = dag.ancestors(node, depth) if direction == "up" else dag.descendants(node, depth)
    keep = {node, *(item.node for item in reached)}
    edges = [e for e in dag.edges() if e.source in keep and e.target in keep]
    return LineagePublic(
        node=str(node),
        direction=direction,
        depth=depth,
        nodes=[NodeDistancePublic.of(item) for item in reached],
        edges=[EdgePublic.of(e) for e in edges],
    )


@router.get(f"{_VERSION}/impact")
def version_impact(name: str, ref: str, service: DataVersionDep) -> ImpactPublic:
    """Every dataset version, run and model version downstream of the version."""
    node = _node(service.engine.resolve(_ref(name, ref)))
    return ImpactPublic.of(service.lineage.impact(node))


@router.get(f"{_VERSION}/lineage.dot", response_class=PlainTextResponse)
def version_lineage_dot(
    name: str,
    ref: str,
    service: DataVersionDep,
    depth: Annotated[int | None, Query(ge=1, le=1_000)] = None,
) -> str:
    """Graphviz DOT of the version's lineage neighbourhood."""
    node = _node(service.engine.resolve(_ref(name, ref)))
    return service.lineage.to_dot(node, depth=depth)


@router.get(f"{_VERSION}/lineage.mmd", response_class=PlainTextResponse)
def version_lineage_mermaid(
    name: str,
    ref: str,
    service: DataVersionDep,
    depth: Annotated[int | None, Query(ge=1, le=1_000)] = None,
) -> str:
    """A Mermaid flowchart of the version's lineage neighbourhood."""
    node = _node(service.engine.resolve(_ref(name, ref)))
    return service.lineage.to_mermaid(node, depth=depth)
