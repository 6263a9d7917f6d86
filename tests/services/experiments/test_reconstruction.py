"""A tracked run's data comes back byte for byte, and lineage impact reaches runs and models."""

from __future__ import annotations

from pathlib import Path

from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeRef
from synapsenet.services.dataversion.reconstruction import DatasetReconstructor
from synapsenet.services.experiments import RunTracker, start_run

TRAIN_V1 = b"id,amount,label\n1,10.5,0\n2,99.0,1\n3,12.25,0\n"
TRAIN_V2 = TRAIN_V1 + b"4,7.0,0\n5,250.0,1\n"
HOLDOUT = b"id,amount,label\n100,42.0,0\n101,300.0,1\n"


def commit(engine: DatasetVersioningEngine, tmp_path: Path, dataset: str, data: bytes) -> str:
    source = tmp_path / f"{dataset}-{len(data)}.csv"
    source.write_bytes(data)
    return engine.commit(dataset, source, name="data.csv").ref


def checked_out(engine: DatasetVersioningEngine, ref: str, destination: Path) -> bytes:
    [path] = engine.checkout(ref, destination)
    return path.read_bytes()


def test_for_experiment_returns_exactly_the_logged_versions_byte_for_byte(
    tracker: RunTracker, engine: DatasetVersioningEngine, lineage: LineageGraph, tmp_path: Path
) -> None:
    engine.create_dataset("train", format="csv")
    engine.create_dataset("holdout", format="csv")
    assert commit(engine, tmp_path, "train", TRAIN_V1) == "train@v1"
    assert commit(engine, tmp_path, "holdout", HOLDOUT) == "holdout@v1"
    engine.tag("train@v1", "production")

    with start_run(tracker, project="fraud", params={"depth": 6}) as run:
        train = run.log_dataset("train@production")
        holdout = run.log_dataset("holdout")
        run.log_model("fraud-detector", "1")
    assert (train, holdout) == ("train@v1", "holdout@v1")

    # The data moves on after the run: a new version, and the tag follows it.
    assert commit(engine, tmp_path, "train", TRAIN_V2) == "train@v2"
    engine.tag("train@v2", "production")

    reconstructor = DatasetReconstructor(engine, lineage, runs=tracker)
    versions = reconstructor.for_experiment(run.id)
    assert [v.ref for v in versions] == ["train@v1", "holdout@v1"]
    restored = {
        v.ref: checked_out(engine, v.ref, tmp_path / "restore" / v.dataset) for v in versions
    }
    assert restored == {"train@v1": TRAIN_V1, "holdout@v1": HOLDOUT}
    assert [v.root for v in versions] == [
        engine.resolve("train@v1").root,
        engine.resolve("holdout@v1").root,
    ]
    # The lineage links the tracker wrote give the default reconstructor the same answer.
    by_lineage = DatasetReconstructor(engine, lineage).for_experiment(run.id)
    assert sorted(v.ref for v in by_lineage) == sorted(v.ref for v in versions)


def test_impact_of_a_dataset_version_reaches_the_run_and_the_model_it_produced(
    tracker: RunTracker, engine: DatasetVersioningEngine, lineage: LineageGraph, tmp_path: Path
) -> None:
    engine.create_dataset("train", format="csv")
    commit(engine, tmp_path, "train", TRAIN_V1)
    commit(engine, tmp_path, "train", TRAIN_V2)
    with start_run(tracker, project="fraud") as reader:
        reader.log_dataset("train@v1")
        reader.log_model("fraud-detector", "1")
    with start_run(tracker, project="fraud") as other:
        other.log_dataset("train@v2")
        other.log_model("fraud-detector", "2")

    report = lineage.impact(NodeRef.dataset_version("train", 1))
    assert report.runs == (NodeRef.run(reader.id),)
    assert report.model_versions == (NodeRef.model_version("fraud-detector", "1"),)
    report = lineage.impact(NodeRef.dataset_version("train", 2))
    assert report.runs == (NodeRef.run(other.id),)
    assert report.model_versions == (NodeRef.model_version("fraud-detector", "2"),)
