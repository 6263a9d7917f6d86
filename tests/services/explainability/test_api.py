"""``/v1/explanations`` through the real gateway app, with real API keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from synapsenet.core.auth import Role
from synapsenet.core.outbox import OutboxRecord
from synapsenet.core.platform import Platform
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.explainability import ExplanationService, InMemoryModelLoader
from tests.services.explainability.service_fixtures import FEATURES, regressor, training_rows

BASE = "/v1/explanations"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    application = create_app(platform=platform)
    loader = InMemoryModelLoader()
    loader.register(
        "credit", "1", regressor(), feature_names=FEATURES, background=training_rows()[:50]
    )
    service: ExplanationService = application.state.services["explainability"]
    service.loader = loader
    service.chunk_rows = 25
    return application


@pytest.fixture
def tokens(platform: Platform) -> dict[Role, str]:
    return {role: platform.keys.create(role, name=f"test {role.value}").token for role in Role}


@pytest.fixture
def http(app: FastAPI, tokens: dict[Role, str]) -> Iterator[TestClient]:
    """An operator client without the lifespan (no relay thread racing SQLite's lock)."""
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = tokens[Role.OPERATOR]
    yield client
    client.close()


def rows(n: int, start: int = 0) -> list[list[float]]:
    data: list[list[float]] = training_rows()[start : start + n].tolist()
    return data


def explain(http: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"model": "credit", "version": "1", "instances": rows(3), **overrides}
    response = http.post(BASE, json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_explain_returns_shap_values_that_add_up(http: TestClient) -> None:
    body = explain(http)
    assert body["type"] == "shap_tree"
    assert body["feature_names"] == list(FEATURES)
    assert len(body["values"]) == 3
    assert len(body["values"][0]) == 4
    for values, base, prediction in zip(
        body["values"], body["base_values"], body["predictions"], strict=True
    ):
        assert sum(v[0] for v in values) + base[0] == pytest.approx(prediction[0], abs=1e-6)
    assert body["cached"] is False


def test_second_identical_request_is_a_cache_hit(http: TestClient, platform: Platform) -> None:
    first = explain(http)
    second = explain(http)
    assert second["cached"] is True
    assert second["values"] == first["values"]
    hits = platform.metrics.get_sample_value("synapsenet_explanation_cache_hits_total")
    misses = platform.metrics.get_sample_value("synapsenet_explanation_cache_misses_total")
    assert (hits, misses) == (1.0, 1.0)
    observed = platform.metrics.get_sample_value(
        "synapsenet_explanation_duration_seconds_count", {"type": "shap_tree"}
    )
    assert observed == 1.0


def test_records_are_matched_to_features_by_name(http: TestClient) -> None:
    as_lists = explain(http)
    records = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in rows(3)]
    as_records = explain(http, instances=records)
    assert as_records["values"] == as_lists["values"]


def test_explanation_emits_completed_event(http: TestClient, platform: Platform) -> None:
    explain(http)
    with platform.db.transaction() as session:
        envelopes = list(
            session.scalars(
                select(OutboxRecord.envelope).where(
                    OutboxRecord.type == "explainability.explanation.completed"
                )
            )
        )
    assert len(envelopes) == 1
    assert '"model": "credit"' in envelopes[0] or '"model":"credit"' in envelopes[0]


def test_lime_explanation(http: TestClient) -> None:
    body = explain(http, instances=rows(1), method="lime", parameters={"n_samples": 500})
    assert body["type"] == "lime_tabular"
    weights = [abs(v[0]) for v in body["values"][0]]
    assert weights.index(min(weights)) == FEATURES.index("noise")


def test_batch_job_end_to_end(http: TestClient, platform: Platform) -> None:
    response = http.post(
        f"{BASE}/jobs", json={"model": "credit", "version": "1", "instances": rows(100)}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    platform.jobs.wait(job_id, timeout=60)

    job = http.get(f"{BASE}/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    assert job["result"]["n_instances"] == 100
    assert job["result"]["result_key"] == f"explanations/{job_id}.bin"
    assert platform.store.exists(f"explanations/{job_id}.bin")
    assert job["result"]["importance"]["ranking"][0] == "age"

    importance = http.get(f"{BASE}/jobs/{job_id}/importance", params={"method": "rms"}).json()
    assert importance["method"] == "rms"
    assert importance["n_explanations"] == 100
    names = [f["feature"] for f in importance["features"]]
    assert names[0] == "age"
    assert names[-1] == "noise"
    for feature in importance["features"]:
        assert feature["ci_lower"] <= feature["importance"] <= feature["ci_upper"]

    result = http.get(f"{BASE}/jobs/{job_id}/result").json()
    assert len(result["values"]) == 100

    png = http.get(f"{BASE}/jobs/{job_id}/plots/importance.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_MAGIC)
    svg = http.get(f"{BASE}/jobs/{job_id}/plots/beeswarm.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    assert http.get(f"{BASE}/jobs/{job_id}/plots/importance.gif").status_code == 422


def test_waterfall_plot_of_one_row(http: TestClient) -> None:
    body = {"model": "credit", "version": "1", "instances": rows(1)}
    response = http.post(f"{BASE}/plots/waterfall.png", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)


def test_unknown_model_is_404(http: TestClient) -> None:
    response = http.post(BASE, json={"model": "credit", "version": "9", "instances": rows(1)})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert http.get(f"{BASE}/jobs/nope").status_code == 404


def test_wrong_feature_count_is_422_naming_instances(http: TestClient) -> None:
    response = http.post(BASE, json={"model": "credit", "version": "1", "instances": [[1.0]]})
    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "instances"
    assert "4 features" in problem["detail"]


def test_too_many_rows_is_422(http: TestClient) -> None:
    body = {"model": "credit", "version": "1", "instances": [[0.0] * 4] * 1001}
    response = http.post(BASE, json=body)
    assert response.status_code == 422
    assert response.json()["field"] == "body.instances"


def test_unknown_parameter_is_422(http: TestClient) -> None:
    body = {"model": "credit", "version": "1", "instances": rows(1), "parameters": {"bogus": 1}}
    response = http.post(BASE, json=body)
    assert response.status_code == 422
    assert response.json()["field"] == "parameters.bogus"


def test_batch_needs_exactly_one_source(http: TestClient) -> None:
    response = http.post(f"{BASE}/jobs", json={"model": "credit", "version": "1"})
    assert response.status_code == 422


def test_viewer_key_can_get_but_not_post(
    http: TestClient, platform: Platform, tokens: dict[Role, str]
) -> None:
    submitted = http.post(
        f"{BASE}/jobs", json={"model": "credit", "version": "1", "instances": rows(5)}
    ).json()
    platform.jobs.wait(submitted["id"], timeout=60)
    http.headers["X-API-Key"] = tokens[Role.VIEWER]
    assert http.get(f"{BASE}/jobs/{submitted['id']}").status_code == 200
    response = http.post(BASE, json={"model": "credit", "version": "1", "instances": rows(1)})
    assert response.status_code == 403
