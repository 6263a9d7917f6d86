from __future__ import annotations

import stat
import threading
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from synapsenet import __version__
from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.client import ServiceClient
from synapsenet.core.db import Database
from synapsenet.core.events import Event
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE


def headers(token: str) -> dict[str, str]:
    return {"X-API-Key": token}


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_readyz_reports_every_backend(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "object_store": "ok",
        "event_bus": "ok",
    }


def test_readyz_is_503_when_the_database_is_unreachable(
    client: TestClient, platform: Platform
) -> None:
    healthy = platform.db
    platform.db = Database("postgresql://nobody@127.0.0.1:1/none")
    try:
        response = client.get("/readyz")
    finally:
        platform.db.dispose()
        platform.db = healthy
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["checks"]["database"].startswith("UnavailableError")
    assert body["checks"]["event_bus"] == "ok"
    assert "database" in body["detail"]


def test_first_start_writes_the_admin_key_and_prints_its_path(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(platform=platform)) as test_client:
        path = platform.settings.admin_key_path
        assert str(path.resolve()) in capsys.readouterr().out
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        response = test_client.get("/v1/keys", headers=headers(path.read_text().strip()))
    assert response.status_code == 200
    assert [k["role"] for k in response.json()] == ["admin"]


def test_second_start_creates_no_new_key(platform: Platform) -> None:
    with TestClient(create_app(platform=platform)):
        pass
    with TestClient(create_app(platform=platform)):
        pass
    assert len(platform.keys.list()) == 1


def test_missing_key_is_401_problem(client: TestClient) -> None:
    response = client.get("/v1/keys")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    problem = response.json()
    assert problem["type"] == "urn:synapsenet:problem:unauthorized"
    assert problem["status"] == 401
    assert problem["instance"] == "/v1/keys"
    assert "X-API-Key" in problem["detail"]


@pytest.mark.parametrize("token", ["nonsense", "snk_abc_def"])
def test_unknown_key_is_401(client: TestClient, token: str) -> None:
    assert client.get("/v1/keys", headers=headers(token)).status_code == 401


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_key_administration_needs_admin(
    client: TestClient, tokens: dict[Role, str], role: Role
) -> None:
    listed = client.get("/v1/keys", headers=headers(tokens[role]))
    created = client.post("/v1/keys", json={"role": "viewer"}, headers=headers(tokens[role]))
    assert listed.status_code == 403
    assert created.status_code == 403
    assert listed.json()["type"] == "urn:synapsenet:problem:forbidden"


def test_viewer_key_may_not_write(client: TestClient, tokens: dict[Role, str]) -> None:
    response = client.delete("/v1/keys/whatever", headers=headers(tokens[Role.VIEWER]))
    assert response.status_code == 403
    assert "needs operator" in response.json()["detail"]


def test_admin_creates_lists_and_revokes_keys(client: TestClient, tokens: dict[Role, str]) -> None:
    admin = headers(tokens[Role.ADMIN])
    created = client.post("/v1/keys", json={"role": "operator", "name": "ci"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(f"snk_{body['id']}_")
    listed = client.get("/v1/keys", headers=admin).json()
    assert body["id"] in [k["id"] for k in listed]
    assert all("token" not in k for k in listed)
    assert client.get("/v1/keys", headers=headers(body["token"])).status_code == 403
    revoked = client.delete(f"/v1/keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/v1/keys", headers=headers(body["token"])).status_code == 401
    again = client.delete(f"/v1/keys/{body['id']}", headers=admin)
    assert again.status_code == 409
    missing = client.delete("/v1/keys/nope", headers=admin)
    assert missing.status_code == 404
    everything = client.get("/v1/keys?include_revoked=true", headers=admin).json()
    assert body["id"] in [k["id"] for k in everything]


def test_validation_errors_name_the_field(client: TestClient, tokens: dict[Role, str]) -> None:
    response = client.post(
        "/v1/keys", json={"role": "superuser"}, headers=headers(tokens[Role.ADMIN])
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:synapsenet:problem:invalid"
    assert problem["field"] == "body.role"
    assert problem["detail"].startswith("body.role: ")
    assert problem["errors"][0]["field"] == "body.role"


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["detail"] == "no route GET /nowhere"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"] == "about:blank"


def test_errors_and_crashes_become_problems(platform: Platform) -> None:
    app = create_app(platform=platform)
    broken = APIRouter()

    @broken.get("/conflict")
    def conflict() -> None:
        raise ConflictError("experiment is already running", experiment="exp-1")

    @broken.get("/crash")
    def crash() -> None:
        raise RuntimeError("secret internals")

    app.include_router(broken)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        conflicted = test_client.get("/conflict", headers={"X-Request-ID": "req-42"})
        crashed = test_client.get("/crash")
    assert conflicted.status_code == 409
    assert conflicted.json()["experiment"] == "exp-1"
    assert conflicted.json()["request_id"] == "req-42"
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "secret internals" not in crashed.text


def test_request_ids_are_echoed_or_assigned(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assigned = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(assigned.headers["x-request-id"]) == 32
    assert assigned.headers["x-request-id"] != client.get("/healthz").headers["x-request-id"]


def test_metrics_count_requests_by_route_template(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    admin = headers(tokens[Role.ADMIN])
    client.delete("/v1/keys/one", headers=admin)
    client.delete("/v1/keys/two", headers=admin)
    text = client.get("/metrics").text
    assert (
        'synapsenet_http_requests_total{method="DELETE",route="/v1/keys/{key_id}",status="404"}'
        " 2.0" in text
    )
    assert "synapsenet_http_request_duration_seconds_bucket" in text


def test_openapi_documents_the_v1_routes(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/keys" in spec["paths"]
    assert "/v1/keys/{key_id}" in spec["paths"]


def test_key_events_reach_the_bus_through_the_outbox(
    client: TestClient, platform: Platform, tokens: dict[Role, str]
) -> None:
    seen: list[Event] = []
    arrived = threading.Event()

    def on_event(event: Event) -> None:
        seen.append(event)
        if event.type == "core.api_key.revoked":
            arrived.set()

    platform.bus.subscribe("core.api_key.*", on_event, group="audit")
    admin = headers(tokens[Role.ADMIN])
    key_id = client.post("/v1/keys", json={"role": "viewer"}, headers=admin).json()["id"]
    client.delete(f"/v1/keys/{key_id}", headers=admin)
    assert arrived.wait(10)
    assert [e.subject for e in seen if e.subject == key_id] == [key_id, key_id]


def test_calls_to_other_services_carry_the_request_id(platform: Platform) -> None:
    downstream = FastAPI()

    @downstream.get("/echo")
    def echo(request: Request) -> dict[str, str | None]:
        return {"request_id": request.headers.get("x-request-id")}

    app = create_app(platform=platform)
    calling = APIRouter()

    @calling.get("/call")
    def call() -> Any:
        with ServiceClient("http://downstream", transport=InProcessTransport(downstream)) as peer:
            return peer.get_json("/echo")

    app.include_router(calling)
    with TestClient(app) as test_client:
        response = test_client.get("/call", headers={"X-Request-ID": "trace-7"})
    assert response.json() == {"request_id": "trace-7"}
