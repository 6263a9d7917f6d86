"""Lineage exports: OpenLineage run events, Graphviz DOT and Mermaid."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.graph import LineageDAG
from synapsenet.services.dataversion.lineage_export import (
    OPENLINEAGE_RUN_EVENT_SCHEMA_URL,
    openlineage_run_id,
    to_dot,
    to_mermaid,
    to_openlineage,
)
from synapsenet.services.dataversion.lineage_model import (
    CodeIdentity,
    NodeRef,
    Transformation,
    TransformationStatus,
    TransformationType,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PRODUCER = "https://github.com/synapsenet/synapsenet/tree/v0.1.0"
CODE = CodeIdentity("pipelines.orders.join_orders", "cd" * 32, {"pandas": "2.2.2"})


def ds(name: str, number: int = 1) -> NodeRef:
    return NodeRef.dataset_version(name, number)


def join(
    status: TransformationStatus = TransformationStatus.COMPLETED, transformation_id: str = "tx-42"
) -> Transformation:
    return Transformation(
        id=transformation_id,
        type=TransformationType.JOIN,
        name="join_orders",
        version="3",
        inputs=(ds("orders", 7), NodeRef.model_version("labeller", "1.2")),
        outputs=(ds("labelled_orders", 2),),
        started_at=T0,
        finished_at=None if status is TransformationStatus.RUNNING else T0 + timedelta(minutes=2),
        parameters={"on": ["order_id"], "how": "left"},
        code=CODE,
        status=status,
    )


# --- OpenLineage ---------------------------------------------------------------------------------
# The required members below are those of the OpenLineage 2-0-2 core schema (RunEvent, Run,
# Job, Dataset, BaseFacet) and of the standard facets the export uses, written out here so
# the check needs no network.

EVENT_TYPES = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}
STANDARD_FACET_REQUIRED = {
    "version": {"datasetVersion"},
    "schema": set(),
    "nominalTime": {"nominalStartTime"},
    "jobType": {"processingType", "integration"},
}


def assert_uri(value: Any) -> None:
    assert isinstance(value, str)
    parsed = urlparse(value)
    assert parsed.scheme
    assert parsed.netloc or parsed.path


def assert_date_time(value: Any) -> None:
    assert isinstance(value, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    assert datetime.fromisoformat(value).tzinfo is not None


def assert_facets(facets: Any) -> None:
    assert isinstance(facets, dict)
    for name, facet in facets.items():
        assert isinstance(facet, dict), name
        assert_uri(facet["_producer"])
        assert_uri(facet["_schemaURL"])
        assert STANDARD_FACET_REQUIRED.get(name, set()) <= facet.keys(), name


def assert_dataset(dataset: Any) -> None:
    assert isinstance(dataset, dict)
    assert isinstance(dataset["namespace"], str)
    assert isinstance(dataset["name"], str)
    assert_facets(dataset.get("facets", {}))
    if "schema" in dataset.get("facets", {}):
        for field in dataset["facets"]["schema"]["fields"]:
            assert isinstance(field["name"], str)


def assert_valid_run_event(event: dict[str, Any]) -> None:
    """Check the required structure of an OpenLineage 2-0-2 RunEvent."""
    assert {"eventTime", "producer", "schemaURL", "run", "job"} <= event.keys()
    assert_date_time(event["eventTime"])
    assert_uri(event["producer"])
    assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json#")
    assert event.get("eventType", "OTHER") in EVENT_TYPES
    uuid.UUID(event["run"]["runId"])
    assert_facets(event["run"].get("facets", {}))
    assert isinstance(event["job"]["namespace"], str)
    assert isinstance(event["job"]["name"], str)
    assert_facets(event["job"].get("facets", {}))
    for key in ("inputs", "outputs"):
        assert isinstance(event.get(key, []), list)
        for dataset in event.get(key, []):
            assert_dataset(dataset)
    assert json.loads(json.dumps(event, allow_nan=False)) == event


def test_completed_transformation_becomes_a_complete_run_event() -> None:
    event = to_openlineage(join(), namespace="synapsenet", producer=PRODUCER)
    assert_valid_run_event(event)
    assert event["eventType"] == "COMPLETE"
    assert event["schemaURL"] == OPENLINEAGE_RUN_EVENT_SCHEMA_URL
    assert event["eventTime"] == "2024-03-01T12:02:00.000000+00:00"
    assert event["job"]["namespace"] == "synapsenet"
    assert event["job"]["name"] == "join_orders"
    assert [(d["name"], d["facets"]["version"]["datasetVersion"]) for d in event["inputs"]] == [
        ("orders", "v7"),
        ("model:labeller", "1.2"),
    ]
    assert [d["name"] for d in event["outputs"]] == ["labelled_orders"]
    run_facet = event["run"]["facets"]["synapsenet_transformation"]
    assert run_facet["parameters"] == {"on": ["order_id"], "how": "left"}
    assert (run_facet["type"], run_facet["version"], run_facet["transformationId"]) == (
        "join",
        "3",
        "tx-42",
    )
    code_facet = event["job"]["facets"]["synapsenet_code"]
    assert code_facet["sourceHash"] == "cd" * 32
    assert code_facet["libraryVersions"] == {"pandas": "2.2.2"}
    assert event["run"]["facets"]["nominalTime"]["nominalEndTime"] == event["eventTime"]


def test_run_id_is_a_uuid_derived_from_the_transformation_id() -> None:
    first = to_openlineage(join(), namespace="ns", producer=PRODUCER)["run"]["runId"]
    again = to_openlineage(join(), namespace="other", producer=PRODUCER)["run"]["runId"]
    other = to_openlineage(join(transformation_id="tx-43"), namespace="ns", producer=PRODUCER)
    assert first == again == openlineage_run_id("tx-42")
    assert other["run"]["runId"] != first
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    ("status", "event_type"),
    [(TransformationStatus.FAILED, "FAIL"), (TransformationStatus.RUNNING, "START")],
)
def test_event_type_follows_the_status(status: TransformationStatus, event_type: str) -> None:
    event = to_openlineage(join(status), namespace="ns", producer=PRODUCER)
    assert_valid_run_event(event)
    assert event["eventType"] == event_type
    if status is TransformationStatus.RUNNING:
        assert event["eventTime"] == "2024-03-01T12:00:00.000000+00:00"
        assert "nominalEndTime" not in event["run"]["facets"]["nominalTime"]


def test_schema_facets_are_attached_to_the_datasets_given() -> None:
    schemas = {
        ds("orders", 7): [("order_id", "int64"), ("amount", "double")],
        ds("elsewhere"): [("x", "int8")],
    }
    event = to_openlineage(join(), namespace="ns", producer=PRODUCER, schemas=schemas)
    assert_valid_run_event(event)
    orders, labeller = event["inputs"]
    assert orders["facets"]["schema"]["fields"] == [
        {"name": "order_id", "type": "int64"},
        {"name": "amount", "type": "double"},
    ]
    assert "schema" not in labeller["facets"]
    assert "schema" not in event["outputs"][0]["facets"]


def test_transformation_without_code_or_inputs_exports() -> None:
    ingest = Transformation(
        id="ingest-1",
        type=TransformationType.INGEST,
        name="load_raw",
        inputs=(),
        outputs=(ds("raw"),),
        started_at=T0,
        finished_at=T0,
    )
    event = to_openlineage(ingest, namespace="ns", producer=PRODUCER)
    assert_valid_run_event(event)
    assert event["inputs"] == []
    assert "synapsenet_code" not in event["job"]["facets"]


@pytest.mark.parametrize(
    ("namespace", "producer", "field"),
    [("", PRODUCER, "namespace"), ("ns", "synapsenet", "producer"), ("ns", "", "producer")],
)
def test_bad_namespace_or_producer_is_refused(namespace: str, producer: str, field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        to_openlineage(join(), namespace=namespace, producer=producer)
    assert caught.value.field == field


# --- DOT and Mermaid ------------------------------------------------------------------------------


def lineage() -> LineageDAG:
    dag = LineageDAG()
    dag.add(join())
    weird = ds('we"ird\\name{x}#1')
    dag.add(
        Transformation(
            id="clean",
            type=TransformationType.CLEAN,
            name='clean "orders"',
            inputs=(ds("orders", 6),),
            outputs=(ds("orders", 7), weird),
            started_at=T0 - timedelta(hours=1),
            finished_at=T0 - timedelta(hours=1),
        )
    )
    run, model = NodeRef.run("train-9"), NodeRef.model_version("end", "1")
    dag.add_edge(ds("labelled_orders", 2), run)
    dag.add_edge(run, model)
    return dag


DOT_STRING = r'"(?:[^"\\]|\\.)*"'
DOT_ID = r"[A-Za-z_][A-Za-z0-9_]*"
DOT_ATTRS = rf"\[(?:{DOT_ID}=(?:{DOT_STRING}|[A-Za-z0-9_.#]+)(?:, )?)+\]"


def parse_dot(source: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str]]]:
    """A structural DOT check: balanced braces, well-formed statements, declared nodes."""
    outside = re.sub(DOT_STRING, '""', source)
    depth = 0
    for character in outside:
        depth += {"{": 1, "}": -1}.get(character, 0)
        assert depth >= 0
    assert depth == 0
    lines = source.strip().splitlines()
    assert lines[0] == "digraph lineage {"
    assert lines[-1] == "}"
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:-1]:
        statement = line.strip()
        if statement.startswith(("graph [", "node [")):
            continue
        edge = re.fullmatch(rf"({DOT_ID}) -> ({DOT_ID})(?: ({DOT_ATTRS}))?;", statement)
        if edge:
            edges.append((edge[1], edge[2], edge[3] or ""))
            continue
        node = re.fullmatch(rf"({DOT_ID}) ({DOT_ATTRS});", statement)
        assert node, statement
        attributes = dict(re.findall(rf"({DOT_ID})=({DOT_STRING}|[A-Za-z0-9_.#]+)", node[2]))
        assert node[1] not in nodes
        nodes[node[1]] = attributes
    for source_id, target_id, _ in edges:
        assert source_id in nodes
        assert target_id in nodes
    return nodes, edges


def unquote_dot(text: str) -> str:
    assert text.startswith('"')
    assert text.endswith('"')
    return re.sub(r"\\(.)", lambda match: "\n" if match[1] == "n" else match[1], text[1:-1])


def test_dot_declares_every_node_with_a_shape_per_kind() -> None:
    dag = lineage()
    nodes, edges = parse_dot(to_dot(dag))
    labels = {unquote_dot(attributes["label"]): attributes for attributes in nodes.values()}
    assert len(nodes) == len(dag.nodes()) + len(dag.transformations())
    for node in dag.nodes():
        shape = labels[str(node)]["shape"]
        assert (
            shape
            == {"dataset_version": "cylinder", "run": "ellipse", "model_version": "box3d"}[
                node.kind.value
            ]
        )
    assert labels['clean "orders"\nclean']["shape"] == "box"
    assert labels["join_orders@3\njoin"]["style"] == "rounded"
    assert 'dataset:we"ird\\name{x}#1@v1' in labels
    # Each transformation contributes one edge per input and per output; usage edges dash.
    assert len(edges) == 2 + 1 + 1 + 2 + 2
    assert sum("style=dashed" in attributes for *_, attributes in edges) == 2


def test_dot_highlights_the_given_nodes() -> None:
    dag = lineage()
    nodes, _ = parse_dot(to_dot(dag, highlight=[ds("orders", 7), NodeRef.run("train-9")]))
    filled = {unquote_dot(a["label"]) for a in nodes.values() if a.get("style") == "filled"}
    assert filled == {"dataset:orders@v7", "run:train-9"}


def test_exports_do_not_depend_on_insertion_order() -> None:
    forward = lineage()
    backward = LineageDAG.from_edges(
        reversed(forward.transformations()),
        [(edge.source, edge.target) for edge in reversed(forward.usage_edges())],
    )
    assert to_dot(forward) == to_dot(backward)
    assert to_mermaid(forward) == to_mermaid(backward)


MERMAID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MERMAID_RESERVED = {"end", "graph", "flowchart", "subgraph", "class", "classDef", "style", "click"}


def test_mermaid_uses_safe_ids_and_escaped_labels() -> None:
    dag = lineage()
    source = to_mermaid(dag, highlight=[NodeRef.model_version("end", "1")])
    lines = source.strip().splitlines()
    assert lines[0] == "flowchart LR"
    declared: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    classes: list[str] = []
    for line in lines[1:]:
        statement = line.strip()
        node = re.fullmatch(
            r"(\w+)(\[\(|\(\[|\[\[|\{\{)\"([^\"]*)\"(\)\]|\]\)|\]\]|\}\})", statement
        )
        edge = re.fullmatch(r"(\w+) (-->|-\.->) (\w+)", statement)
        if node:
            declared[node[1]] = node[3]
        elif edge:
            edges.append((edge[1], edge[2], edge[3]))
        else:
            classes.append(statement)
    for identifier in declared:
        assert MERMAID_ID.fullmatch(identifier)
        assert identifier not in MERMAID_RESERVED
    assert all(a in declared and b in declared for a, _, b in edges)
    assert len(declared) == len(dag.nodes()) + len(dag.transformations())
    assert sum(arrow == "-.->" for _, arrow, _ in edges) == 2
    labels = set(declared.values())
    assert "dataset:we#quot;ird\\name{x}#35;1@v1" in labels
    assert "clean #quot;orders#quot; (clean)" in labels
    assert "model:end@1" in labels
    highlighted = next(iter(i for i, label in declared.items() if label == "model:end@1"))
    assert classes == [
        "classDef highlight fill:#fde0dd,stroke:#d62728,stroke-width:2px",
        f"class {highlighted} highlight",
    ]


def test_empty_graph_exports() -> None:
    assert to_dot(LineageDAG()).count("\n") == 4
    assert to_mermaid(LineageDAG()) == "flowchart LR\n"
