"""``synapsenet runs`` against a real uvicorn server on a free port."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.services.experiments import RunStatus, RunTracker, start_run
from tests.fixtures.live_server import Server
from tests.fixtures.redis import wait_until

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


def run(server: Server, *args: str) -> tuple[int, str, str]:
    wait_until(
        lambda: server.platform.relay.pending_count() == 0,
        timeout=20,
        message="the outbox to drain",
    )
    result = runner.invoke(app, ["runs", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def test_list_and_show_runs(live_server: Server) -> None:
    tracker = RunTracker(live_server.platform.db)
    with start_run(
        tracker, project="fraud", name="xgb-6", params={"depth": 6, "opt": "adam"}
    ) as first:
        first.log_metrics({"auc": 0.91, "loss": 0.2, "f1": 0.7, "recall": 0.6}, step=2)
        first.log_dataset("orders@v3")
        first.log_model("fraud-detector", "5")
        first.set_tag("team", "risk")
    second = tracker.start_run(project="churn", name="lr", params={"depth": 2})

    code, out, err = run(live_server, "list")
    assert code == 0, err
    assert out.index(second.id) < out.index(first.id)
    assert "xgb-6" in out
    assert "finished" in out
    assert "running" in out
    assert "auc=0.91, f1=0.7, loss=0.2 (+1)" in out
    assert "orders@v3" in out
    assert "fraud-detector@5" in out

    code, out, err = run(live_server, "list", "--project", "fraud", "--param", "opt=adam")
    assert code == 0, err
    assert first.id in out
    assert second.id not in out
    code, out, err = run(live_server, "list", "--status", "finished", "--project", "churn")
    assert (code, out.strip()) == (0, "No runs.")

    code, out, err = run(live_server, "list", "--dataset", "orders", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [first.id]

    code, out, err = run(live_server, "show", first.id)
    assert code == 0, err
    assert f"Run xgb-6 ({first.id}) in project fraud: finished" in out
    for text in ('"adam"', "0.91", "team", "risk", "orders@v3", "logged as orders@v3"):
        assert text in out
    assert "fraud-detector@5" in out

    code, out, err = run(live_server, "show", second.id, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["status"], shown["params"]) == (RunStatus.RUNNING.value, {"depth": 2})
    code, out, _ = run(live_server, "show", second.id)
    assert "No metrics." in out
    assert "No datasets." in out
    assert "No models." in out


def test_an_unknown_run_is_one_error_line(live_server: Server) -> None:
    code, out, err = run(live_server, "show", "ghost")
    assert code == 1
    assert out == ""
    assert err.strip() == "error: no run with id 'ghost'"
