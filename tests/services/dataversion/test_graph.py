"""Lineage model values and the lineage DAG: cycles, traversals, paths, impact, replay plans."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.graph import CycleError, Edge, LineageDAG, NodeDistance
from synapsenet.services.dataversion.lineage_model import (
    CodeHashBasis,
    CodeIdentity,
    NodeKind,
    NodeRef,
    Transformation,
    TransformationStatus,
    TransformationType,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
HASH = "ab" * 32


def ds(name: str, number: int = 1) -> NodeRef:
    return NodeRef.dataset_version(name, number)


def tx(
    transformation_id: str,
    inputs: Sequence[NodeRef],
    outputs: Sequence[NodeRef],
    *,
    minute: int = 0,
    kind: TransformationType = TransformationType.MAP,
) -> Transformation:
    start = T0 + timedelta(minutes=minute)
    return Transformation(
        id=transformation_id,
        type=kind,
        name=f"step_{transformation_id}",
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        started_at=start,
        finished_at=start + timedelta(seconds=30),
    )


def diamond() -> LineageDAG:
    """a -> b, a -> c, (b, c) -> d."""
    dag = LineageDAG()
    dag.add(tx("ab", [ds("a")], [ds("b")], minute=1))
    dag.add(tx("ac", [ds("a")], [ds("c")], minute=2))
    dag.add(tx("bcd", [ds("b"), ds("c")], [ds("d")], minute=3, kind=TransformationType.JOIN))
    return dag


def chain(length: int) -> LineageDAG:
    """d@v1 -> d@v2 -> ... -> d@v{length + 1}."""
    return LineageDAG.from_edges(
        tx(f"t{i}", [ds("d", i)], [ds("d", i + 1)], minute=i) for i in range(1, length + 1)
    )


def nodes_of(reached: Sequence[NodeDistance]) -> list[tuple[str, int]]:
    return [(str(item.node), item.distance) for item in reached]


# --- node references -------------------------------------------------------------------------

NAMES = st.text(
    alphabet=st.characters(
        exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="@"
    ),
    min_size=1,
    max_size=20,
).filter(lambda text: text == "".join(text.split()))


@given(name=NAMES, number=st.integers(min_value=1, max_value=10**9))
def test_dataset_reference_round_trips_through_its_string_form(name: str, number: int) -> None:
    node = NodeRef.dataset_version(name, number)
    assert str(node) == f"dataset:{name}@v{number}"
    assert NodeRef.parse(str(node)) == node
    assert (node.name, node.version_number, node.version) == (name, number, f"v{number}")


@given(name=NAMES, version=NAMES, run_id=NAMES)
def test_model_and_run_references_round_trip(name: str, version: str, run_id: str) -> None:
    model = NodeRef.model_version(name, version)
    run = NodeRef.run(run_id)
    assert NodeRef.parse(str(model)) == model
    assert NodeRef.parse(str(run)) == run
    assert (model.name, model.version, model.version_number) == (name, version, None)
    assert (run.kind, run.name, run.version) == (NodeKind.RUN, run_id, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dataset",
        "dataset:",
        "dataset:orders",
        "dataset:orders@v0",
        "dataset:orders@v01",
        "dataset:orders@3",
        "dataset:my orders@v1",
        "dataset:a@b@v1",
        "model:churn",
        "model:churn@",
        "run:",
        "run:has space",
        "table:orders@v1",
    ],
)
def test_malformed_references_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidError, match="expected dataset:<name>@v<N>") as caught:
        NodeRef.parse(text, field="inputs")
    assert caught.value.field == "inputs"


def test_references_sort_naturally_by_version_number() -> None:
    nodes = [ds("b", 1), ds("a", 10), NodeRef.run("r"), ds("a", 2), NodeRef.model_version("m", "1")]
    assert [str(node) for node in sorted(nodes)] == [
        "dataset:a@v2",
        "dataset:a@v10",
        "dataset:b@v1",
        "model:m@1",
        "run:r",
    ]


def test_reference_equality_and_hash_follow_kind_and_id() -> None:
    assert ds("a", 1) == NodeRef(NodeKind.DATASET_VERSION, "a@v1")
    assert hash(ds("a", 1)) == hash(NodeRef.parse("dataset:a@v1"))
    assert NodeRef.run("x@1") != NodeRef.model_version("x", "1")
    assert ds("a") != "dataset:a@v1"
    assert repr(ds("a")) == "NodeRef.parse('dataset:a@v1')"


def test_unknown_node_kind_is_refused() -> None:
    with pytest.raises(InvalidError, match="unknown lineage node kind"):
        NodeRef("table", "x")  # type: ignore[arg-type]


# --- transformations and code identities --------------------------------------------------------

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(parameters=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5))
def test_transformation_canonical_json_round_trips(parameters: dict[str, Any]) -> None:
    code = CodeIdentity("pkg.mod.fn", HASH, {"pandas": "2.2.0", "python": "3.11.7"})
    original = Transformation(
        id="t-1",
        type=TransformationType.JOIN,
        name="join_orders",
        version="2",
        inputs=(ds("orders", 3), NodeRef.model_version("labeller", "7")),
        outputs=(ds("joined", 1), ds("rejects", 1)),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=5),
        parameters=parameters,
        code=code,
    )
    document = original.to_json()
    restored = Transformation.from_json(document)
    assert restored == original
    assert restored.to_json() == document
    assert json.loads(document)["inputs"] == ["dataset:orders@v3", "model:labeller@7"]


def test_canonical_json_is_independent_of_key_order() -> None:
    first = tx("t", [ds("a")], [ds("b")])
    second = dataclasses.replace(first, parameters={"b": 1, "a": [1, {"y": 2, "x": 1}]})
    third = dataclasses.replace(first, parameters={"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert second.to_json() == third.to_json()
    assert '"parameters":{"a":[1,{"x":1,"y":2}],"b":1}' in second.to_json()


def test_parameters_are_deep_frozen_copies() -> None:
    parameters: dict[str, Any] = {"columns": ["a", "b"], "options": {"strict": True}}
    transformation = Transformation(
        id="t",
        type="filter",  # type: ignore[arg-type]
        name="keep",
        inputs=(ds("a"),),
        outputs=(ds("b"),),
        started_at=T0,
        finished_at=T0,
        parameters=parameters,
    )
    parameters["columns"].append("c")
    assert transformation.parameters["columns"] == ("a", "b")
    assert transformation.plain_parameters() == {"columns": ["a", "b"], "options": {"strict": True}}
    assert type(transformation.plain_parameters()["options"]) is dict
    assert transformation.type is TransformationType.FILTER
    with pytest.raises(TypeError):
        transformation.parameters["options"]["strict"] = False  # type: ignore[index]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"x": float("nan")}, r"parameters\['x'\] must be a finite number"),
        ({"x": [1, {2: "a"}]}, r"parameters\['x'\]\[1\] has a non-string key 2"),
        ({"x": {1, 2}}, r"parameters\['x'\] must be JSON .* Got set instead"),
        ({"when": T0}, r"parameters\['when'\] must be JSON"),
    ],
)
def test_non_json_parameters_are_refused_with_their_path(
    parameters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidError, match=message) as caught:
        Transformation(
            id="t",
            type=TransformationType.MAP,
            name="m",
            inputs=(),
            outputs=(ds("b"),),
            started_at=T0,
            finished_at=T0,
            parameters=parameters,
        )
    assert caught.value.field == "parameters"


def test_naive_times_are_refused_and_aware_ones_become_utc() -> None:
    with pytest.raises(InvalidError, match="started_at must be timezone-aware") as caught:
        Transformation(
            id="t",
            type=TransformationType.MAP,
            name="m",
            inputs=(),
            outputs=(ds("b"),),
            started_at=datetime(2024, 1, 1, 12, 0),
            finished_at=T0,
        )
    assert caught.value.field == "started_at"
    paris = timezone(timedelta(hours=1))
    transformation = Transformation(
        id="t",
        type=TransformationType.MAP,
        name="m",
        inputs=(),
        outputs=(ds("b"),),
        started_at=datetime(2024, 1, 1, 13, 0, tzinfo=paris),
        finished_at=datetime(2024, 1, 1, 13, 0, 1, tzinfo=paris),
    )
    assert transformation.started_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert transformation.started_at.tzinfo is UTC
    assert transformation.to_dict()["started_at"] == "2024-01-01T12:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"finished_at": T0 - timedelta(seconds=1)}, "finished_at", "before started_at"),
        ({"finished_at": None}, "finished_at", "completed transformation needs finished_at"),
        ({"outputs": ()}, "outputs", "at least one output"),
        ({"outputs": (NodeRef.run("r"),)}, "outputs", "is a run, not a dataset_version"),
        ({"inputs": (NodeRef.run("r"),)}, "inputs", "not a dataset_version or model_version"),
        ({"inputs": (ds("a"), ds("a"))}, "inputs", "more than once"),
        ({"inputs": ("dataset:a@v1",)}, "inputs", "must hold NodeRef"),
        ({"id": ""}, "id", "non-empty string"),
        ({"name": " padded "}, "name", "without surrounding whitespace"),
        ({"type": "explode"}, "type", "unknown transformation type"),
        ({"status": "paused"}, "status", "unknown transformation status"),
        ({"version": ""}, "version", "non-empty string"),
    ],
)
def test_malformed_transformations_are_refused_naming_the_field(
    changes: dict[str, object], field: str, message: str
) -> None:
    fields: dict[str, object] = {
        "id": "t",
        "type": TransformationType.MAP,
        "name": "m",
        "inputs": (ds("a"),),
        "outputs": (ds("b"),),
        "started_at": T0,
        "finished_at": T0,
    }
    with pytest.raises(InvalidError, match=message) as caught:
        Transformation(**{**fields, **changes})  # type: ignore[arg-type]
    assert caught.value.field == field


def test_running_transformation_needs_no_finish_time() -> None:
    running = Transformation(
        id="t",
        type=TransformationType.MAP,
        name="m",
        inputs=(ds("a"),),
        outputs=(ds("b"),),
        started_at=T0,
        finished_at=None,
        status=TransformationStatus.RUNNING,
    )
    assert Transformation.from_json(running.to_json()) == running


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"id": "t"}', "type"),
        ("[1, 2]", None),
        ("not json", None),
    ],
)
def test_malformed_transformation_documents_are_refused(document: str, field: str | None) -> None:
    with pytest.raises(InvalidError) as caught:
        Transformation.from_json(document)
    assert caught.value.field == field


def test_transformation_document_with_bad_node_names_the_field() -> None:
    document = tx("t", [ds("a")], [ds("b")]).to_dict()
    document["outputs"] = ["dataset:b"]
    with pytest.raises(InvalidError) as caught:
        Transformation.from_dict(document)
    assert caught.value.field == "outputs"


def valid_document() -> dict[str, Any]:
    code = CodeIdentity("m.f", HASH, {"numpy": "2.0"})
    return Transformation(
        id="t",
        type=TransformationType.MAP,
        name="m",
        inputs=(ds("a"),),
        outputs=(ds("b"),),
        started_at=T0,
        finished_at=T0,
        code=code,
    ).to_dict()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("finished_at",), 5, "finished_at"),
        (("started_at",), "yesterday", "started_at"),
        (("started_at",), "2024-01-01T00:00:00", "started_at"),
        (("version",), 3, "version"),
        (("type",), 3, "type"),
        (("status",), "paused", "status"),
        (("inputs",), "dataset:a@v1", "inputs"),
        (("inputs",), [1], "inputs"),
        (("code", "note"), 1, "note"),
        (("code", "basis"), "vibes", "basis"),
        (("code", "qualified_name"), "", "qualified_name"),
        (("code", "library_versions"), ["numpy"], "library_versions"),
    ],
)
def test_malformed_fields_of_documents_are_named(
    path: tuple[str, ...], value: object, field: str
) -> None:
    document = valid_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidError) as caught:
        Transformation.from_dict(document)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parameters": [("a", 1)]}, "parameters"),
        ({"code": {"qualified_name": "m.f"}}, "code"),
        ({"started_at": "2024-01-01T00:00:00+00:00"}, "started_at"),
        ({"inputs": ds("a")}, "inputs"),
    ],
)
def test_constructor_refuses_wrongly_typed_fields(changes: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "id": "t",
        "type": TransformationType.MAP,
        "name": "m",
        "inputs": (),
        "outputs": (ds("b"),),
        "started_at": T0,
        "finished_at": T0,
    }
    with pytest.raises(InvalidError) as caught:
        Transformation(**{**fields, **changes})  # type: ignore[arg-type]
    assert caught.value.field == field


def test_transformations_hash_by_id_and_references_only_compare_to_references() -> None:
    first = tx("t", [ds("a")], [ds("b")])
    assert hash(first) == hash(dataclasses.replace(first, name="renamed"))
    assert len({first, dataclasses.replace(first)}) == 1
    with pytest.raises(TypeError):
        _ = ds("a") < "dataset:b@v1"
    with pytest.raises(InvalidError, match="id must be a string"):
        NodeRef(NodeKind.RUN, 42)  # type: ignore[arg-type]


def test_code_identity_round_trips_and_validates_its_hash() -> None:
    code = CodeIdentity("m.f", HASH, {"z": "1", "a": "2"}, CodeHashBasis.BYTECODE, note="no source")
    assert list(code.library_versions) == ["a", "z"]
    assert CodeIdentity.from_json(code.to_json()) == code
    assert hash(CodeIdentity.from_json(code.to_json())) == hash(code)
    assert code.same_code(CodeIdentity("m.f", HASH, {}, CodeHashBasis.BYTECODE))
    with pytest.raises(InvalidError, match="64-character lowercase hex") as caught:
        CodeIdentity("m.f", "ABC")
    assert caught.value.field == "source_hash"
    with pytest.raises(InvalidError, match="library_versions"):
        CodeIdentity("m.f", HASH, {"pandas": 2})  # type: ignore[dict-item]
    with pytest.raises(InvalidError, match="unknown code hash basis") as caught:
        CodeIdentity("m.f", HASH, {}, "vibes")  # type: ignore[arg-type]
    assert caught.value.field == "basis"


# --- cycles ------------------------------------------------------------------------------------


def test_two_step_cycle_is_refused_naming_its_path() -> None:
    dag = LineageDAG()
    dag.add(tx("ab", [ds("a")], [ds("b")]))
    with pytest.raises(CycleError) as caught:
        dag.add(tx("ba", [ds("b")], [ds("a")]))
    error = caught.value
    assert isinstance(error, ConflictError)
    assert error.status == 409
    assert [str(node) for node in error.cycle] == ["dataset:b@v1", "dataset:a@v1", "dataset:b@v1"]
    assert "transformation 'ba' would create a lineage cycle" in error.detail
    assert "dataset:b@v1 -> dataset:a@v1 -> dataset:b@v1" in error.detail
    assert error.to_problem()["cycle"] == ["dataset:b@v1", "dataset:a@v1", "dataset:b@v1"]


def test_long_cycle_is_refused_and_leaves_the_graph_unchanged() -> None:
    dag = chain(500)
    before = (dag.edges(), dag.nodes(), dag.transformations())
    closing = tx("back", [ds("d", 501)], [ds("d", 1)])
    with pytest.raises(CycleError) as caught:
        dag.add(closing)
    cycle = caught.value.cycle
    assert len(cycle) == 502
    assert cycle[0] == cycle[-1] == ds("d", 501)
    assert list(cycle[1:-1]) == [ds("d", i) for i in range(1, 501)]
    assert (dag.edges(), dag.nodes(), dag.transformations()) == before
    with pytest.raises(NotFoundError):
        dag.transformation("back")


def test_cycle_through_a_multi_input_transformation_is_refused() -> None:
    dag = diamond()
    with pytest.raises(CycleError) as caught:
        dag.add(tx("loop", [ds("d"), ds("x")], [ds("y"), ds("c")]))
    assert caught.value.cycle[0] == caught.value.cycle[-1] == ds("d")


def test_self_loop_is_refused() -> None:
    dag = LineageDAG()
    with pytest.raises(CycleError, match="dataset:a@v1 -> dataset:a@v1"):
        dag.add(tx("self", [ds("a"), ds("b")], [ds("a")]))
    assert len(dag) == 0


def test_cycle_through_usage_edges_is_refused() -> None:
    dag = LineageDAG()
    run = NodeRef.run("r1")
    dag.add_edge(ds("train"), run)
    dag.add_edge(run, ds("predictions"))
    with pytest.raises(CycleError) as caught:
        dag.add(tx("feedback", [ds("predictions")], [ds("train")]))
    assert [str(node) for node in caught.value.cycle] == [
        "dataset:predictions@v1",
        "dataset:train@v1",
        "run:r1",
        "dataset:predictions@v1",
    ]
    dag.add(tx("ok", [ds("predictions")], [ds("train", 2)]))
    with pytest.raises(CycleError, match="an edge would create a lineage cycle"):
        dag.add_edge(ds("train", 2), run)


def test_bulk_load_detects_a_cycle_among_the_records() -> None:
    records = [tx(f"t{i}", [ds("n", i)], [ds("n", i + 1)]) for i in range(1, 30)]
    records.append(tx("close", [ds("n", 30)], [ds("n", 10)]))
    random.Random(4).shuffle(records)
    with pytest.raises(CycleError) as caught:
        LineageDAG.from_edges(records, [(ds("n", 1), NodeRef.run("r"))])
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == [ds("n", i) for i in range(10, 31)]
    assert caught.value.transformation_id is None


# --- recording -----------------------------------------------------------------------------


def test_adding_the_same_transformation_twice_is_a_no_op() -> None:
    dag = diamond()
    edges = dag.edges()
    dag.add(tx("ab", [ds("a")], [ds("b")], minute=1))
    assert dag.edges() == edges
    assert len(dag.transformations()) == 3


def test_a_different_transformation_under_a_known_id_is_a_conflict() -> None:
    dag = diamond()
    with pytest.raises(ConflictError, match="already recorded with different content"):
        dag.add(tx("ab", [ds("a")], [ds("z")], minute=1))


@pytest.mark.parametrize("status", [TransformationStatus.RUNNING, TransformationStatus.FAILED])
def test_unfinished_or_failed_transformations_are_not_lineage(status: TransformationStatus) -> None:
    transformation = Transformation(
        id="t",
        type=TransformationType.MAP,
        name="m",
        inputs=(ds("a"),),
        outputs=(ds("b"),),
        started_at=T0,
        finished_at=None if status is TransformationStatus.RUNNING else T0,
        status=status,
    )
    with pytest.raises(InvalidError, match="only completed transformations") as caught:
        LineageDAG().add(transformation)
    assert caught.value.field == "status"


@pytest.mark.parametrize(
    ("source", "target", "hint"),
    [
        (ds("a"), ds("b"), "record a Transformation"),
        (NodeRef.run("r"), NodeRef.run("s"), "run -> run"),
        (ds("a"), NodeRef.model_version("m", "1"), "dataset_version -> model_version"),
        (NodeRef.model_version("m", "1"), ds("a"), "model_version -> dataset_version"),
    ],
)
def test_usage_edges_only_join_allowed_kinds(source: NodeRef, target: NodeRef, hint: str) -> None:
    dag = LineageDAG()
    with pytest.raises(InvalidError, match=hint):
        dag.add_edge(source, target)
    with pytest.raises(InvalidError, match=hint):
        LineageDAG.from_edges(edges=[(source, target)])
    assert len(dag) == 0


def test_usage_edges_are_idempotent_and_listed() -> None:
    dag = LineageDAG()
    run, model = NodeRef.run("r"), NodeRef.model_version("m", "3")
    for _ in range(2):
        dag.add_edge(ds("a"), run)
        dag.add_edge(run, model)
    assert dag.usage_edges() == (Edge(ds("a"), run), Edge(run, model))
    assert dag.edges() == (Edge(ds("a"), run), Edge(run, model))
    assert ds("a") in dag
    assert ds("zzz") not in dag
    assert dag.has_edge(ds("a"), run)
    assert not dag.has_edge(run, ds("a"))
    assert not dag.has_edge(ds("zzz"), run)


def test_lookups_of_transformations() -> None:
    dag = diamond()
    assert dag.transformation("ab").name == "step_ab"
    assert dag.has_transformation("ab")
    assert not dag.has_transformation("nope")
    with pytest.raises(NotFoundError, match="no transformation 'nope'"):
        dag.transformation("nope")
    assert [t.id for t in dag.consumers(ds("a"))] == ["ab", "ac"]
    assert [t.id for t in dag.producers(ds("d"))] == ["bcd"]
    assert dag.producers(ds("a")) == ()


# --- ancestors and descendants -----------------------------------------------------------------


def test_descendants_of_a_diamond_with_depth_limits() -> None:
    dag = diamond()
    assert nodes_of(dag.descendants(ds("a"))) == [
        ("dataset:b@v1", 1),
        ("dataset:c@v1", 1),
        ("dataset:d@v1", 2),
    ]
    assert nodes_of(dag.descendants(ds("a"), depth=1)) == [("dataset:b@v1", 1), ("dataset:c@v1", 1)]
    assert dag.descendants(ds("a"), depth=0) == ()
    assert dag.descendants(ds("d")) == ()


def test_ancestors_of_a_diamond_with_depth_limits() -> None:
    dag = diamond()
    assert nodes_of(dag.ancestors(ds("d"))) == [
        ("dataset:b@v1", 1),
        ("dataset:c@v1", 1),
        ("dataset:a@v1", 2),
    ]
    assert nodes_of(dag.ancestors(ds("d"), depth=1)) == [("dataset:b@v1", 1), ("dataset:c@v1", 1)]
    assert dag.ancestors(ds("a")) == ()


def test_chain_traversals_respect_depth() -> None:
    dag = chain(10)
    assert nodes_of(dag.ancestors(ds("d", 11), depth=3)) == [
        ("dataset:d@v10", 1),
        ("dataset:d@v9", 2),
        ("dataset:d@v8", 3),
    ]
    assert [item.distance for item in dag.descendants(ds("d", 1))] == list(range(1, 11))
    assert len(dag.descendants(ds("d", 5), depth=100)) == 6


def test_distance_is_the_shortest_one() -> None:
    dag = diamond()
    dag.add(tx("shortcut", [ds("a")], [ds("d", 2)], minute=9))
    dag.add(tx("after", [ds("d")], [ds("d", 2)], minute=10))
    assert dict(nodes_of(dag.descendants(ds("a"))))["dataset:d@v2"] == 1


def test_traversals_of_unknown_nodes_are_empty_and_bad_depth_is_refused() -> None:
    dag = diamond()
    assert dag.ancestors(ds("ghost")) == ()
    assert dag.descendants(ds("ghost")) == ()
    assert dag.path(ds("ghost"), ds("a")) is None
    assert dag.upstream_chain(ds("ghost")) == ()
    assert dag.impact(ds("ghost")).is_empty
    with pytest.raises(InvalidError, match="depth must be >= 0") as caught:
        dag.ancestors(ds("d"), depth=-1)
    assert caught.value.field == "depth"
    with pytest.raises(InvalidError, match="depth must be an int"):
        dag.descendants(ds("a"), depth=True)


# --- paths ----------------------------------------------------------------------------------------


def test_path_follows_transformations_and_usage_edges() -> None:
    dag = diamond()
    run, model = NodeRef.run("train-1"), NodeRef.model_version("churn", "4")
    dag.add_edge(ds("d"), run)
    dag.add_edge(run, model)
    path = dag.path(ds("a"), model)
    assert path == (
        Edge(ds("a"), ds("b"), "ab"),
        Edge(ds("b"), ds("d"), "bcd"),
        Edge(ds("d"), run, None),
        Edge(run, model, None),
    )
    assert dag.path(model, ds("a")) is None
    assert dag.path(ds("b"), ds("c")) is None
    assert dag.path(ds("a"), ds("a")) == ()


def test_path_is_a_shortest_one() -> None:
    dag = chain(6)
    dag.add(tx("skip", [ds("d", 2)], [ds("d", 6)], minute=99))
    path = dag.path(ds("d", 1), ds("d", 7))
    assert path is not None
    assert [edge.transformation_id for edge in path] == ["t1", "skip", "t6"]


# --- impact -------------------------------------------------------------------------------------


def test_impact_reaches_runs_and_model_versions() -> None:
    dag = diamond()
    run, other_run = NodeRef.run("train-1"), NodeRef.run("eval-9")
    model = NodeRef.model_version("churn", "4")
    dag.add_edge(ds("d"), run)
    dag.add_edge(run, model)
    dag.add_edge(model, other_run)
    dag.add_edge(ds("unrelated"), other_run)
    report = dag.impact(ds("b"))
    assert report.source == ds("b")
    assert report.dataset_versions == (ds("d"),)
    assert report.runs == (run, other_run)
    assert report.model_versions == (model,)
    assert [t.id for t in report.transformations] == ["bcd"]
    assert report.nodes == (ds("d"), run, other_run, model)
    assert not report.is_empty

    upstream = dag.impact(ds("a"))
    assert upstream.dataset_versions == (ds("b"), ds("c"), ds("d"))
    assert [t.id for t in upstream.transformations] == ["ab", "ac", "bcd"]
    assert dag.impact(model).runs == (other_run,)
    assert dag.impact(other_run).is_empty


# --- replay plans and topological order --------------------------------------------------------


def test_upstream_chain_of_a_diamond_is_the_replay_plan() -> None:
    dag = diamond()
    dag.add(tx("de", [ds("d")], [ds("e")], minute=4))
    dag.add(tx("unrelated", [ds("a")], [ds("z")], minute=0))
    assert [t.id for t in dag.upstream_chain(ds("e"))] == ["ab", "ac", "bcd", "de"]
    assert [t.id for t in dag.upstream_chain(ds("b"))] == ["ab"]
    assert dag.upstream_chain(ds("a")) == ()


def test_upstream_chain_uses_the_first_producer_of_a_version() -> None:
    dag = LineageDAG()
    dag.add(tx("late", [ds("y")], [ds("out")], minute=50))
    dag.add(tx("early", [ds("x")], [ds("out")], minute=5))
    dag.add(tx("make-x", [ds("raw")], [ds("x")], minute=1))
    dag.add(tx("make-y", [ds("raw")], [ds("y")], minute=2))
    assert [t.id for t in dag.producers(ds("out"))] == ["early", "late"]
    assert [t.id for t in dag.upstream_chain(ds("out"))] == ["make-x", "early"]


def test_upstream_chain_of_a_model_rebuilds_its_training_data() -> None:
    dag = diamond()
    run, model = NodeRef.run("train-1"), NodeRef.model_version("churn", "4")
    dag.add(tx("ingest", [], [ds("labels")], minute=0, kind=TransformationType.INGEST))
    dag.add(tx("clean", [ds("labels")], [ds("labels", 2)], minute=5))
    dag.add_edge(ds("d"), run)
    dag.add_edge(ds("labels", 2), run)
    dag.add_edge(run, model)
    assert [t.id for t in dag.upstream_chain(model)] == ["ingest", "ab", "ac", "bcd", "clean"]


def test_a_version_written_by_a_run_is_a_source_of_replay() -> None:
    dag = LineageDAG()
    run = NodeRef.run("score")
    dag.add(tx("prep", [ds("raw")], [ds("features")]))
    dag.add_edge(ds("features"), run)
    dag.add_edge(run, ds("scores"))
    dag.add(tx("rank", [ds("scores")], [ds("ranked")], minute=3))
    assert [t.id for t in dag.upstream_chain(ds("ranked"))] == ["rank"]


def test_topological_order_of_nodes_is_deterministic() -> None:
    dag = diamond()
    dag.add_edge(ds("d"), NodeRef.run("r"))
    assert [str(node) for node in dag.topological_order()] == [
        "dataset:a@v1",
        "dataset:b@v1",
        "dataset:c@v1",
        "dataset:d@v1",
        "run:r",
    ]


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[list[Transformation], list[tuple[NodeRef, NodeRef]], int]:
    """Random lineage: transformations read earlier versions and write later ones."""
    count = draw(st.integers(min_value=2, max_value=25))
    nodes = [ds("n", i) for i in range(1, count + 1)]
    transformations: list[Transformation] = []
    for index in range(draw(st.integers(min_value=1, max_value=20))):
        split = draw(st.integers(min_value=1, max_value=count - 1))
        inputs = draw(st.lists(st.sampled_from(nodes[:split]), max_size=3, unique=True))
        outputs = draw(
            st.lists(st.sampled_from(nodes[split:]), min_size=1, max_size=3, unique=True)
        )
        minute = draw(st.integers(min_value=0, max_value=5))
        transformations.append(tx(f"t{index}", inputs, outputs, minute=minute))
    runs = [NodeRef.run(f"r{i}") for i in range(3)]
    usage = draw(st.lists(st.tuples(st.sampled_from(nodes), st.sampled_from(runs)), max_size=5))
    models = [(run, NodeRef.model_version("m", run.name)) for run in runs]
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    return transformations, [*usage, *models], seed


def assert_producers_first(dag: LineageDAG, plan: Sequence[Transformation]) -> None:
    position = {transformation.id: index for index, transformation in enumerate(plan)}
    assert len(position) == len(plan)
    for transformation in plan:
        for source in transformation.inputs:
            for producer in dag.producers(source):
                if producer.id in position:
                    assert position[producer.id] < position[transformation.id]


@settings(max_examples=150, deadline=None)
@given(data=random_dags())
def test_upstream_chain_is_a_complete_topological_replay_plan(
    data: tuple[list[Transformation], list[tuple[NodeRef, NodeRef]], int],
) -> None:
    transformations, usage, _ = data
    dag = LineageDAG.from_edges(transformations, usage)
    for node in dag.nodes():
        plan = dag.upstream_chain(node)
        assert_producers_first(dag, plan)
        planned = {t.id for t in plan}
        # Every version the plan reads is either rebuilt by it or a source.
        for transformation in plan:
            for source in transformation.inputs:
                producers = dag.producers(source)
                assert not producers or producers[0].id in planned
        if node.kind is NodeKind.DATASET_VERSION and dag.producers(node):
            assert dag.producers(node)[0].id in planned
        ancestors = {item.node for item in dag.ancestors(node)} | {node}
        assert all(set(t.outputs) & ancestors for t in plan)
    assert_producers_first(dag, dag.transformations())


@settings(max_examples=100, deadline=None)
@given(data=random_dags())
def test_results_do_not_depend_on_insertion_order(
    data: tuple[list[Transformation], list[tuple[NodeRef, NodeRef]], int],
) -> None:
    transformations, usage, seed = data
    bulk = LineageDAG.from_edges(transformations, usage)
    shuffled = list(transformations)
    random.Random(seed).shuffle(shuffled)
    one_by_one = LineageDAG()
    for transformation in shuffled:
        one_by_one.add(transformation)
    for source, target in reversed(usage):
        one_by_one.add_edge(source, target)
    assert one_by_one.edges() == bulk.edges()
    assert one_by_one.topological_order() == bulk.topological_order()
    order = {node: index for index, node in enumerate(bulk.topological_order())}
    assert all(order[edge.source] < order[edge.target] for edge in bulk.edges())
    for node in bulk.nodes():
        assert one_by_one.ancestors(node) == bulk.ancestors(node)
        assert one_by_one.descendants(node) == bulk.descendants(node)
        assert one_by_one.upstream_chain(node) == bulk.upstream_chain(node)
        assert one_by_one.impact(node) == bulk.impact(node)


# --- scale and subgraphs -----------------------------------------------------------------------


def test_deep_graphs_need_no_recursion() -> None:
    length = 20_000
    dag = chain(length)
    tip = ds("d", length + 1)
    assert len(dag.ancestors(tip)) == length
    assert dag.ancestors(tip)[-1] == NodeDistance(ds("d", 1), length)
    plan = dag.upstream_chain(tip)
    assert [t.id for t in plan[:2]] == ["t1", "t2"]
    assert len(plan) == length
    path = dag.path(ds("d", 1), tip)
    assert path is not None
    assert len(path) == length
    assert len(dag.impact(ds("d", 1)).dataset_versions) == length
    assert dag.topological_order()[0] == ds("d", 1)
    with pytest.raises(CycleError):
        dag.add(tx("back", [tip], [ds("d", 1)]))


def test_neighbourhood_keeps_whole_transformations_around_a_node() -> None:
    dag = diamond()
    dag.add(
        tx("split", [ds("d")], [ds("train"), ds("test")], minute=5, kind=TransformationType.SPLIT)
    )
    dag.add(tx("far", [ds("train")], [ds("far")], minute=6))
    dag.add_edge(ds("train"), NodeRef.run("r"))
    around = dag.neighbourhood(ds("train"), depth=1)
    assert [t.id for t in around.transformations()] == ["split", "far"]
    assert set(around.nodes()) == {ds("d"), ds("train"), ds("test"), ds("far"), NodeRef.run("r")}
    assert around.usage_edges() == (Edge(ds("train"), NodeRef.run("r")),)
    whole = dag.neighbourhood(ds("b"))
    assert {t.id for t in whole.transformations()} == {"ab", "bcd", "split", "far"}


def test_graph_refuses_values_of_the_wrong_type() -> None:
    dag = LineageDAG()
    with pytest.raises(InvalidError, match="expected a Transformation"):
        dag.add("t1")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="edge ends must be NodeRef values"):
        dag.add_edge("dataset:a@v1", NodeRef.run("r"))  # type: ignore[arg-type]
    assert len(dag) == 0


def test_isolated_nodes_can_be_added() -> None:
    dag = LineageDAG.from_edges(nodes=[ds("lonely")])
    assert dag.nodes() == (ds("lonely"),)
    assert dag.impact(ds("lonely")).is_empty
    with pytest.raises(InvalidError):
        dag.add_node("dataset:x@v1")  # type: ignore[arg-type]
