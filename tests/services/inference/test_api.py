"""``/v1/models/{name}/predict`` through the real gateway app: registry, routing, outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.gateway import create_app
from synapsenet.services.inference.client import InferenceClient
from synapsenet.services.registry.registry import ModelRegistry

FEATURES = ("debt", "income", "age")
BASE = "/v1/models"
EXPERIMENTS = "/v1/abtesting/experiments"


def training(n: int = 400) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def registry(app: FastAPI) -> ModelRegistry:
    registry: ModelRegistry = app.state.services["registry"].registry
    x, y = training()
    background = x[:40]
    baseline = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y)
    candidate = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
    registry.log_model("credit", baseline, feature_names=FEATURES, background=background)
    registry.log_model("credit", candidate, feature_names=FEATURES, background=background)
    registry.promote("credit", "1", reason="first model")
    return registry


@pytest.fixture
def http(app: FastAPI, platform: Platform) -> Iterator[TestClient]:
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = platform.keys.create(Role.OPERATOR, name="ops").token
    yield client
    client.close()


def predict(http: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("instances", training(3)[0].tolist())
    response = http.post(f"{BASE}/credit/predict", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def start_canary(http: TestClient, canary_weight: str = "1") -> str:
    control_weight = "0" if canary_weight == "1" else str(1 - float(canary_weight))
    spec = {
        "name": "credit-canary",
        "model_name": "credit",
        "variants": [
            {"name": "control", "model_version": "1", "weight": control_weight, "is_control": True},
            {"name": "canary", "model_version": "2", "weight": canary_weight},
        ],
        "metrics": [{"name": "default", "kind": "binary", "direction": "lower"}],
    }
    created = http.post(EXPERIMENTS, json=spec)
    assert created.status_code == 201, created.text
    experiment_id: str = created.json()["id"]
    assert http.post(f"{EXPERIMENTS}/{experiment_id}/start").status_code == 200
    return experiment_id


def test_the_production_version_serves_when_no_experiment_runs(
    http: TestClient, registry: ModelRegistry, app: FastAPI
) -> None:
    x = training(5)[0]
    body = predict(http, instances=x.tolist(), unit_id="alice")
    assert (body["model"], body["model_version"], body["route"]) == ("credit", "1", "production")
    assert (body["experiment_id"], body["variant"], body["exposure"]) == (None, None, False)
    assert body["kind"] == "classification"
    assert body["output_names"] == ["0", "1"]
    baseline = app.state.services["registry"].loader.load("credit", "1").model
    np.testing.assert_allclose(body["outputs"], baseline.predict_proba(x), rtol=1e-12)
    assert body["predictions"] == [str(label) for label in baseline.predict(x)]
    assert set(body["timings_ms"]) == {"route", "load", "predict", "total"}


def test_the_request_id_is_the_gateways(http: TestClient, registry: ModelRegistry) -> None:
    response = http.post(
        f"{BASE}/credit/predict",
        json={"instances": [[0.1, 0.2, 0.3]]},
        headers={"X-Request-ID": "req-from-caller"},
    )
    assert response.json()["request_id"] == "req-from-caller"
    assert response.headers["X-Request-ID"] == "req-from-caller"


def test_an_experiment_routes_units_and_outcomes_follow_their_request(
    http: TestClient, registry: ModelRegistry, app: FastAPI
) -> None:
    experiment_id = start_canary(http)
    body = predict(http, unit_id="alice", explain=True)
    assert (body["model_version"], body["route"], body["variant"]) == ("2", "experiment", "canary")
    assert body["experiment_id"] == experiment_id
    assert body["exposure"] is True
    explanation = body["explanation"]
    assert (explanation["model"], explanation["version"]) == ("credit", "2")
    assert len(explanation["values"]) == 3
    outcome = {
        "event_id": "outcome-1",
        "unit_id": "alice",
        "request_id": body["request_id"],
        "time": datetime.now(UTC).isoformat(),
        "metric": "default",
        "value": 1.0,
    }
    ingested = http.post(f"{EXPERIMENTS}/{experiment_id}/events", json={"observations": [outcome]})
    assert ingested.status_code == 200, ingested.text
    results = http.get(f"{EXPERIMENTS}/{experiment_id}/results").json()
    exposures = {v["name"]: v["exposures"] for v in results["variants"]}
    assert exposures == {"control": 0, "canary": 1}
    metric = next(m for m in results["metrics"] if m["metric"] == "default")
    assert (metric["control_n"], metric["treatment_n"]) == (0, 1)
    # A pinned version bypasses the experiment and is no exposure.
    pinned = predict(http, unit_id="alice", version="1")
    assert (pinned["model_version"], pinned["route"], pinned["exposure"]) == ("1", "pinned", False)
    metrics = generate_latest(app.state.platform.metrics).decode()
    assert 'synapsenet_predictions_total{model="credit",route="experiment",version="2"} 3.0' in (
        metrics
    )


def test_a_rollback_demotes_the_canary_and_traffic_returns_to_production(
    http: TestClient, registry: ModelRegistry, app: FastAPI
) -> None:
    experiment_id = start_canary(http)
    assert predict(http, unit_id="bob")["model_version"] == "2"
    rolled = http.post(
        f"{EXPERIMENTS}/{experiment_id}/rollback", json={"reason": "default rate up"}
    )
    assert rolled.status_code == 200, rolled.text
    consumer = app.state.services["registry"]
    consumer.start()  # what the app's lifespan does
    try:
        app.state.platform.relay.drain()  # the rollback event reaches the registry
    finally:
        consumer.stop()
    assert registry.get_version("credit", "2").stage.value == "archived"
    assert registry.get_version("credit", "1").stage.value == "production"
    after = predict(http, unit_id="bob")
    assert (after["model_version"], after["route"], after["exposure"]) == ("1", "production", False)


def test_errors_are_problems_naming_what_is_wrong(
    http: TestClient, registry: ModelRegistry, app: FastAPI
) -> None:
    unknown = http.post(f"{BASE}/nope/predict", json={"instances": [[1, 2, 3]]})
    assert unknown.status_code == 404
    short = http.post(f"{BASE}/credit/predict", json={"instances": [[1, 2]]})
    assert (short.status_code, short.json()["field"]) == (422, "instances")
    empty = http.post(f"{BASE}/credit/predict", json={"instances": []})
    assert empty.status_code == 422
    missing = http.post(f"{BASE}/credit/predict", json={"instances": [[1, 2, 3]], "version": "9"})
    assert missing.status_code == 404
    viewer = app.state.platform.keys.create(Role.VIEWER, name="viewer").token
    refused = http.post(
        f"{BASE}/credit/predict", json={"instances": [[1, 2, 3]]}, headers={"X-API-Key": viewer}
    )
    assert refused.status_code == 403


def test_the_client_predicts_and_maps_errors(
    app: FastAPI, registry: ModelRegistry, platform: Platform
) -> None:
    token = platform.keys.create(Role.OPERATOR, name="client").token
    with InferenceClient(
        "http://synapsenet.internal", api_key=token, transport=InProcessTransport(app)
    ) as client:
        records = [dict(zip(FEATURES, row, strict=True)) for row in training(2)[0].tolist()]
        answer = client.predict("credit", records, unit_id="carol", explain=True)
        assert answer.model_version == "1"
        assert answer.explanation is not None
        assert len(answer.predictions) == 2
        pinned = client.predict("credit", records, version="2")
        assert pinned.route == "pinned"
        with pytest.raises(NotFoundError):
            client.predict("nope", records)
        with pytest.raises(InvalidError):
            client.predict("credit", [[1.0]])
