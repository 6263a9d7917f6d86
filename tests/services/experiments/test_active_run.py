"""The MLflow-style ``start_run`` context manager over the in-process tracker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from synapsenet.errors import ConflictError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.experiments import RunStatus, RunTracker, start_run
from tests.services.experiments.test_tracker import commit_orders


def test_a_block_that_ends_normally_finishes_the_run(
    tracker: RunTracker, engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    commit_orders(engine, tmp_path, "id\n1\n")
    engine.tag("orders@v1", "production")
    with start_run(tracker, project="fraud", name="xgb", params={"depth": 6}) as run:
        run.log_param("lr", 0.1)
        run.log_params({"subsample": 0.8})
        run.log_metric("loss", 0.9, step=0)
        run.log_metric("loss", 0.4, step=1)
        run.log_metrics({"auc": 0.91, "f1": 0.7}, step=1)
        run.set_tag("team", "risk")
        run.set_tags({"stage": "dev"})
        assert run.log_dataset("orders@production") == "orders@v1"
        run.log_model("fraud-detector", "1")
        assert run.info.status is RunStatus.RUNNING
    info = tracker.get_run(run.id)
    assert info.status is RunStatus.FINISHED
    assert (info.project, info.name) == ("fraud", "xgb")
    assert dict(info.params) == {"depth": 6, "lr": 0.1, "subsample": 0.8}
    assert dict(info.metrics) == {"auc": 0.91, "f1": 0.7, "loss": 0.4}
    assert dict(info.tags) == {"stage": "dev", "team": "risk"}
    assert info.dataset_refs == ("orders@v1",)
    assert [m.ref for m in info.models] == ["fraud-detector@1"]
    assert repr(run) == f"ActiveRun(id={run.id!r})"


def test_an_exception_fails_the_run_and_propagates(tracker: RunTracker) -> None:
    with pytest.raises(ZeroDivisionError), start_run(tracker, project="p") as run:
        run.log_metric("loss", 1.0)
        _ = 1 / 0
    assert tracker.get_run(run.id).status is RunStatus.FAILED


def test_an_interrupt_kills_the_run(tracker: RunTracker) -> None:
    with pytest.raises(KeyboardInterrupt), start_run(tracker) as run:
        raise KeyboardInterrupt
    assert tracker.get_run(run.id).status is RunStatus.KILLED


def test_ending_inside_the_block_is_final(tracker: RunTracker) -> None:
    with start_run(tracker) as run:
        ended = run.end(RunStatus.KILLED)
    assert ended.status is RunStatus.KILLED
    assert tracker.get_run(run.id).status is RunStatus.KILLED


def test_a_failure_to_mark_the_run_does_not_hide_the_training_error(
    tracker: RunTracker, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="bad batch"), start_run(tracker) as run:
        # Someone else ended the run meanwhile, so it cannot be marked failed.
        tracker.end_run(run.id, RunStatus.KILLED)
        raise ValueError("bad batch")
    assert tracker.get_run(run.id).status is RunStatus.KILLED
    assert f"could not mark run {run.id} failed" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def test_a_param_changed_inside_the_block_fails_the_run(tracker: RunTracker) -> None:
    with pytest.raises(ConflictError), start_run(tracker, params={"depth": 6}) as run:
        run.log_param("depth", 7)
    assert tracker.get_run(run.id).status is RunStatus.FAILED
