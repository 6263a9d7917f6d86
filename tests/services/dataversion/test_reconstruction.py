from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.graph import CycleError
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeRef, TransformationType
from synapsenet.services.dataversion.pipelines import apply_transform
from synapsenet.services.dataversion.reconstruction import DatasetReconstructor
from synapsenet.services.dataversion.transforms import TransformRegistry
from tests.services.dataversion.conftest import frame


def build_registry(threshold_offset: float = 0.0) -> TransformRegistry:
    registry = TransformRegistry()

    @registry.register("drop_small", version="1", type=TransformationType.FILTER)
    def drop_small(table: pa.Table, threshold: float = 100.0) -> pa.Table:
        return table.filter(pc.greater(table["amount"], pa.scalar(threshold + threshold_offset)))

    @registry.register("by_country", version="1", type=TransformationType.AGGREGATE)
    def by_country(table: pa.Table) -> pa.Table:
        return table.group_by("country").aggregate([("amount", "sum")]).sort_by("country")

    return registry


@pytest.fixture
def pipeline(
    engine: DatasetVersioningEngine, lineage: LineageGraph
) -> tuple[TransformRegistry, dict[str, Any]]:
    registry = build_registry()
    for name in ("raw", "clean", "summary"):
        engine.create_dataset(name, format="parquet")
    raw = engine.commit("raw", frame(2000))
    (clean,) = apply_transform(
        engine,
        lineage,
        registry.get("drop_small", "1"),
        [raw.ref],
        ["clean"],
        parameters={"threshold": 110.0},
    )
    (summary,) = apply_transform(
        engine, lineage, registry.get("by_country", "1"), [clean.ref], ["summary"]
    )
    return registry, {"raw": raw, "clean": clean, "summary": summary}


def node(ref: str) -> NodeRef:
    name, number = ref.split("@v")
    return NodeRef.dataset_version(name, int(number))


def test_apply_commits_outputs_and_records_lineage(
    pipeline: tuple[TransformRegistry, dict[str, Any]],
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
    db: Database,
) -> None:
    _, versions = pipeline
    clean = engine.load_table(versions["clean"].ref)
    assert pc.min(clean["amount"]).as_py() > 110.0
    ancestors = [d.node for d in lineage.ancestors(node(versions["summary"].ref))]
    assert ancestors == [node(versions["clean"].ref), node(versions["raw"].ref)]
    chain = lineage.upstream_chain(node(versions["summary"].ref))
    assert [t.name for t in chain] == ["drop_small", "by_country"]
    assert chain[0].parameters["threshold"] == 110.0
    assert chain[0].code is not None
    with db.transaction() as session:
        types = list(session.scalars(select(OutboxRecord.type)))
    assert types.count("dataversion.lineage.recorded") == 2


def test_impact_reaches_runs_and_models(
    pipeline: tuple[TransformRegistry, dict[str, Any]], lineage: LineageGraph
) -> None:
    _, versions = pipeline
    run = NodeRef.run("train-42")
    model = NodeRef.model_version("fraud", "7")
    lineage.link(node(versions["summary"].ref), run)
    lineage.link(node(versions["summary"].ref), run)  # idempotent
    lineage.link(run, model)
    impact = lineage.impact(node(versions["raw"].ref))
    assert set(impact.dataset_versions) == {
        node(versions["clean"].ref),
        node(versions["summary"].ref),
    }
    assert impact.runs == (run,)
    assert impact.model_versions == (model,)
    assert lineage.path(node(versions["raw"].ref), model) is not None
    assert "model:fraud@7" in lineage.to_mermaid()
    assert "digraph" in lineage.to_dot(node(versions["clean"].ref), depth=1)
    events = lineage.openlineage_events(node(versions["summary"].ref))
    assert [e["job"]["name"] for e in events] == ["drop_small", "by_country"]


def test_cycles_and_bad_links_are_refused(
    pipeline: tuple[TransformRegistry, dict[str, Any]], lineage: LineageGraph
) -> None:
    _, versions = pipeline
    run = NodeRef.run("r1")
    lineage.link(node(versions["summary"].ref), run)
    with pytest.raises(CycleError):
        lineage.link(run, node(versions["raw"].ref))
    with pytest.raises(InvalidError):
        lineage.link(node(versions["raw"].ref), NodeRef.model_version("fraud", "1"))
    registry = build_registry()
    loop = registry.get("by_country", "1").record(
        id="loop",
        inputs=[node(versions["summary"].ref)],
        outputs=[node(versions["raw"].ref)],
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )
    with pytest.raises(CycleError):
        lineage.record(loop)
    assert "loop" not in {t.id for t in lineage.dag().transformations()}


def test_for_experiment_returns_exactly_the_versions_a_run_read(
    pipeline: tuple[TransformRegistry, dict[str, Any]],
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
) -> None:
    registry, versions = pipeline
    engine.commit("raw", frame(2100))  # a newer version the run did not read
    lineage.link(node(versions["raw"].ref), NodeRef.run("r1"))
    lineage.link(node(versions["clean"].ref), NodeRef.run("r1"))
    reconstructor = DatasetReconstructor(engine, lineage, registry=registry)
    assert [v.ref for v in reconstructor.for_experiment("r1")] == ["clean@v1", "raw@v1"]
    with pytest.raises(NotFoundError, match="no experiment run 'ghost'"):
        reconstructor.for_experiment("ghost")


def test_as_of_picks_the_version_current_at_that_instant(
    engine: DatasetVersioningEngine, lineage: LineageGraph, db: Database
) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    timed = DatasetVersioningEngine(db, engine.chunks.store, clock=lambda: clock[0])
    timed.create_dataset("orders", format="parquet")
    timed.commit("orders", frame(10))
    clock[0] += timedelta(days=10)
    timed.commit("orders", frame(20))
    reconstructor = DatasetReconstructor(timed, lineage)
    assert reconstructor.as_of("orders", datetime(2026, 1, 5, tzinfo=UTC)).number == 1
    assert reconstructor.as_of("orders", datetime(2026, 2, 1, tzinfo=UTC)).number == 2
    with pytest.raises(NotFoundError, match="had no version"):
        reconstructor.as_of("orders", datetime(2025, 12, 31, tzinfo=UTC))
    with pytest.raises(InvalidError, match="no time zone"):
        reconstructor.as_of("orders", datetime(2026, 1, 5))


def test_replay_reproduces_every_step_byte_for_byte(
    pipeline: tuple[TransformRegistry, dict[str, Any]],
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
) -> None:
    registry, versions = pipeline
    report = DatasetReconstructor(engine, lineage, registry=registry).replay(
        versions["summary"].ref
    )
    assert report.reproducible
    assert [step.name for step in report.steps] == ["drop_small@1", "by_country@1"]
    assert all(step.actual == step.expected for step in report.steps)
    skipping = DatasetReconstructor(engine, lineage, registry=registry).replay(
        versions["summary"].ref, skip_intact=True
    )
    assert all(step.skipped for step in skipping.steps)


def test_replay_detects_changed_code_and_missing_transforms(
    pipeline: tuple[TransformRegistry, dict[str, Any]],
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
) -> None:
    _, versions = pipeline
    drifted = DatasetReconstructor(engine, lineage, registry=build_registry(threshold_offset=5))
    report = drifted.replay(versions["summary"].ref)
    assert not report.reproducible
    assert not report.steps[0].matches
    assert report.steps[0].actual != report.steps[0].expected
    unknown = DatasetReconstructor(engine, lineage, registry=TransformRegistry())
    missing = unknown.replay(versions["clean"].ref)
    assert missing.steps[0].error is not None
    assert "not registered" in missing.steps[0].error


def test_an_identity_transform_records_no_self_loop(
    engine: DatasetVersioningEngine, lineage: LineageGraph
) -> None:
    registry = TransformRegistry()

    @registry.register("noop", version="1", type=TransformationType.CLEAN)
    def noop(table: pa.Table) -> pa.Table:
        return table

    engine.create_dataset("raw", format="parquet")
    raw = engine.commit("raw", frame(10))
    (same,) = apply_transform(engine, lineage, registry.get("noop", "1"), [raw.ref], ["raw"])
    assert same.number == raw.number
    assert lineage.dag().transformations() == ()
