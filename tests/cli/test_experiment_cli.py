"""``synapsenet experiment`` against a real uvicorn server on a free port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.core.auth import Role
from synapsenet.services.abtesting.client import ABTestingClient
from tests.fixtures.live_server import Server, free_port
from tests.fixtures.redis import wait_until
from tests.services.abtesting.api_fixtures import binary_outcomes, exposures, spec_body

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


@pytest.fixture
def server(live_server: Server) -> Server:
    return live_server


def run(server: Server, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["experiment", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def test_create_list_start_results_decisions(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_body(canary_weight="0.5")))
    code, out, err = run(server, "create", "--file", str(spec))
    assert code == 0, err
    match = re.search(r"fraud-canary \(([0-9a-f]{16})\) created; status draft", out)
    assert match is not None, out
    experiment_id = match.group(1)
    assert "control" in out
    assert "canary" in out

    code, out, _ = run(server, "list")
    assert code == 0
    assert experiment_id in out
    assert "draft" in out
    assert "control 0.5 / canary 0.5" in out

    code, out, _ = run(server, "start", experiment_id)
    assert code == 0
    assert "started; status running" in out
    code, out, _ = run(server, "assign", "fraud-canary", "user-1")
    assert code == 0
    assert re.match(r"user-1 -> (control|canary) \(model version v[12]\)", out), out

    wait_until(
        lambda: server.platform.relay.pending_count() == 0,
        timeout=20,
        message="the start event to be relayed",
    )
    admin = server.platform.settings.admin_key_path.read_text().strip()
    with ABTestingClient(server.url, api_key=admin) as client:
        batch = (
            exposures("a", "control", 400)
            + exposures("a", "canary", 400)
            + binary_outcomes("a", "control", "conversion", n=400, successes=40)
            + binary_outcomes("a", "canary", "conversion", n=400, successes=80)
            + binary_outcomes("a", "control", "error", n=400, successes=8)
            + binary_outcomes("a", "canary", "error", n=400, successes=9)
        )
        assert client.ingest(experiment_id, batch, batch_id="a").accepted == len(batch)

    code, out, err = run(server, "results", experiment_id)
    assert code == 0, err
    assert "sequential (always valid), alpha 0.05, holm correction" in out
    assert "conversion (binary, higher is better)" in out
    assert "error (binary, lower is better, guardrail)" in out
    conversion_row = next(line for line in out.splitlines() if "400 / 400" in line)
    assert "0.1 -> 0.2" in conversion_row
    assert "+100.00%" in conversion_row
    assert "better" in conversion_row
    assert "SRM: ok" in out
    assert "observed 400 / 400" in out
    assert "latency_ms" in out
    assert "canary: " in out  # the no-data note under the latency table

    code, out, _ = run(server, "results", experiment_id, "--json", "--fixed-horizon")
    assert code == 0
    page = json.loads(out)
    assert page["sequential"] is False
    conversion = next(m for m in page["metrics"] if m["metric"] == "conversion")
    assert conversion["absolute_lift"]["estimate"] == pytest.approx(0.1)

    code, out, _ = run(server, "check", experiment_id)
    assert code == 0
    assert "guardrails: " in out
    code, out, _ = run(server, "rollback", experiment_id, "--reason", "pager alert")
    assert code == 0
    assert "rolled back; status rolled_back" in out
    code, out, _ = run(server, "decisions", experiment_id)
    assert code == 0
    assert "rollback" in out
    assert "pager alert" in out
    assert "guardrail" in out
    code, out, _ = run(server, "show", experiment_id, "--json")
    assert json.loads(out)["status"] == "rolled_back"


def test_errors_are_one_line_and_exit_1(server: Server, tmp_path: Path) -> None:
    code, out, err = run(server, "show", "missing")
    assert code == 1
    assert out == ""
    assert err.strip() == "error: no experiment with id or name 'missing'"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec_body(coverage="2")))
    code, _, err = run(server, "create", "--file", str(bad))
    assert code == 1
    assert err.startswith("error: coverage must be")
    bad.write_text("{not json")
    code, _, err = run(server, "create", "--file", str(bad))
    assert code == 1
    assert "is not valid JSON" in err
    assert len(err.strip().splitlines()) == 1

    viewer = server.platform.keys.create(Role.VIEWER, name="cli viewer").token
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_body()))
    code, _, err = run(server, "create", "--file", str(spec), "--api-key", viewer)
    assert code == 1
    assert err.startswith("error: a viewer key may not POST")
    code, _, _ = run(server, "create", "--file", str(spec))
    assert code == 0
    code, _, err = run(server, "pause", "fraud-canary")
    assert code == 1
    assert err.strip() == "error: cannot move experiment 'fraud-canary' from draft to paused"


def test_an_unreachable_server_is_one_error_line() -> None:
    port = free_port()
    result = runner.invoke(
        app, ["experiment", "list", "--url", f"http://127.0.0.1:{port}", "--api-key", "k"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: GET http://127.0.0.1:")
    assert "Traceback" not in result.output
