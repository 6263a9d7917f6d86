"""``synapsenet models`` against a real uvicorn server."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.services.registry.flavors import serialize
from synapsenet.services.registry.models import ModelFlavor
from tests.fixtures.live_server import Server
from tests.services.registry.conftest import logistic_regression

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


def run(server: Server, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def test_register_show_and_move_versions(live_server: Server, tmp_path: Path) -> None:
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(serialize(logistic_regression(), ModelFlavor.SKLEARN))
    background = tmp_path / "background.npy"
    np.save(background, np.zeros((3, 3)), allow_pickle=False)
    common = ["--file", str(artifact), "--flavor", "sklearn"]
    code, out, err = run(
        live_server,
        "register",
        "churn",
        *common,
        "--features",
        "age,income,tenure",
        "--output-kind",
        "probability",
        "--output-names",
        "0,1",
        "--metric",
        "auc=0.91",
        "--dataset",
        "customers@v3",
        "--run-id",
        "run-9",
        "--background",
        str(background),
    )
    assert code == 0, err
    assert "Registered churn@1 (sklearn" in out
    signature = tmp_path / "signature.json"
    signature.write_text(
        json.dumps({"feature_names": ["age", "income", "tenure"], "output_kind": "probability"})
    )
    code, out, err = run(
        live_server, "register", "churn", *common, "--signature", str(signature), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["version"] == "2"

    code, out, err = run(live_server, "list")
    assert code == 0, err
    assert "churn" in out

    code, out, err = run(live_server, "stage", "churn", "1", "staging", "--reason", "review")
    assert (code, out.strip()) == (0, "churn@1 is staging."), err
    code, out, err = run(live_server, "promote", "churn", "1", "--reason", "ship")
    assert (code, out.strip()) == (0, "churn@1 is now in production."), err
    code, out, err = run(live_server, "show", "churn")
    assert code == 0, err
    assert "production" in out
    assert "auc=0.91" in out
    code, out, err = run(live_server, "show", "churn", "1")
    assert code == 0, err
    assert "customers@v3" in out
    assert "age (numeric)" in out
    code, out, err = run(live_server, "show", "churn", "1", "--json")
    assert json.loads(out)["run_id"] == "run-9"
    code, out, err = run(live_server, "demote", "churn", "1", "--reason", "regression")
    assert (code, out.strip()) == (0, "churn@1 is archived."), err
    code, out, _ = run(live_server, "list", "--json")
    assert json.loads(out)[0]["production_version"] is None
    code, out, _ = run(live_server, "show", "churn", "--json")
    assert [v["stage"] for v in json.loads(out)] == ["archived", "none"]


def test_bad_input_is_one_red_line(live_server: Server, tmp_path: Path) -> None:
    code, out, _ = run(live_server, "list")
    assert (code, out.strip()) == (0, "No models.")
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"w": 1}))
    base = ["register", "custom", "--file", str(pickled), "--flavor", "pickle"]
    code, _, err = run(live_server, *base, "--features", "a", "--output-kind", "regression")
    assert code == 1
    assert "trusted" in err
    code, out, err = run(live_server, "show", "custom")
    assert (code, out.strip()) == (0, "Model custom has no versions yet."), err
    code, _, err = run(live_server, *base)
    assert code == 1
    assert "--signature FILE" in err
    code, _, err = run(
        live_server, *base, "--features", "a", "--output-kind", "regression", "--metric", "auc"
    )
    assert code == 1
    assert "name=value" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, _, err = run(live_server, *base, "--signature", str(broken))
    assert code == 1
    assert "not valid JSON" in err
    broken.write_text("[1, 2]")
    code, _, err = run(live_server, *base, "--signature", str(broken))
    assert code == 1
    assert "JSON object" in err
    code, out, err = run(
        live_server, *base, "--features", "a", "--output-kind", "regression", "--trusted"
    )
    assert code == 0, err
    assert "Registered custom@1 (pickle" in out
    code, _, err = run(live_server, "promote", "custom", "9", "--reason", "x")
    assert code == 1
    assert "no version '9'" in err
