"""``synapsenet.Client``: every service through one object, over the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from sklearn.linear_model import LogisticRegression

import synapsenet
from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import InvalidError
from synapsenet.gateway import create_app
from synapsenet.sdk import DEFAULT_URL, Client, default_api_key
from synapsenet.services.experiments import RunStatus

FEATURES = ("a", "b")


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def client(app: FastAPI, platform: Platform) -> Iterator[Client]:
    token = platform.keys.create(Role.OPERATOR, name="sdk").token
    with Client("http://synapsenet.internal", token, transport=InProcessTransport(app)) as sdk:
        yield sdk


def test_the_package_exports_the_client_and_start_run_lazily() -> None:
    assert synapsenet.Client is Client
    assert callable(synapsenet.start_run)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = synapsenet.nope


def test_url_and_key_default_to_the_environment_then_the_local_admin_key(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert default_api_key() is None  # no variable, no key file yet
    key_file = tmp_path / ".synapsenet" / "admin.key"
    key_file.parent.mkdir()
    key_file.write_text("snk_local_admin\n")
    assert default_api_key() == "snk_local_admin"
    monkeypatch.setenv("SYNAPSENET_API_KEY", "snk_from_env")
    assert default_api_key() == "snk_from_env"
    with Client() as sdk:
        assert sdk.url == DEFAULT_URL
    monkeypatch.setenv("SYNAPSENET_URL", "http://models.internal:9000")
    with Client() as sdk:
        assert sdk.url == "http://models.internal:9000"


def test_a_tracked_run_logs_a_model_that_then_serves_predictions_and_outcomes(
    client: Client, app: FastAPI
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    with client.start_run(project="sdk", name="first", params={"C": 1.0}) as run:
        version = client.log_model(
            "sdk-model", model, feature_names=FEATURES, run_id=run.id, background=x[:20]
        )
        again = client.log_model("sdk-model", model, feature_names=FEATURES)  # model exists
        run.log_model("sdk-model", version.version)
    assert (version.version, again.version) == ("1", "2")
    assert client.runs.get_run(run.id).status is RunStatus.FINISHED
    client.models.promote("sdk-model", "1", reason="first")
    answer = client.predict("sdk-model", [[1.0, 0.0], [-1.0, 0.0]], explain=True)
    assert answer.model_version == "1"
    assert answer.predictions == ["1", "0"]
    assert answer.explanation is not None

    spec: dict[str, Any] = {
        "name": "sdk-canary",
        "model_name": "sdk-model",
        "variants": [
            {"name": "control", "model_version": "1", "weight": "0", "is_control": True},
            {"name": "canary", "model_version": "2", "weight": "1"},
        ],
        "metrics": [{"name": "error", "kind": "binary", "direction": "lower"}],
    }
    experiment = client.experiments.create_experiment(spec)
    client.experiments.start(experiment.id)
    served = client.predict("sdk-model", [[0.5, 0.5]], unit_id="u1", version=None)
    assert (served.variant, served.model_version) == ("canary", "2")
    counted = client.record_outcome(
        "sdk-canary", metric="error", value=0.0, request_id=served.request_id, unit_id="u1"
    )
    assert counted.accepted == 1
    by_unit = client.record_outcome("sdk-canary", metric="error", value=1.0, unit_id="u1")
    assert by_unit.accepted == 1
    results = client.experiments.results(experiment.id)
    error = next(m for m in results.metrics if m.metric == "error")
    assert (error.treatment_n, error.treatment_mean) == (2, 0.5)


def test_a_model_without_a_safe_format_is_refused(client: Client) -> None:
    with pytest.raises(InvalidError):
        client.log_model("sdk-model", object(), feature_names=FEATURES)
