"""RunTracker on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeRef
from synapsenet.services.experiments.models import Metric, RunStatus
from synapsenet.services.experiments.tracker import RunTracker, new_run_id
from tests.services.experiments.conftest import START


def commit_orders(engine: DatasetVersioningEngine, tmp_path: Path, *versions: str) -> None:
    """Create ``orders`` (CSV) and commit one version per content given."""
    engine.create_dataset("orders", format="csv")
    for number, content in enumerate(versions, start=1):
        source = tmp_path / f"orders-{number}.csv"
        source.write_text(content)
        engine.commit("orders", source, name="orders.csv")


def events(db: Database, prefix: str = "experiments.") -> list[tuple[str, dict[str, object]]]:
    with db.transaction() as session:
        rows = session.scalars(select(OutboxRecord).order_by(OutboxRecord.id)).all()
    found = []
    for row in rows:
        if row.type.startswith(prefix):
            envelope = json.loads(row.envelope)
            found.append((row.type, envelope["data"]))
    return found


# ---------------------------------------------------------------------- lifecycle


def test_start_run_records_params_tags_and_a_started_event(
    tracker: RunTracker, db: Database
) -> None:
    run = tracker.start_run(
        project="fraud",
        name="xgb depth 6",
        params={"depth": 6, "lr": 0.1, "booster": "gbtree", "early_stop": True, "seed": None},
        tags={"team": "risk"},
    )
    assert run.status is RunStatus.RUNNING
    assert run.project == "fraud"
    assert run.name == "xgb depth 6"
    assert run.started_at == START + timedelta(seconds=1)
    assert run.ended_at is None
    assert dict(run.params) == {
        "booster": "gbtree",
        "depth": 6,
        "early_stop": True,
        "lr": 0.1,
        "seed": None,
    }
    assert type(run.params["depth"]) is int
    assert type(run.params["early_stop"]) is bool
    assert dict(run.tags) == {"team": "risk"}
    assert tracker.get_run(run.id) == run
    assert events(db) == [
        (
            "experiments.run.started",
            {
                "run_id": run.id,
                "project": "fraud",
                "name": "xgb depth 6",
                "status": "running",
                "params": ["booster", "depth", "early_stop", "lr", "seed"],
            },
        )
    ]


def test_run_ids_sort_by_start_time_and_default_names_come_from_them() -> None:
    early = new_run_id(datetime(2026, 1, 1, tzinfo=UTC))
    late = new_run_id(datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC))
    assert len(early) == len(late) == 32
    assert int(early, 16) >= 0
    assert early < late


def test_default_project_and_name(tracker: RunTracker) -> None:
    run = tracker.start_run()
    assert run.project == "default"
    assert run.name == f"run-{run.id[-8:]}"


@pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
def test_end_run_sets_the_status_once_and_repeating_it_is_a_no_op(
    tracker: RunTracker, db: Database, status: RunStatus
) -> None:
    run = tracker.start_run(project="p")
    ended = tracker.end_run(run.id, status)
    assert ended.status is status
    assert ended.ended_at is not None
    assert ended.ended_at > run.started_at
    assert tracker.end_run(run.id, status) == ended
    other = RunStatus.FAILED if status is not RunStatus.FAILED else RunStatus.FINISHED
    with pytest.raises(ConflictError, match=f"already ended as {status.value}"):
        tracker.end_run(run.id, other)
    assert [t for t, _ in events(db)] == [
        "experiments.run.started",
        f"experiments.run.{status.value}",
    ]


def test_a_run_cannot_be_ended_as_running(tracker: RunTracker) -> None:
    run = tracker.start_run()
    with pytest.raises(ConflictError, match="cannot be ended as running"):
        tracker.end_run(run.id, RunStatus.RUNNING)


def test_unknown_runs_are_not_found(tracker: RunTracker) -> None:
    for call in (
        lambda: tracker.get_run("ghost"),
        lambda: tracker.end_run("ghost"),
        lambda: tracker.log_params("ghost", {"a": 1}),
        lambda: tracker.log_metric("ghost", "loss", 1.0),
        lambda: tracker.log_dataset("ghost", "orders@v1"),
        lambda: tracker.log_model("ghost", "m", "1"),
        lambda: tracker.set_tags("ghost", {"a": "b"}),
        lambda: tracker.datasets_of_run("ghost"),
        lambda: tracker.metric_history("ghost", "loss"),
    ):
        with pytest.raises(NotFoundError, match="no run with id 'ghost'"):
            call()


def test_bad_start_arguments_record_nothing(tracker: RunTracker) -> None:
    with pytest.raises(InvalidError) as info:
        tracker.start_run(project="has space")
    assert info.value.field == "project"
    with pytest.raises(InvalidError, match="must be a finite number"):
        tracker.start_run(params={"lr": float("nan")})
    with pytest.raises(InvalidError) as info:
        tracker.start_run(tags={"note": 3})  # type: ignore[dict-item]
    assert info.value.field == "tags"
    with pytest.raises(InvalidError) as info:
        tracker.start_run(name=" padded")
    assert info.value.field == "name"
    assert tracker.list_runs() == []


# ---------------------------------------------------------------------- params


def test_params_are_immutable_but_repeating_a_value_is_a_no_op(tracker: RunTracker) -> None:
    run = tracker.start_run(params={"depth": 6})
    tracker.log_params(run.id, {"depth": 6, "lr": 0.1})
    tracker.log_param(run.id, "lr", 0.1)
    with pytest.raises(ConflictError, match=r"'depth' is 6, not 7") as info:
        tracker.log_params(run.id, {"depth": 7, "subsample": 0.8})
    assert info.value.extra["keys"] == ["depth"]
    # Nothing of the refused call was logged, not even the new key.
    assert dict(tracker.get_run(run.id).params) == {"depth": 6, "lr": 0.1}


def test_an_int_a_float_and_a_bool_are_different_param_values(tracker: RunTracker) -> None:
    run = tracker.start_run(params={"a": 1, "b": 1.0, "c": True})
    with pytest.raises(ConflictError, match=r"'a' is 1, not 1\.0"):
        tracker.log_params(run.id, {"a": 1.0})
    with pytest.raises(ConflictError, match=r"'b' is 1\.0, not 1"):
        tracker.log_params(run.id, {"b": 1})
    with pytest.raises(ConflictError, match=r"'c' is true, not 1"):
        tracker.log_params(run.id, {"c": 1})


def test_ended_runs_refuse_new_params_but_accept_a_repeat(tracker: RunTracker) -> None:
    run = tracker.start_run(params={"depth": 6})
    tracker.end_run(run.id)
    tracker.log_params(run.id, {"depth": 6})
    with pytest.raises(ConflictError, match=f"run {run.id} is finished; it accepts no more params"):
        tracker.log_params(run.id, {"lr": 0.1})


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"": 1}, "param", "param key ''"),
        ({"bad\nkey": 1}, "param", "param key"),
        ({"k": [1, 2]}, "params", "must be a string, number, boolean or null"),
        ({"k": float("inf")}, "params", "must be a finite number"),
        ({"k": "x" * 6001}, "params", "at most 6000 are kept"),
    ],
)
def test_bad_params_are_refused_with_the_field(
    tracker: RunTracker, params: dict[str, object], field: str, message: str
) -> None:
    run = tracker.start_run()
    with pytest.raises(InvalidError, match=message) as info:
        tracker.log_params(run.id, params)  # type: ignore[arg-type]
    assert info.value.field == field


# ---------------------------------------------------------------------- metrics


def test_latest_metric_is_the_highest_step_and_history_keeps_every_point(
    tracker: RunTracker,
) -> None:
    run = tracker.start_run()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    tracker.log_metrics(
        run.id,
        [
            Metric("loss", 0.9, 0, at),
            Metric("loss", 0.5, 2, at),
            Metric("loss", 0.7, 1, at + timedelta(seconds=5)),  # late, but an earlier step
            Metric("val/auc", 0.8, 0, at),
        ],
    )
    tracker.log_metric(run.id, "val/auc", 0.85, timestamp=at + timedelta(seconds=1))
    tracker.log_metric(run.id, "val/auc", 0.83, timestamp=at + timedelta(seconds=1))
    assert dict(tracker.get_run(run.id).metrics) == {"loss": 0.5, "val/auc": 0.83}
    history = tracker.metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert history[1].timestamp == at + timedelta(seconds=5)
    assert tracker.metric_history(run.id, "never") == []


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        (Metric("loss", float("nan"), 0, START), "metrics"),
        (Metric("loss", float("inf"), 0, START), "metrics"),
        (Metric("loss", True, 0, START), "metrics"),
        (Metric("loss", 1.0, -1, START), "step"),
        (Metric("loss", 1.0, 0, datetime(2026, 1, 1)), "timestamp"),
        (Metric("", 1.0, 0, START), "metric"),
    ],
)
def test_bad_metrics_are_refused_and_none_of_the_batch_is_logged(
    tracker: RunTracker, metric: Metric, field: str
) -> None:
    run = tracker.start_run()
    with pytest.raises(InvalidError) as info:
        tracker.log_metrics(run.id, [Metric("acc", 0.5, 0, START), metric])
    assert info.value.field == field
    assert dict(tracker.get_run(run.id).metrics) == {}


def test_ended_runs_refuse_metrics(tracker: RunTracker) -> None:
    run = tracker.start_run()
    tracker.end_run(run.id, RunStatus.FAILED)
    with pytest.raises(ConflictError, match="is failed; it accepts no more metrics"):
        tracker.log_metric(run.id, "loss", 0.1)


# ---------------------------------------------------------------------- tags


def test_tags_merge_and_stay_writable_after_the_run_ended(tracker: RunTracker) -> None:
    run = tracker.start_run(tags={"team": "risk", "stage": "dev"})
    tracker.end_run(run.id)
    tracker.set_tags(run.id, {"stage": "reviewed", "note": "ok"})
    assert dict(tracker.get_run(run.id).tags) == {
        "note": "ok",
        "stage": "reviewed",
        "team": "risk",
    }


# ---------------------------------------------------------------------- datasets


def test_log_dataset_resolves_tags_and_head_to_the_exact_version_at_log_time(
    tracker: RunTracker,
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
    db: Database,
    tmp_path: Path,
) -> None:
    commit_orders(engine, tmp_path, "id,amount\n1,10\n", "id,amount\n1,10\n2,20\n")
    engine.tag("orders@v1", "production")
    run = tracker.start_run(project="fraud")
    assert tracker.log_dataset(run.id, "orders@production") == "orders@v1"
    assert tracker.log_dataset(run.id, "orders") == "orders@v2"
    # The tag moves on; what the run read does not.
    engine.tag("orders@v2", "production")
    assert tracker.log_dataset(run.id, "orders@v1") == "orders@v1"  # a repeat: no-op
    recorded = tracker.get_run(run.id).datasets
    assert [(d.ref, d.requested) for d in recorded] == [
        ("orders@v1", "orders@production"),
        ("orders@v2", "orders"),
    ]
    assert (recorded[0].dataset, recorded[0].number) == ("orders", 1)
    assert tracker.datasets_of_run(run.id) == ["orders@v1", "orders@v2"]
    ancestors = {d.node for d in lineage.ancestors(NodeRef.run(run.id), depth=1)}
    assert ancestors == {
        NodeRef.dataset_version("orders", 1),
        NodeRef.dataset_version("orders", 2),
    }
    logged = [data for kind, data in events(db) if kind == "experiments.run.dataset_logged"]
    assert [(d["dataset"], d["requested"]) for d in logged] == [
        ("orders@v1", "orders@production"),
        ("orders@v2", "orders"),
    ]


def test_log_dataset_refuses_what_does_not_exist_and_records_nothing(
    tracker: RunTracker, engine: DatasetVersioningEngine, lineage: LineageGraph, tmp_path: Path
) -> None:
    commit_orders(engine, tmp_path, "id\n1\n")
    run = tracker.start_run()
    with pytest.raises(NotFoundError, match="no dataset named 'missing'"):
        tracker.log_dataset(run.id, "missing@v1")
    with pytest.raises(NotFoundError, match="has no version v9"):
        tracker.log_dataset(run.id, "orders@v9")
    with pytest.raises(NotFoundError, match="no version, tag or root 'nope'"):
        tracker.log_dataset(run.id, "orders@nope")
    with pytest.raises(InvalidError, match="must be a string of 1 to 300 characters"):
        tracker.log_dataset(run.id, "")
    with pytest.raises(InvalidError, match="must be a string of 1 to 300 characters"):
        tracker.log_dataset(run.id, "orders@" + "x" * 294)
    assert tracker.datasets_of_run(run.id) == []
    assert NodeRef.run(run.id) not in lineage.dag()


def test_ended_runs_refuse_new_datasets_but_accept_a_repeat(
    tracker: RunTracker, engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    commit_orders(engine, tmp_path, "id\n1\n", "id\n1\n2\n")
    run = tracker.start_run()
    tracker.log_dataset(run.id, "orders@v1")
    tracker.end_run(run.id, RunStatus.KILLED)
    assert tracker.log_dataset(run.id, "orders@v1") == "orders@v1"
    with pytest.raises(ConflictError, match=f"run {run.id} is killed; it accepts no more datasets"):
        tracker.log_dataset(run.id, "orders@v2")
    assert tracker.datasets_of_run(run.id) == ["orders@v1"]


def test_without_a_resolver_only_exact_versions_are_accepted(db: Database) -> None:
    tracker = RunTracker(db)
    run = tracker.start_run()
    assert tracker.log_dataset(run.id, "orders@v3") == "orders@v3"
    for ref in ("orders@production", "orders", "orders@v0", "a b@v1"):
        with pytest.raises(InvalidError, match="not an exact version name@vN") as info:
            tracker.log_dataset(run.id, ref)
        assert info.value.field == "ref"
    assert tracker.datasets_of_run(run.id) == ["orders@v3"]


# ---------------------------------------------------------------------- models


def test_log_model_links_the_run_to_the_model_version(
    tracker: RunTracker, lineage: LineageGraph, db: Database
) -> None:
    run = tracker.start_run()
    tracker.log_model(run.id, "fraud-detector", "3")
    tracker.log_model(run.id, "fraud-detector", "3")  # a repeat: no-op
    [model] = tracker.get_run(run.id).models
    assert (model.model_name, model.version, model.ref) == (
        "fraud-detector",
        "3",
        "fraud-detector@3",
    )
    assert lineage.path(NodeRef.run(run.id), NodeRef.model_version("fraud-detector", "3"))
    logged = [data for kind, data in events(db) if kind == "experiments.run.model_logged"]
    assert [(d["model_name"], d["version"]) for d in logged] == [("fraud-detector", "3")]


def test_a_model_version_has_one_producing_run(tracker: RunTracker) -> None:
    first = tracker.start_run()
    second = tracker.start_run()
    tracker.log_model(first.id, "m", "1")
    with pytest.raises(ConflictError, match=f"model m@1 was produced by run {first.id}"):
        tracker.log_model(second.id, "m", "1")
    assert tracker.get_run(second.id).models == ()


def test_finished_runs_may_be_credited_with_a_model_but_failed_ones_may_not(
    tracker: RunTracker,
) -> None:
    finished = tracker.start_run()
    tracker.end_run(finished.id)
    tracker.log_model(finished.id, "m", "1")
    failed = tracker.start_run()
    tracker.end_run(failed.id, RunStatus.FAILED)
    with pytest.raises(ConflictError, match="is failed; it accepts no more models"):
        tracker.log_model(failed.id, "m", "2")
    assert [m.ref for m in tracker.get_run(finished.id).models] == ["m@1"]


@pytest.mark.parametrize(
    ("name", "version", "field"),
    [("", "1", "model_name"), ("a@b", "1", "model_name"), ("m", "v 1", "version")],
)
def test_bad_model_references_are_refused(
    tracker: RunTracker, name: str, version: str, field: str
) -> None:
    run = tracker.start_run()
    with pytest.raises(InvalidError) as info:
        tracker.log_model(run.id, name, version)
    assert info.value.field == field


# ---------------------------------------------------------------------- listing


def test_list_runs_filters_and_pages_newest_first(
    tracker: RunTracker, engine: DatasetVersioningEngine, tmp_path: Path
) -> None:
    commit_orders(engine, tmp_path, "id\n1\n", "id\n1\n2\n")
    a = tracker.start_run(project="fraud", params={"depth": 6, "opt": "adam"})
    b = tracker.start_run(project="fraud", params={"depth": 8, "opt": "adam"})
    c = tracker.start_run(project="churn", params={"depth": 6})
    tracker.log_dataset(a.id, "orders@v1")
    tracker.log_dataset(b.id, "orders@v2")
    tracker.log_model(b.id, "fraud", "2")
    tracker.end_run(a.id)

    def ids(**filters: object) -> list[str]:
        return [r.id for r in tracker.list_runs(**filters)]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(project="fraud") == [b.id, a.id]
    assert ids(status=RunStatus.FINISHED) == [a.id]
    assert ids(params={"depth": 6}) == [c.id, a.id]
    assert ids(params={"depth": 6, "opt": "adam"}) == [a.id]
    assert ids(params={"depth": "6"}) == []
    assert ids(dataset="orders@v2") == [b.id]
    assert ids(dataset="orders") == [b.id, a.id]
    assert ids(dataset="order") == []
    assert ids(model="fraud") == [b.id]
    assert ids(model="fraud@2") == [b.id]
    assert ids(model="fraud@3") == []
    assert ids(limit=2) == [c.id, b.id]
    assert ids(limit=2, offset=2) == [a.id]
    listed = tracker.list_runs(project="fraud")
    assert listed[1].dataset_refs == ("orders@v1",)
    assert listed[0].models[0].ref == "fraud@2"


@pytest.mark.parametrize(
    ("limit", "offset", "field"), [(0, 0, "limit"), (1001, 0, "limit"), (1, -1, "offset")]
)
def test_list_runs_refuses_bad_paging(
    tracker: RunTracker, limit: int, offset: int, field: str
) -> None:
    with pytest.raises(InvalidError) as info:
        tracker.list_runs(limit=limit, offset=offset)
    assert info.value.field == field


# ---------------------------------------------------------------------- races


class InterleavingLinker:
    """The real lineage graph, running ``meanwhile`` once just after the first link.

    The tracker links before it writes its own row; this puts a concurrent caller exactly in
    that gap.
    """

    def __init__(self, lineage: LineageGraph, meanwhile: Callable[[], object]) -> None:
        self.lineage = lineage
        self.meanwhile: Callable[[], object] | None = meanwhile

    def link(self, source: NodeRef, target: NodeRef) -> None:
        self.lineage.link(source, target)
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()


def test_a_dataset_logged_concurrently_is_recorded_once(
    tracker: RunTracker, db: Database, lineage: LineageGraph
) -> None:
    run = tracker.start_run()
    racing = RunTracker(
        db,
        lineage=InterleavingLinker(
            lineage, lambda: RunTracker(db).log_dataset(run.id, "orders@v1")
        ),
    )
    assert racing.log_dataset(run.id, "orders@v1") == "orders@v1"
    assert tracker.datasets_of_run(run.id) == ["orders@v1"]


def test_a_model_logged_concurrently_by_the_same_run_is_recorded_once(
    tracker: RunTracker, db: Database, lineage: LineageGraph
) -> None:
    run = tracker.start_run()
    racing = RunTracker(
        db, lineage=InterleavingLinker(lineage, lambda: tracker.log_model(run.id, "m", "1"))
    )
    racing.log_model(run.id, "m", "1")
    assert [m.ref for m in tracker.get_run(run.id).models] == ["m@1"]


def test_a_model_claimed_concurrently_by_another_run_is_a_conflict(
    tracker: RunTracker, db: Database, lineage: LineageGraph
) -> None:
    first, second = tracker.start_run(), tracker.start_run()
    racing = RunTracker(
        db, lineage=InterleavingLinker(lineage, lambda: tracker.log_model(first.id, "m", "1"))
    )
    with pytest.raises(ConflictError, match=f"model m@1 was produced by run {first.id}"):
        racing.log_model(second.id, "m", "1")
    assert tracker.get_run(second.id).models == ()


def test_parallel_claims_of_one_model_version_leave_one_producer(tracker: RunTracker) -> None:
    runs = [tracker.start_run() for _ in range(4)]
    barrier = threading.Barrier(len(runs))
    outcomes: list[str] = []

    def claim(run_id: str) -> None:
        barrier.wait()
        try:
            tracker.log_model(run_id, "m", "1")
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=claim, args=(r.id,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]
    producers = [r.id for r in runs if tracker.get_run(r.id).models]
    assert len(producers) == 1
    assert tracker.list_runs(model="m@1")[0].id == producers[0]


def test_logging_racing_the_end_of_a_run_lands_before_it_or_is_refused(
    tracker: RunTracker,
) -> None:
    run = tracker.start_run()
    barrier = threading.Barrier(2)
    refused: list[int] = []

    def log() -> None:
        barrier.wait()
        for step in range(50):
            try:
                tracker.log_metric(run.id, "loss", 1.0 / (step + 1), step=step)
            except ConflictError:
                refused.append(step)
                return

    def end() -> None:
        barrier.wait()
        tracker.end_run(run.id)

    threads = [threading.Thread(target=log), threading.Thread(target=end)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ended = tracker.get_run(run.id)
    assert ended.ended_at is not None
    history = tracker.metric_history(run.id, "loss")
    # Every point that was accepted was written before the run ended; none after.
    assert all(m.timestamp < ended.ended_at for m in history)
    assert len(history) == (refused[0] if refused else 50)


def test_params_and_tags_must_be_mappings(tracker: RunTracker) -> None:
    run = tracker.start_run()
    with pytest.raises(InvalidError, match="params must be a mapping") as info:
        tracker.log_params(run.id, [("a", 1)])  # type: ignore[arg-type]
    assert info.value.field == "params"
    with pytest.raises(InvalidError, match="tags must be a mapping") as info:
        tracker.set_tags(run.id, "team=risk")  # type: ignore[arg-type]
    assert info.value.field == "tags"


# Batches of (key, value, step, seconds) points; few keys, steps and times, so ties are common.
_POINTS = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["loss", "auc"]),
            st.floats(-10, 10, allow_nan=False),
            st.integers(0, 3),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=_POINTS)
def test_latest_metric_is_the_last_logged_of_the_highest_step_then_newest(
    tracker: RunTracker, batches: list[list[tuple[str, float, int, int]]]
) -> None:
    run = tracker.start_run()
    # Oracle: every point with its logging order; the latest is the maximum of (step, time,
    # order), the history is all of them sorted that way.
    logged: dict[str, list[tuple[int, int, int, float]]] = {}
    for batch in batches:
        points = []
        for key, value, step, seconds in batch:
            points.append(Metric(key, value, step, START + timedelta(seconds=seconds)))
            order = sum(len(v) for v in logged.values())
            logged.setdefault(key, []).append((step, seconds, order, value))
        tracker.log_metrics(run.id, points)
    assert dict(tracker.get_run(run.id).metrics) == {k: max(v)[3] for k, v in logged.items()}
    for key, points_of_key in logged.items():
        history = tracker.metric_history(run.id, key)
        assert [(m.step, m.timestamp, m.value) for m in history] == [
            (step, START + timedelta(seconds=seconds), value)
            for step, seconds, _, value in sorted(points_of_key)
        ]
