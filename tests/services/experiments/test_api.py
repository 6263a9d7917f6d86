"""The run-tracking REST API and its client, through the real gateway app with real API keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.dataversion.client import DataVersionClient
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeRef
from synapsenet.services.dataversion.reconstruction import DatasetReconstructor
from synapsenet.services.experiments import Metric, RunStatus, start_run
from synapsenet.services.experiments.api import parse_param_filter
from synapsenet.services.experiments.client import RunsClient
from synapsenet.services.experiments.ports import ClientDatasetResolver, ClientLineageLinker
from synapsenet.services.experiments.service import RunTrackingService

BASE = "/v1/runs"


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """The app without its lifespan: no outbox relay competes for SQLite's write lock."""
    test_client = TestClient(app, raise_server_exceptions=False)
    yield test_client
    test_client.close()


@pytest.fixture
def tokens(platform: Platform) -> dict[Role, str]:
    return {role: platform.keys.create(role, name=f"test {role.value}").token for role in Role}


@pytest.fixture
def operator(http: TestClient, tokens: dict[Role, str]) -> TestClient:
    http.headers["X-API-Key"] = tokens[Role.OPERATOR]
    return http


@pytest.fixture
def client(app: FastAPI, tokens: dict[Role, str]) -> Iterator[RunsClient]:
    with RunsClient(
        "http://synapsenet.internal",
        api_key=tokens[Role.OPERATOR],
        transport=InProcessTransport(app),
    ) as runs:
        yield runs


@pytest.fixture
def datasets(app: FastAPI, tokens: dict[Role, str]) -> Iterator[DataVersionClient]:
    with DataVersionClient(
        "http://synapsenet.internal",
        api_key=tokens[Role.OPERATOR],
        transport=InProcessTransport(app),
    ) as data:
        yield data


def commit_csv(datasets: DataVersionClient, tmp_path: Path, name: str, *contents: bytes) -> None:
    datasets.create_dataset(name, format="csv")
    for number, content in enumerate(contents, start=1):
        source = tmp_path / f"{name}-{number}.csv"
        source.write_bytes(content)
        datasets.upload_file(name, source)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    return body


def test_the_service_is_hosted_by_the_gateway(app: FastAPI) -> None:
    assert isinstance(app.state.services["experiments"], RunTrackingService)


def test_a_run_through_the_rest_api(
    operator: TestClient, datasets: DataVersionClient, tmp_path: Path
) -> None:
    commit_csv(datasets, tmp_path, "orders", b"id\n1\n", b"id\n1\n2\n")
    datasets.tag("orders", "v1", "production")
    response = operator.post(
        BASE, json={"project": "fraud", "name": "xgb", "params": {"depth": 6, "lr": 0.1}}
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["status"], run["params"]) == ("running", {"depth": 6, "lr": 0.1})
    path = f"{BASE}/{run['id']}"

    response = operator.post(f"{path}/params", json={"params": {"opt": "adam", "depth": 6}})
    assert response.status_code == 200, response.text
    assert response.json()["params"] == {"depth": 6, "lr": 0.1, "opt": "adam"}
    body = problem(operator.post(f"{path}/params", json={"params": {"depth": 7}}), 409)
    assert "'depth' is 6, not 7" in body["detail"]

    metrics = [
        {"key": "loss", "value": 0.9, "step": 0},
        {"key": "loss", "value": 0.3, "step": 1, "timestamp": "2026-03-01T10:00:00Z"},
        {"key": "val/auc", "value": 0.8},
    ]
    response = operator.post(f"{path}/metrics", json={"metrics": metrics})
    assert response.json() == {"logged": 3}
    history = operator.get(f"{path}/metrics/loss").json()
    assert [(m["step"], m["value"]) for m in history] == [(0, 0.9), (1, 0.3)]
    assert history[1]["timestamp"] == "2026-03-01T10:00:00Z"
    assert [m["value"] for m in operator.get(f"{path}/metrics/val/auc").json()] == [0.8]

    response = operator.post(f"{path}/datasets", json={"ref": "orders@production"})
    assert response.json() == {"ref": "orders@v1", "requested": "orders@production"}
    response = operator.post(f"{path}/models", json={"model_name": "fraud", "version": "4"})
    assert (response.json()["model_name"], response.json()["version"]) == ("fraud", "4")
    response = operator.post(f"{path}/tags", json={"tags": {"team": "risk"}})
    assert response.json()["tags"] == {"team": "risk"}

    response = operator.post(f"{path}/end", json={"status": "finished"})
    ended = response.json()
    assert ended["status"] == "finished"
    assert ended["metrics"] == {"loss": 0.3, "val/auc": 0.8}
    assert [d["ref"] for d in ended["datasets"]] == ["orders@v1"]
    assert operator.post(f"{path}/end").json()["status"] == "finished"
    listed = operator.get(f"{path}/datasets").json()
    assert [(d["ref"], d["requested"]) for d in listed] == [("orders@v1", "orders@production")]
    body = problem(operator.post(f"{path}/metrics", json={"metrics": metrics}), 409)
    assert body["detail"] == f"run {run['id']} is finished; it accepts no more metrics"


def test_list_filters_and_pages(operator: TestClient) -> None:
    ids = []
    for depth, project in ((6, "fraud"), (8, "fraud"), (6, "churn")):
        body = {"project": project, "params": {"depth": depth, "opt": "adam"}}
        ids.append(operator.post(BASE, json=body).json()["id"])

    def listed(**query: Any) -> list[str]:
        response = operator.get(BASE, params=query)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    assert listed() == ids[::-1]
    assert listed(project="fraud") == [ids[1], ids[0]]
    assert listed(param=["depth=6"]) == [ids[2], ids[0]]
    assert listed(param=["depth=6", "opt=adam"]) == [ids[2], ids[0]]
    assert listed(param=['opt="adam"', "depth=8"]) == [ids[1]]
    assert listed(status="finished") == []
    assert listed(limit=1, offset=1) == [ids[1]]
    assert problem(operator.get(BASE, params={"limit": 0}), 422)
    body = problem(operator.get(BASE, params={"param": "depth"}), 422)
    assert body["field"] == "param"


def test_parse_param_filter_reads_json_scalars_else_text() -> None:
    assert parse_param_filter("depth=6") == ("depth", 6)
    assert parse_param_filter("lr=0.1") == ("lr", 0.1)
    assert parse_param_filter("on=true") == ("on", True)
    assert parse_param_filter("seed=null") == ("seed", None)
    assert parse_param_filter('depth="6"') == ("depth", "6")
    assert parse_param_filter("opt=adam") == ("opt", "adam")
    assert parse_param_filter("expr=a=b") == ("expr", "a=b")
    assert parse_param_filter("layers=[1,2]") == ("layers", "[1,2]")


def test_bad_requests_are_422_naming_the_field(operator: TestClient) -> None:
    body = problem(operator.post(BASE, json={"project": "bad project"}), 422)
    assert body["field"] == "project"
    problem(operator.post(BASE, json={"projct": "typo"}), 422)
    run_id = operator.post(BASE, json={}).json()["id"]
    path = f"{BASE}/{run_id}"
    problem(operator.post(f"{path}/metrics", json={"metrics": []}), 422)
    naive = {"key": "loss", "value": 1.0, "timestamp": "2026-03-01T10:00:00"}
    problem(operator.post(f"{path}/metrics", json={"metrics": [naive]}), 422)
    problem(operator.post(f"{path}/metrics", json={"metrics": [{"key": "l", "value": "x"}]}), 422)
    problem(operator.post(f"{path}/params", json={"params": {"k": [1]}}), 422)
    problem(operator.post(f"{path}/end", json={"status": "done"}), 422)
    body = problem(operator.post(f"{path}/datasets", json={"ref": "nope@v1"}), 404)
    assert "no dataset named 'nope'" in body["detail"]
    body = problem(operator.get(f"{BASE}/ghost"), 404)
    assert body["detail"] == "no run with id 'ghost'"


def test_reads_need_a_viewer_and_logging_an_operator(
    http: TestClient, tokens: dict[Role, str]
) -> None:
    problem(http.get(BASE), 401)
    http.headers["X-API-Key"] = tokens[Role.VIEWER]
    assert http.get(BASE).status_code == 200
    problem(http.post(BASE, json={}), 403)
    http.headers["X-API-Key"] = tokens[Role.OPERATOR]
    run_id = http.post(BASE, json={}).json()["id"]
    http.headers["X-API-Key"] = tokens[Role.VIEWER]
    assert http.get(f"{BASE}/{run_id}").status_code == 200
    problem(http.post(f"{BASE}/{run_id}/end"), 403)


def test_start_run_over_http_with_the_client(
    client: RunsClient, datasets: DataVersionClient, tmp_path: Path
) -> None:
    commit_csv(datasets, tmp_path, "orders", b"id\n1\n")
    with start_run(client, project="fraud", params={"depth": 6}, tags={"team": "risk"}) as run:
        assert run.log_dataset("orders") == "orders@v1"
        run.log_param("lr", 0.1)
        run.log_metric("loss", 0.5, step=3)
        run.log_metrics({"auc": 0.9}, step=3)
        run.set_tag("stage", "dev")
        run.log_model("fraud", "1")
    info = client.get_run(run.id)
    assert info.status is RunStatus.FINISHED
    assert dict(info.params) == {"depth": 6, "lr": 0.1}
    assert dict(info.metrics) == {"auc": 0.9, "loss": 0.5}
    assert dict(info.tags) == {"stage": "dev", "team": "risk"}
    assert info.dataset_refs == ("orders@v1",)
    assert [m.ref for m in info.models] == ["fraud@1"]
    assert client.datasets_of_run(run.id) == ["orders@v1"]
    assert [(m.step, m.value) for m in client.metric_history(run.id, "loss")] == [(3, 0.5)]
    assert [r.id for r in client.list_runs(project="fraud", params={"depth": 6})] == [run.id]
    assert [r.id for r in client.list_runs(status=RunStatus.FINISHED, model="fraud@1")] == [run.id]
    assert [r.id for r in client.list_runs(dataset="orders")] == [run.id]

    with pytest.raises(ZeroDivisionError), start_run(client) as failing:
        _ = 1 / 0
    assert client.get_run(failing.id).status is RunStatus.FAILED


def test_client_errors_come_back_as_the_server_raised_them(client: RunsClient) -> None:
    run = client.start_run(params={"depth": 6})
    with pytest.raises(ConflictError, match="'depth' is 6, not 7"):
        client.log_params(run.id, {"depth": 7})
    with pytest.raises(NotFoundError):
        client.get_run("ghost")
    with pytest.raises(InvalidError, match="must be a finite number"):
        client.log_metrics(run.id, [Metric("loss", float("nan"), 0, datetime.now(UTC))])
    with pytest.raises(InvalidError) as info:
        client.log_model(run.id, "a@b", "1")
    assert info.value.field == "model_name"


def test_a_remote_reconstructor_and_lineage_read_the_run_through_http(
    client: RunsClient,
    datasets: DataVersionClient,
    platform: Platform,
    tmp_path: Path,
) -> None:
    commit_csv(datasets, tmp_path, "orders", b"id\n1\n", b"id\n1\n2\n")
    with start_run(client) as run:
        run.log_dataset("orders@v1")
        run.log_model("fraud", "1")
    engine = DatasetVersioningEngine(platform.db, platform.store)
    reconstructor = DatasetReconstructor(engine, LineageGraph(platform.db), runs=client)
    assert [v.ref for v in reconstructor.for_experiment(run.id)] == ["orders@v1"]
    impact = datasets.impact("orders", "v1")
    assert f"run:{run.id}" in impact.runs
    assert "model:fraud@1" in impact.model_versions


def test_http_ports_resolve_and_link_through_the_data_versioning_api(
    datasets: DataVersionClient, platform: Platform, tmp_path: Path
) -> None:
    commit_csv(datasets, tmp_path, "orders", b"id\n1\n", b"id\n1\n2\n")
    datasets.tag("orders", "v1", "golden")
    resolver = ClientDatasetResolver(datasets)
    assert resolver.resolve("orders") == "orders@v2"
    assert resolver.resolve("orders@golden") == "orders@v1"
    assert resolver.resolve("orders@v2") == "orders@v2"
    with pytest.raises(NotFoundError):
        resolver.resolve("orders@v7")
    linker = ClientLineageLinker(datasets)
    linker.link(NodeRef.dataset_version("orders", 1), NodeRef.run("remote-run"))
    assert NodeRef.run("remote-run") in LineageGraph(platform.db).dag()
