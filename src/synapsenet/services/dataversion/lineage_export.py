"""Lineage in other people's formats: OpenLineage run events, Graphviz DOT and Mermaid.

OpenLineage lets Marquez, DataHub or any other lineage backend show what SynapseNet
recorded; DOT and Mermaid draw a graph in a terminal pipeline or a Markdown page. Every
export is deterministic: the same lineage gives the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from blake3 import blake3

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion._lineage_json import format_utc, thaw_json
from synapsenet.services.dataversion.graph import LineageDAG
from synapsenet.services.dataversion.lineage_model import (
    NodeKind,
    NodeRef,
    Transformation,
    TransformationStatus,
)

__all__ = [
    "OPENLINEAGE_RUN_EVENT_SCHEMA_URL",
    "SchemaFields",
    "openlineage_run_id",
    "to_dot",
    "to_mermaid",
    "to_openlineage",
]

OPENLINEAGE_RUN_EVENT_SCHEMA_URL = (
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
)
_VERSION_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet"
)
_SCHEMA_FACET_URL = (
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
)
_NOMINAL_TIME_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
)
_JOB_TYPE_FACET_URL = (
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
)
# Custom facets need a schema URI too. These are identifiers that consumers treat as
# opaque (Marquez and DataHub do not dereference them); URNs say so honestly instead of
# pointing at a URL that does not resolve.
_TRANSFORMATION_FACET_URN = "urn:synapsenet:openlineage:facet:TransformationRunFacet:1-0-0"
_CODE_FACET_URN = "urn:synapsenet:openlineage:facet:CodeJobFacet:1-0-0"

# A fixed namespace makes the run id a pure function of the transformation id, so exporting
# the same transformation twice (or from two replicas) yields one OpenLineage run.
_RUN_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:synapsenet:lineage:transformation")

_EVENT_TYPES = {
    TransformationStatus.RUNNING: "START",
    TransformationStatus.COMPLETED: "COMPLETE",
    TransformationStatus.FAILED: "FAIL",
}

SchemaFields = Sequence[tuple[str, str]]
"""A dataset schema for the OpenLineage schema facet: (column name, type) pairs."""


def openlineage_run_id(transformation_id: str) -> str:
    """The OpenLineage ``runId`` of a transformation: a UUID derived from its id (v5)."""
    return str(uuid.uuid5(_RUN_ID_NAMESPACE, transformation_id))


def to_openlineage(
    transformation: Transformation,
    *,
    namespace: str,
    producer: str,
    schemas: Mapping[NodeRef, SchemaFields] | None = None,
) -> dict[str, Any]:
    """Describe a transformation as an OpenLineage 2-0-2 ``RunEvent``.

    The event type follows the status (COMPLETE, FAIL, or START while running). The job is
    the transformation's name; datasets are named by dataset (or ``model:<name>``) and
    carry the version in the standard ``version`` facet. Parameters, type and timing go
    in the ``synapsenet_transformation`` run facet, the code identity in the
    ``synapsenet_code`` job facet.

    Args:
        transformation: The recorded transformation.
        namespace: OpenLineage namespace of the job and the datasets, e.g. ``synapsenet``.
        producer: Absolute URI of the producing software, e.g. a repository URL with a tag.
        schemas: Optional schemas by node; those of the transformation's inputs and outputs
            become ``schema`` facets, the others are ignored.

    Returns:
        A JSON-serialisable dict.

    Raises:
        InvalidError: When ``namespace`` is empty or ``producer`` is not an absolute URI.
    """
    if not isinstance(namespace, str) or not namespace.strip():
        raise InvalidError("the OpenLineage namespace must not be empty", field="namespace")
    parsed = urlparse(producer) if isinstance(producer, str) else None
    if parsed is None or not parsed.scheme or not (parsed.netloc or parsed.path):
        raise InvalidError(
            f"the OpenLineage producer must be an absolute URI. Got {producer!r} instead.",
            field="producer",
        )
    schemas = schemas or {}

    def facet(schema_url: str, **fields: Any) -> dict[str, Any]:
        return {"_producer": producer, "_schemaURL": schema_url, **fields}

    def dataset(node: NodeRef) -> dict[str, Any]:
        name = node.name if node.kind is NodeKind.DATASET_VERSION else f"model:{node.name}"
        facets = {"version": facet(_VERSION_FACET_URL, datasetVersion=node.version)}
        fields = schemas.get(node)
        if fields is not None:
            facets["schema"] = facet(
                _SCHEMA_FACET_URL,
                fields=[{"name": column, "type": kind} for column, kind in fields],
            )
        return {"namespace": namespace, "name": name, "facets": facets}

    started = format_utc(transformation.started_at)
    finished = (
        None if transformation.finished_at is None else format_utc(transformation.finished_at)
    )
    nominal = facet(_NOMINAL_TIME_FACET_URL, nominalStartTime=started)
    if finished is not None:
        nominal["nominalEndTime"] = finished
    job_facets: dict[str, Any] = {
        "jobType": facet(
            _JOB_TYPE_FACET_URL,
            processingType="BATCH",
            integration="SYNAPSENET",
            jobType="TRANSFORMATION",
        )
    }
    if transformation.code is not None:
        code = transformation.code
        job_facets["synapsenet_code"] = facet(
            _CODE_FACET_URN,
            qualifiedName=code.qualified_name,
            sourceHash=code.source_hash,
            hashBasis=code.basis.value,
            libraryVersions=dict(code.library_versions),
            note=code.note,
        )
    return {
        "eventType": _EVENT_TYPES[transformation.status],
        "eventTime": finished or started,
        "run": {
            "runId": openlineage_run_id(transformation.id),
            "facets": {
                "nominalTime": nominal,
                "synapsenet_transformation": facet(
                    _TRANSFORMATION_FACET_URN,
                    transformationId=transformation.id,
                    type=transformation.type.value,
                    version=transformation.version,
                    status=transformation.status.value,
                    startedAt=started,
                    finishedAt=finished,
                    parameters=thaw_json(transformation.parameters),
                ),
            },
        },
        "job": {"namespace": namespace, "name": transformation.name, "facets": job_facets},
        "inputs": [dataset(node) for node in transformation.inputs],
        "outputs": [dataset(node) for node in transformation.outputs],
        "producer": producer,
        "schemaURL": OPENLINEAGE_RUN_EVENT_SCHEMA_URL,
    }


_DOT_SHAPES = {
    NodeKind.DATASET_VERSION: "cylinder",
    NodeKind.RUN: "ellipse",
    NodeKind.MODEL_VERSION: "box3d",
}
_MERMAID_SHAPES = {
    NodeKind.DATASET_VERSION: ("[(", ")]"),
    NodeKind.RUN: ("([", "])"),
    NodeKind.MODEL_VERSION: ("[[", "]]"),
}


def to_dot(dag: LineageDAG, *, highlight: Iterable[NodeRef] | None = None) -> str:
    """Render the graph as Graphviz DOT, left to right.

    Dataset versions are cylinders, runs ellipses, model versions 3-D boxes, and each
    transformation a rounded box between its inputs and outputs; usage edges are dashed.
    Node ids are derived from hashes, so they are safe whatever the names contain and stay
    the same when the graph grows.

    Args:
        dag: The graph (use :meth:`LineageDAG.neighbourhood` to draw part of one).
        highlight: Nodes to emphasise, e.g. the dataset versions of an impact report.

    Returns:
        The DOT source.
    """
    marked = set(highlight or ())
    lines = [
        "digraph lineage {",
        "  graph [rankdir=LR];",
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    for node in dag.nodes():
        attributes = f'label="{_dot_escape(str(node))}", shape={_DOT_SHAPES[node.kind]}'
        if node in marked:
            attributes += ', style=filled, fillcolor="#fde0dd", color="#d62728", penwidth=2'
        lines.append(f"  {_node_id(node)} [{attributes}];")
    transformations = dag.transformations()
    for transformation in transformations:
        label = _dot_escape(f"{_transformation_label(transformation)}\n{transformation.type}")
        lines.append(
            f'  {_transformation_id(transformation)} [label="{label}", shape=box, style=rounded];'
        )
    for transformation in transformations:
        step = _transformation_id(transformation)
        lines.extend(f"  {_node_id(node)} -> {step};" for node in transformation.inputs)
        lines.extend(f"  {step} -> {_node_id(node)};" for node in transformation.outputs)
    lines.extend(
        f"  {_node_id(edge.source)} -> {_node_id(edge.target)} [style=dashed];"
        for edge in dag.usage_edges()
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(dag: LineageDAG, *, highlight: Iterable[NodeRef] | None = None) -> str:
    """Render the graph as a Mermaid ``flowchart LR``.

    Shapes follow :func:`to_dot` (cylinder, stadium, subroutine; hexagons for
    transformations); usage edges are dotted. Ids are hash-derived words, so no name can
    collide with Mermaid syntax or keywords such as ``end``; labels are quoted with
    Mermaid's entity codes for the characters that would break them.

    Args:
        dag: The graph.
        highlight: Nodes to emphasise with the ``highlight`` class.

    Returns:
        The Mermaid source.
    """
    marked = set(highlight or ())
    lines = ["flowchart LR"]
    for node in dag.nodes():
        opening, closing = _MERMAID_SHAPES[node.kind]
        lines.append(f'    {_node_id(node)}{opening}"{_mermaid_escape(str(node))}"{closing}')
    transformations = dag.transformations()
    for transformation in transformations:
        label = _mermaid_escape(f"{_transformation_label(transformation)} ({transformation.type})")
        lines.append(f'    {_transformation_id(transformation)}{{{{"{label}"}}}}')
    for transformation in transformations:
        step = _transformation_id(transformation)
        lines.extend(f"    {_node_id(node)} --> {step}" for node in transformation.inputs)
        lines.extend(f"    {step} --> {_node_id(node)}" for node in transformation.outputs)
    lines.extend(
        f"    {_node_id(edge.source)} -.-> {_node_id(edge.target)}" for edge in dag.usage_edges()
    )
    highlighted = [_node_id(node) for node in dag.nodes() if node in marked]
    if highlighted:
        lines.append("    classDef highlight fill:#fde0dd,stroke:#d62728,stroke-width:2px")
        lines.append(f"    class {','.join(highlighted)} highlight")
    return "\n".join(lines) + "\n"


def _node_id(node: NodeRef) -> str:
    # 64 bits of BLAKE3: a collision needs billions of nodes in one drawing.
    return "n_" + blake3(str(node).encode("utf-8")).hexdigest()[:16]


def _transformation_id(transformation: Transformation) -> str:
    return "t_" + blake3(transformation.id.encode("utf-8")).hexdigest()[:16]


def _transformation_label(transformation: Transformation) -> str:
    if transformation.version is None:
        return transformation.name
    return f"{transformation.name}@{transformation.version}"


def _dot_escape(text: str) -> str:
    """Escape text for a double-quoted DOT string; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def _mermaid_escape(text: str) -> str:
    """Escape text for a double-quoted Mermaid label using its ``#code;`` entities."""
    replacements = {
        "#": "#35;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "`": "#96;",
        "\r": " ",
        "\n": " ",
    }
    return "".join(replacements.get(character, character) for character in text)
