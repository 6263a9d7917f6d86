"""``synapsenet explain`` against a real uvicorn server with a model on disk."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.config import Settings
from tests.fixtures.live_server import Server
from tests.services.explainability.service_fixtures import FEATURES, training_rows
from tests.services.explainability.test_service import write_lightgbm_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


@pytest.fixture
def server(live_server: Server) -> Server:
    return live_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded settings with a LightGBM model under ``<data dir>/models/credit/2``."""
    configured = Settings(_env_file=None, data_dir=tmp_path / ".synapsenet")
    write_lightgbm_model(configured.data_dir / "models")
    return configured


def run(server: Server, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["explain", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def test_run_job_importance_and_plot(server: Server, tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.csv"
    with rows_file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FEATURES)
        writer.writerows(training_rows()[:30].tolist())

    code, out, err = run(server, "run", "credit", "2", "--file", str(rows_file), "--top", "2")
    assert code == 0, err
    assert "shap_tree" in out
    assert "age" in out

    code, out, err = run(server, "job", "submit", "credit", "2", "--file", str(rows_file))
    assert code == 0, err
    match = re.search(r"job ([0-9a-f]{24})", out)
    assert match is not None, out
    job_id = match.group(1)

    code, out, err = run(server, "job", "status", job_id, "--wait")
    assert code == 0, err
    assert "succeeded 100%" in out

    code, out, err = run(server, "importance", job_id)
    assert code == 0, err
    assert out.index("age") < out.index("noise")

    image = tmp_path / "importance.png"
    code, out, err = run(server, "plot", job_id, "--out", str(image))
    assert code == 0, err
    assert image.read_bytes().startswith(b"\x89PNG")


def test_unknown_model_is_one_red_line(server: Server, tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.json"
    rows_file.write_text("[[1, 2, 3, 4]]")
    code, _, err = run(server, "run", "credit", "7", "--file", str(rows_file))
    assert code == 1
    assert "no model 'credit' version '7'" in err
