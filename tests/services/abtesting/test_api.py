"""The A/B testing REST API through the real gateway app, with real API keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.abtesting.client import ABTestingClient
from synapsenet.services.abtesting.models import ExperimentStatus, Exposure, Observation
from synapsenet.services.abtesting.rollback import RollbackAction
from tests.services.abtesting.api_fixtures import (
    binary_outcomes,
    exposures,
    observation,
    spec_body,
)

BASE = "/v1/abtesting/experiments"


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """The app without its lifespan: no outbox relay or scheduler thread writes meanwhile.

    On SQLite a background writer can make a request's read-then-write transaction fail at
    once with "database is locked" (see the report on ``ApiKeyStore.authenticate`` and
    ``ABTestingEngine.log_decision``); these tests pin down the API, not that race.
    """
    test_client = TestClient(app, raise_server_exceptions=False)
    yield test_client
    test_client.close()


@pytest.fixture
def tokens(platform: Platform) -> dict[Role, str]:
    return {role: platform.keys.create(role, name=f"test {role.value}").token for role in Role}


@pytest.fixture
def operator(http: TestClient, tokens: dict[Role, str]) -> TestClient:
    """The test client, sending an operator key."""
    http.headers["X-API-Key"] = tokens[Role.OPERATOR]
    return http


def create(http: TestClient, **overrides: Any) -> dict[str, Any]:
    response = http.post(BASE, json=spec_body(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ingest(
    http: TestClient, experiment_id: str, observations: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    body = {"observations": observations, **extra}
    response: httpx.Response = http.post(f"{BASE}/{experiment_id}/events", json=body)
    return response


def test_full_lifecycle_with_events_and_results(operator: TestClient) -> None:
    created = create(operator, canary_weight="0.5")
    experiment_id = created["id"]
    assert created["status"] == "draft"
    assert [v["weight"] for v in created["variants"]] == ["0.5", "0.5"]
    assert created["allocation"] == {"control": "0.5", "canary": "0.5"}
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert operator.get(f"{BASE}/fraud-canary").json()["id"] == experiment_id

    started = operator.post(f"{BASE}/{experiment_id}/start")
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    assert started.json()["started_at"] is not None
    assignment = operator.get(f"{BASE}/{experiment_id}/assignment", params={"unit_id": "u-1"})
    assert assignment.json()["in_experiment"] is True
    assert assignment.json()["variant"] in {"control", "canary"}

    batch = (
        exposures("a", "control", 400)
        + exposures("a", "canary", 410)
        + binary_outcomes("a", "control", "conversion", n=400, successes=40)
        + binary_outcomes("a", "canary", "conversion", n=410, successes=82)
        + binary_outcomes("a", "control", "error", n=400, successes=8)
        + binary_outcomes("a", "canary", "error", n=410, successes=8)
    )
    ingested = ingest(operator, experiment_id, batch, batch_id="batch-a")
    assert ingested.status_code == 200, ingested.text
    assert ingested.json()["accepted"] == len(batch)
    assert ingested.json()["guardrails"]["action"] in {"healthy", "inconclusive"}

    results = operator.get(f"{BASE}/{experiment_id}/results").json()
    assert results["sequential"] is True
    assert results["correction"] == "holm"
    assert [(v["name"], v["exposures"]) for v in results["variants"]] == [
        ("control", 400),
        ("canary", 410),
    ]
    assert results["srm"]["mismatch"] is False
    conversion = next(m for m in results["metrics"] if m["metric"] == "conversion")
    assert conversion["variant"] == "canary"
    assert conversion["control_n"] == 400
    assert conversion["treatment_mean"] == pytest.approx(0.2)
    assert conversion["absolute_lift"]["estimate"] == pytest.approx(0.1)
    assert conversion["relative_lift"]["estimate"] == pytest.approx(1.0)
    assert conversion["sequential"]["ci_lower"] is not None
    assert 0 <= conversion["p_value"] < 0.05
    assert conversion["adjusted_p_value"] >= conversion["p_value"]
    assert conversion["significant"] is True
    assert conversion["verdict"] == "better"
    latency = next(m for m in results["metrics"] if m["metric"] == "latency_ms")
    assert latency["code"] == "no_data"
    assert latency["p_value"] is None
    fixed = operator.get(
        f"{BASE}/{experiment_id}/results", params={"sequential": "false", "correction": "fdr_bh"}
    ).json()
    assert fixed["sequential"] is False
    assert fixed["correction"] == "fdr_bh"

    assert operator.post(f"{BASE}/{experiment_id}/pause").json()["status"] == "paused"
    paused = operator.get(f"{BASE}/{experiment_id}/assignment", params={"unit_id": "u-1"}).json()
    assert paused == {**paused, "variant": "control", "in_experiment": False}
    assert operator.post(f"{BASE}/{experiment_id}/resume").json()["status"] == "running"
    unknown_winner = operator.post(f"{BASE}/{experiment_id}/complete", json={"winner": "nope"})
    assert unknown_winner.status_code == 422
    assert unknown_winner.json()["field"] == "variant"
    completed = operator.post(f"{BASE}/{experiment_id}/complete", json={"winner": "canary"})
    assert completed.status_code == 200
    assert completed.json()["status"] == "completed"
    assert completed.json()["winner"] == "canary"
    assert datetime.fromisoformat(completed.json()["ended_at"]).tzinfo is not None

    listed = operator.get(BASE, params={"status": "completed"}).json()
    assert [e["id"] for e in listed] == [experiment_id]
    assert operator.get(BASE, params={"status": "running"}).json() == []
    assert operator.get(BASE, params={"model_name": "other"}).json() == []


def test_viewer_may_read_but_not_write(http: TestClient, tokens: dict[Role, str]) -> None:
    operator = {"X-API-Key": tokens[Role.OPERATOR]}
    viewer = {"X-API-Key": tokens[Role.VIEWER]}
    created = http.post(BASE, json=spec_body(), headers=operator).json()
    assert http.get(BASE, headers=viewer).status_code == 200
    assert http.get(f"{BASE}/{created['id']}/results", headers=viewer).status_code == 200
    refused = http.post(f"{BASE}/{created['id']}/start", headers=viewer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert http.post(BASE, json=spec_body(name="other"), headers=viewer).status_code == 403
    assert http.get(BASE).status_code == 401
    assert http.get(BASE, headers={"X-API-Key": "snk_nope_nope"}).status_code == 401
    assert http.get(f"{BASE}/{created['id']}", headers=viewer).json()["status"] == "draft"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/missing"),
        ("POST", "/missing/start"),
        ("GET", "/missing/assignment?unit_id=u"),
        ("GET", "/missing/results"),
        ("GET", "/missing/decisions"),
        ("POST", "/missing/check"),
    ],
)
def test_unknown_experiment_is_404(operator: TestClient, method: str, path: str) -> None:
    response = operator.request(method, BASE + path)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "missing" in response.json()["detail"]


def test_illegal_transitions_are_409(operator: TestClient) -> None:
    experiment_id = create(operator)["id"]
    paused_draft = operator.post(f"{BASE}/{experiment_id}/pause")
    assert paused_draft.status_code == 409
    assert "from draft to paused" in paused_draft.json()["detail"]
    operator.post(f"{BASE}/{experiment_id}/start")
    assert operator.post(f"{BASE}/{experiment_id}/resume").status_code == 409
    assert operator.post(f"{BASE}/{experiment_id}/ramp").status_code == 409
    operator.post(f"{BASE}/{experiment_id}/stop", json={"reason": "enough"})
    assert operator.post(f"{BASE}/{experiment_id}/start").status_code == 409
    assert create(operator, name="second")["status"] == "draft"
    duplicate = operator.post(BASE, json=spec_body(name="second"))
    assert duplicate.status_code == 409


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {
                "variants": [
                    {"name": "control", "model_version": "v1", "weight": "0.5", "is_control": True},
                    {"name": "canary", "model_version": "v2", "weight": "0.4"},
                ]
            },
            "variants",
        ),
        (
            {
                "variants": [
                    {"name": "control", "model_version": "v1", "weight": "1", "is_contol": True}
                ]
            },
            "body.variants.0.is_contol",
        ),
        ({"coverage": "1.5"}, "coverage"),
        ({"strategy": "coin_toss"}, "body.strategy"),
        ({"metrics": [{"name": "error", "kind": "binary", "min_samples": 0}]}, None),
    ],
)
def test_a_bad_spec_is_422_naming_the_field_and_stores_nothing(
    operator: TestClient, overrides: dict[str, Any], field: str | None
) -> None:
    response = operator.post(BASE, json=spec_body(**overrides))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    if field is not None:
        assert problem["field"] == field
    else:
        assert problem["field"].startswith("body.metrics.0.min_samples")
    assert operator.get(BASE).json() == []


def test_a_naive_datetime_is_422_naming_the_field(operator: TestClient) -> None:
    experiment_id = create(operator)["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    naive = observation("e1", "control", "error", 0.0)
    naive["time"] = "2025-01-01T12:00:00"
    response = ingest(operator, experiment_id, [observation("e0", "control"), naive])
    assert response.status_code == 422
    assert response.json()["field"] == "body.observations.1.time"
    assert "timezone" in response.json()["detail"]
    results = operator.get(f"{BASE}/{experiment_id}/results").json()
    assert [v["exposures"] for v in results["variants"]] == [0, 0]


def test_unknown_variant_in_events_is_422_and_stores_nothing(operator: TestClient) -> None:
    experiment_id = create(operator)["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    response = ingest(
        operator, experiment_id, [observation("e0", "control"), observation("e1", "x")]
    )
    assert response.status_code == 422
    assert response.json()["field"] == "variant"
    results = operator.get(f"{BASE}/{experiment_id}/results").json()
    assert [v["exposures"] for v in results["variants"]] == [0, 0]


def test_ingestion_is_idempotent(operator: TestClient) -> None:
    experiment_id = create(operator)["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    batch = exposures("b", "control", 5) + exposures("b", "canary", 3)
    first = ingest(operator, experiment_id, batch, batch_id="b-1").json()
    again = ingest(operator, experiment_id, batch, batch_id="b-1").json()
    assert (first["accepted"], first["duplicates"]) == (8, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 8)
    assert again["guardrails"] is None
    # Without a batch id, each event id is counted once, even twice in one request.
    loose = exposures("c", "control", 2) + exposures("c", "canary", 1)
    replayed = ingest(operator, experiment_id, loose).json()
    assert (replayed["accepted"], replayed["duplicates"]) == (3, 0)
    replayed = ingest(operator, experiment_id, loose + loose[:1]).json()
    assert (replayed["accepted"], replayed["duplicates"]) == (0, 4)
    results = operator.get(f"{BASE}/{experiment_id}/results").json()
    assert [v["exposures"] for v in results["variants"]] == [7, 4]


def test_outcomes_may_name_their_request_or_unit_instead_of_the_variant(
    operator: TestClient, app: FastAPI
) -> None:
    experiment_id = create(operator)["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    served = app.state.services["abtesting"].exposures
    now = datetime.now(UTC)
    served.record(experiment_id, Exposure("req-1", "alice", "canary", now))
    served.record(experiment_id, Exposure("req-2", "bob", "control", now))
    by_request = {**observation("o1", "unused", "conversion", 1.0), "request_id": "req-1"}
    by_unit = {**observation("o2", "unused", "conversion", 0.0), "unit_id": "bob"}
    for body in (by_request, by_unit):
        del body["variant"]
    response = ingest(operator, experiment_id, [by_request, by_unit])
    assert response.status_code == 200, response.text
    results = operator.get(f"{BASE}/{experiment_id}/results").json()
    assert [v["exposures"] for v in results["variants"]] == [1, 1]
    conversion = next(m for m in results["metrics"] if m["metric"] == "conversion")
    assert (conversion["control_n"], conversion["treatment_n"]) == (1, 1)
    assert (conversion["control_mean"], conversion["treatment_mean"]) == (0.0, 1.0)

    unknown = {**observation("o3", "unused", "conversion", 1.0), "request_id": "req-404"}
    del unknown["variant"]
    refused = ingest(operator, experiment_id, [unknown])
    assert refused.status_code == 422
    assert refused.json()["field"] == "variant"
    assert "req-404" in refused.json()["detail"]
    bare = observation("o4", "unused")
    del bare["variant"]
    assert ingest(operator, experiment_id, [bare]).status_code == 422


def test_events_on_a_draft_are_409(operator: TestClient) -> None:
    experiment_id = create(operator)["id"]
    assert ingest(operator, experiment_id, exposures("d", "control", 1)).status_code == 409


def test_batch_assignment_agrees_with_single_assignment(operator: TestClient) -> None:
    experiment_id = create(operator, canary_weight="0.3")["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    units = [f"user-{i}" for i in range(300)]
    batch = operator.post(f"{BASE}/{experiment_id}/assignments", json={"unit_ids": units})
    assert batch.status_code == 200
    body = batch.json()
    assert body["model_versions"] == {"control": "v1", "canary": "v2"}
    singles = [
        operator.get(f"{BASE}/{experiment_id}/assignment", params={"unit_id": u}).json()["variant"]
        for u in units[:60]
    ]
    assert body["variants"][:60] == singles
    assert 0.15 < body["variants"].count("canary") / len(units) < 0.45
    too_many = operator.post(
        f"{BASE}/{experiment_id}/assignments", json={"unit_ids": ["u"] * 100_001}
    )
    assert too_many.status_code == 422
    assert too_many.json()["field"] == "body.unit_ids"
    assert operator.get(f"{BASE}/{experiment_id}/assignment").status_code == 422


def test_a_degraded_canary_is_rolled_back_through_the_events_endpoint(
    operator: TestClient,
) -> None:
    experiment_id = create(
        operator, canary_weight="0.5", consecutive_breaches=1, cooldown_seconds=0
    )["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    actions = []
    for batch in range(10):
        observations = binary_outcomes(
            f"g{batch}", "control", "error", n=300, successes=6
        ) + binary_outcomes(f"g{batch}", "canary", "error", n=300, successes=60)
        response = ingest(operator, experiment_id, observations, batch_id=f"g{batch}")
        assert response.status_code == 200, response.text
        guardrails = response.json()["guardrails"]
        actions.append(guardrails["action"])
        if guardrails["action"] == RollbackAction.ROLLED_BACK.value:
            breached = [c for c in guardrails["checks"] if c["status"] == "breach"]
            assert [(c["metric"], c["variant"]) for c in breached] == [("error", "canary")]
            break
    assert actions[-1] == "rolled_back", actions
    assert len(actions) <= 3
    experiment = operator.get(f"{BASE}/{experiment_id}").json()
    assert experiment["status"] == "rolled_back"
    assert experiment["allocation"] == {"control": "1", "canary": "0"}
    assignment = operator.get(f"{BASE}/{experiment_id}/assignment", params={"unit_id": "u"})
    assert assignment.json()["variant"] == "control"
    decisions = operator.get(f"{BASE}/{experiment_id}/decisions").json()
    rollback = next(d for d in decisions if d["kind"] == "rollback")
    assert rollback["outcome"] == "rolled_back"
    assert "error" in rollback["reason"]
    assert rollback["evidence"]["checks"][0]["variant"] == "canary"
    assert datetime.fromisoformat(rollback["at"]).tzinfo is not None


def test_manual_rollback_records_who_and_why(
    operator: TestClient, tokens: dict[Role, str], platform: Platform
) -> None:
    experiment_id = create(operator)["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    assert operator.post(f"{BASE}/{experiment_id}/rollback", json={}).status_code == 422
    response = operator.post(f"{BASE}/{experiment_id}/rollback", json={"reason": "pager alert"})
    assert response.status_code == 200
    assert response.json()["status"] == "rolled_back"
    operator_key = next(k for k in platform.keys.list() if k.role is Role.OPERATOR)
    [decision] = operator.get(f"{BASE}/{experiment_id}/decisions", params={"limit": 5}).json()
    assert decision["reason"] == "pager alert"
    assert decision["evidence"] == {"manual": True, "by": operator_key.id}
    assert tokens[Role.OPERATOR].split("_")[1] == operator_key.id


def test_ramp_hold_release_advance_and_check(operator: TestClient) -> None:
    ramp = [
        {"traffic": "0.05", "min_duration_seconds": 600, "min_samples_per_arm": 100},
        {"traffic": "0.2", "min_duration_seconds": 600, "min_samples_per_arm": 100},
    ]
    experiment_id = create(operator, canary_weight="0.5", strategy="ramping", ramp=ramp)["id"]
    started = operator.post(f"{BASE}/{experiment_id}/start").json()
    assert started["treatment_share"] == "0.05"
    assert started["ramp"][0] == {
        "traffic": "0.05",
        "min_duration_seconds": 600.0,
        "min_samples_per_arm": 100,
    }

    held = operator.post(f"{BASE}/{experiment_id}/hold", json={"reason": "weekend"}).json()
    assert held["ramp_held"] is True
    tick = operator.post(f"{BASE}/{experiment_id}/check").json()
    assert tick["guardrails"]["action"] == "inconclusive"
    assert tick["ramp"]["action"] == "hold"
    assert tick["ramp"]["reason"] == "manual_hold"
    assert operator.post(f"{BASE}/{experiment_id}/release").json()["ramp_held"] is False

    unforced = operator.post(f"{BASE}/{experiment_id}/ramp", json={"force": False}).json()
    assert unforced["action"] == "hold"
    forced = operator.post(f"{BASE}/{experiment_id}/ramp", json={"force": True}).json()
    assert forced == {
        "action": "advance",
        "reason": "manual_advance",
        "detail": forced["detail"],
        "step_index": 1,
        "traffic": "0.2",
    }
    after = operator.get(f"{BASE}/{experiment_id}").json()
    assert (after["ramp_step"], after["treatment_share"]) == (1, "0.2")
    kinds = [
        (d["kind"], d["outcome"]) for d in operator.get(f"{BASE}/{experiment_id}/decisions").json()
    ]
    assert ("ramp", "held") in kinds
    assert ("ramp", "released") in kinds
    assert ("ramp", "reallocated") in kinds
    not_a_ramp = create(operator, name="plain")["id"]
    assert operator.post(f"{BASE}/{not_a_ramp}/hold").status_code == 409


def test_a_bandit_round_trips_and_check_reweights_it(operator: TestClient) -> None:
    bandit = {"reward_metric": "conversion", "floor": "0.05", "min_units_per_arm": 50, "seed": 7}
    created = create(operator, canary_weight="0.5", strategy="thompson_sampling", bandit=bandit)
    assert created["bandit"] == {**bandit, "epsilon": 0.1}
    experiment_id = created["id"]
    operator.post(f"{BASE}/{experiment_id}/start")
    outcomes = binary_outcomes("t", "control", "conversion", n=200, successes=20)
    outcomes += binary_outcomes("t", "canary", "conversion", n=200, successes=60)
    assert ingest(operator, experiment_id, outcomes).json()["accepted"] == 400
    tick = operator.post(f"{BASE}/{experiment_id}/check").json()
    assert tick["reweighted"] is True
    assert tick["ramp"] is None
    allocation = operator.get(f"{BASE}/{experiment_id}").json()["allocation"]
    assert Decimal(allocation["canary"]) > Decimal(allocation["control"]) >= Decimal("0.05")
    assert sum(Decimal(w) for w in allocation.values()) == 1
    decisions = operator.get(f"{BASE}/{experiment_id}/decisions").json()
    assert decisions[0]["kind"] == "bandit"


def test_client_maps_answers_and_errors(
    app: FastAPI, http: TestClient, tokens: dict[Role, str]
) -> None:
    transport = InProcessTransport(app)
    with ABTestingClient(
        "http://synapsenet.internal", api_key=tokens[Role.OPERATOR], transport=transport
    ) as client:
        created = client.create_experiment(spec_body(canary_weight="0.5"))
        assert created.status is ExperimentStatus.DRAFT
        assert client.get_experiment("fraud-canary").id == created.id
        assert client.start(created.id).status is ExperimentStatus.RUNNING
        single = client.assign(created.id, "user-7")
        batch = client.assign_batch(created.id, ["user-7", "user-8"])
        assert batch.variants[0] == single.variant
        now = datetime.fromisoformat(observation("x", "control")["time"])
        result = client.ingest(
            created.id,
            [Observation("o1", "u1", "control", now), Observation("o2", "u2", "canary", now)],
            batch_id="client-1",
        )
        assert (result.accepted, result.duplicates) == (2, 0)
        page = client.results(created.id)
        assert [v.exposures for v in page.variants] == [1, 1]
        assert client.check(created.id).guardrails.action is RollbackAction.INCONCLUSIVE
        assert [e.id for e in client.list_experiments(status=ExperimentStatus.RUNNING)] == [
            created.id
        ]
        with pytest.raises(NotFoundError, match="missing"):
            client.get_experiment("missing")
        with pytest.raises(ConflictError, match="running to running"):
            client.start(created.id)
        with pytest.raises(InvalidError) as invalid:
            client.create_experiment(spec_body(name="bad", canary_weight="0.5", coverage="2"))
        assert invalid.value.field == "coverage"
        rolled_back = client.rollback(created.id, reason="by hand")
        assert rolled_back.status is ExperimentStatus.ROLLED_BACK
        assert client.decisions(created.id)[0].evidence["manual"] is True
