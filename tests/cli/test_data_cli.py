"""``synapsenet data`` against a real uvicorn server on a free port."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.core.auth import Role
from tests.fixtures.live_server import Server
from tests.fixtures.redis import wait_until
from tests.services.dataversion.api_fixtures import orders_csv

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


@pytest.fixture
def server(live_server: Server) -> Server:
    return live_server


def run(server: Server, *args: str) -> tuple[int, str, str]:
    # Each write waits for the relay: it competes with requests for SQLite's write lock.
    wait_until(
        lambda: server.platform.relay.pending_count() == 0,
        timeout=20,
        message="the outbox to drain",
    )
    result = runner.invoke(app, ["data", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def test_commit_log_diff_checkout_lineage_and_deprecate(server: Server, tmp_path: Path) -> None:
    code, out, err = run(server, "create", "orders", "--format", "csv", "--description", "raw")
    assert code == 0, err
    assert "Created dataset orders (csv, backward compatibility)." in out

    source = tmp_path / "orders.csv"
    source.write_bytes(orders_csv(3_000))
    code, out, err = run(server, "commit", str(source), "-d", "orders", "-m", "first export")
    assert code == 0, err
    assert "Committed orders@v1 (1 file," in out
    assert "3,000 rows" in out
    assert "uploading" in out  # the progress bar's last frame

    source.write_bytes(orders_csv(3_030))
    code, out, err = run(server, "commit", str(source), "-d", "orders", "-t", "golden")
    assert code == 0, err
    assert "Committed orders@v2" in out
    assert "[golden]" in out
    code, out, _ = run(server, "commit", str(source), "-d", "orders")
    assert code == 0
    assert "Nothing changed: the content equals orders@v2" in out

    tree = tmp_path / "tree"
    (tree / "2024").mkdir(parents=True)
    (tree / "2024" / "jan.csv").write_bytes(orders_csv(10))
    (tree / "feb.csv").write_bytes(orders_csv(10, start=10))
    code, out, err = run(server, "create", "monthly", "-f", "csv")
    assert code == 0, err
    code, out, err = run(server, "commit", str(tree), "-d", "monthly", "-m", "by month")
    assert code == 0, err
    assert "Committed monthly@v1 (2 files," in out

    code, out, _ = run(server, "list")
    assert code == 0
    assert "monthly" in out
    assert "orders" in out
    code, out, _ = run(server, "log", "orders")
    assert code == 0
    lines = [line for line in out.splitlines() if " v1 " in line or " v2 " in line]
    assert "v2" in lines[0]
    assert "first export" in lines[1]
    code, out, _ = run(server, "log", "orders", "--json")
    assert [v["number"] for v in json.loads(out)] == [2, 1]

    code, out, _ = run(server, "show", "orders@golden")
    assert code == 0
    assert "orders@v2 (1 file," in out
    assert "amount" in out
    assert "orders.csv" in out
    code, out, _ = run(server, "show", "orders@v1", "--json")
    assert json.loads(out)["rows"] == 3_000

    code, out, _ = run(server, "diff", "orders@v1", "v2")
    assert code == 0
    assert "~ orders.csv" in out
    assert "rows: +30 -0" in out
    code, out, _ = run(server, "diff", "orders@v1", "orders@v2", "--json")
    assert json.loads(out)["rows_added"] == 30

    restore = tmp_path / "restore"
    code, out, err = run(server, "checkout", "orders@v1", str(restore))
    assert code == 0, err
    assert "Checked out 1 file(s) of orders@v1" in out
    assert "every BLAKE3 matched" in out
    assert (restore / "orders.csv").read_bytes() == orders_csv(3_000)
    code, _, err = run(server, "checkout", "orders@v2", str(restore))
    assert code == 1
    assert "exist already" in err
    code, out, err = run(server, "checkout", "orders@v2", str(restore), "--force")
    assert code == 0, err
    assert (restore / "orders.csv").read_bytes() == source.read_bytes()
    code, out, err = run(
        server, "checkout", "monthly", str(tmp_path / "months"), "--path", "2024/jan.csv"
    )
    assert code == 0, err
    assert (tmp_path / "months" / "2024" / "jan.csv").read_bytes() == orders_csv(10)
    assert not (tmp_path / "months" / "feb.csv").exists()

    code, out, _ = run(server, "tag", "orders@v1", "production")
    assert code == 0
    assert "Tagged orders@v1" in out
    code, out, _ = run(server, "untag", "orders", "golden")
    assert code == 0
    now = datetime.now(UTC).isoformat()
    code, out, err = run(server, "as-of", "orders", now)
    assert code == 0, err
    assert "orders@v2" in out
    code, _, err = run(server, "as-of", "orders", "2024-05-01T12:00:00")
    assert code == 1
    assert "no time zone" in err

    code, out, err = run(server, "link", "dataset:orders@v1", "run:train-7")
    assert code == 0, err
    code, out, _ = run(server, "link", "run:train-7", "model:fraud@3")
    assert code == 0
    code, out, _ = run(server, "lineage", "orders@production", "--down")
    assert code == 0
    assert "dataset:orders@v1" in out
    assert "run:train-7" in out
    assert "model:fraud@3" in out
    assert out.index("run:train-7") < out.index("model:fraud@3")
    code, out, _ = run(server, "lineage", "model:fraud@3")
    assert code == 1  # a model is not a dataset version
    code, out, _ = run(server, "lineage", "orders@v1", "--down", "--format", "mermaid")
    assert code == 0
    assert out.startswith(("flowchart", "graph"))
    code, out, _ = run(server, "lineage", "orders@v1", "--format", "dot")
    assert "digraph" in out
    code, out, _ = run(server, "impact", "dataset:orders@v1")  # as lineage prints it
    assert code == 0
    assert "experiment runs: run:train-7" in out
    assert "model versions: model:fraud@3" in out

    code, out, _ = run(server, "verify", "orders@v2")
    assert code == 0
    assert "orders@v2 is intact: 1 file(s)" in out
    code, out, err = run(server, "deprecate", "orders@v1", "--reason", "duplicated rows")
    assert code == 0, err
    assert "Deprecated orders@v1" in out
    assert "run:train-7" in out
    code, out, _ = run(server, "log", "orders")
    assert "(deprecated)" in out
    code, out, _ = run(server, "gc", "--dry-run", "--grace", "0")
    assert code == 0
    assert out.startswith("Would delete 0 chunk(s)")


def test_errors_are_one_line_and_exit_1(server: Server, tmp_path: Path) -> None:
    code, out, err = run(server, "log", "missing")
    assert code == 1
    assert out == ""
    assert err.strip() == "error: no dataset named 'missing'"

    source = tmp_path / "orders.csv"
    source.write_bytes(orders_csv(10))
    code, _, err = run(server, "commit", str(source), "-d", "missing")
    assert code == 1
    assert err.strip() == "error: no dataset named 'missing'"
    assert run(server, "create", "orders", "-f", "csv")[0] == 0
    code, _, err = run(server, "commit", str(source), "-d", "orders", "--path", "../x.csv")
    assert code == 1
    assert "'..' segment" in err
    assert run(server, "commit", str(source), "-d", "orders")[0] == 0
    source.write_bytes(b"id,customer,amount\n1,c,lots\n")
    code, _, err = run(server, "commit", str(source), "-d", "orders")
    assert code == 1
    assert err.startswith("error: The new schema breaks the BACKWARD compatibility")
    assert "amount" in err
    code, _, err = run(server, "diff", "orders@v1", "other@v2")
    assert (code, err.strip()) == (
        1,
        "error: diff compares two versions of one dataset, not orders and other",
    )

    viewer = server.platform.keys.create(Role.VIEWER, name="cli viewer").token
    code, _, err = run(server, "create", "other", "-f", "csv", "--api-key", viewer)
    assert code == 1
    assert err.startswith("error: a viewer key may not POST")
    code, out, _ = run(server, "log", "orders", "--api-key", viewer)
    assert code == 0
    assert "v1" in out
