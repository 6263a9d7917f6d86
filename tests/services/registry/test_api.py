"""The model registry REST API through the real gateway app, with real API keys."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import blake3
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.registry import (
    CorruptArtifactError,
    ModelFlavor,
    ModelSignature,
    ModelStage,
    OutputKind,
)
from synapsenet.services.registry.artifacts import artifact_key
from synapsenet.services.registry.client import ModelRegistryClient
from synapsenet.services.registry.flavors import serialize
from synapsenet.services.registry.service import RegistryService
from tests.services.registry.conftest import FEATURES, logistic_regression, training_data

BASE = "/v1/models"
SIGNATURE = {"feature_names": list(FEATURES), "output_kind": "probability"}


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """The app without its lifespan (no relay thread racing SQLite's write lock)."""
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
def artifact() -> bytes:
    return serialize(logistic_regression(), ModelFlavor.SKLEARN)


def upload(http: TestClient, name: str, data: bytes, **headers: str) -> dict[str, Any]:
    response = http.post(
        f"{BASE}/{name}/artifacts",
        content=data,
        headers={"Content-Type": "application/octet-stream", **headers},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def register(http: TestClient, name: str, data: bytes, **fields: Any) -> dict[str, Any]:
    uploaded = upload(http, name, data)
    body = {"artifact_hash": uploaded["artifact_hash"], "flavor": "sklearn", "signature": SIGNATURE}
    response = http.post(f"{BASE}/{name}/versions", json={**body, **fields})
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def test_register_list_promote_and_download(operator: TestClient, artifact: bytes) -> None:
    created = operator.post(BASE, json={"name": "churn", "description": "who leaves"})
    assert created.status_code == 201
    assert created.json()["latest_version"] == 0
    x, _ = training_data(5)
    first = register(
        operator,
        "churn",
        artifact,
        metrics={"auc": 0.9},
        training_datasets=["customers@v2"],
        run_id="run-1",
        background=x.to_numpy().tolist(),
    )
    assert (first["version"], first["stage"], first["has_background"]) == ("1", "none", True)
    assert first["artifact_hash"] == blake3.blake3(artifact).hexdigest()
    assert first["signature"]["feature_types"] == ["numeric"] * 3
    second = register(operator, "churn", artifact)
    assert second["version"] == "2"

    versions = operator.get(f"{BASE}/churn/versions").json()
    assert [v["version"] for v in versions] == ["1", "2"]
    staged = operator.post(f"{BASE}/churn/versions/1/stage", json={"stage": "staging"})
    assert staged.json()["stage"] == "staging"
    promoted = operator.post(f"{BASE}/churn/versions/1/promote", json={"reason": "ship it"})
    assert promoted.json()["stage"] == "production"
    operator.post(f"{BASE}/churn/versions/2/promote", json={"reason": "better"})
    assert operator.get(f"{BASE}/churn/versions/1").json()["stage"] == "archived"
    assert operator.get(f"{BASE}/churn/production").json()["version"] == "2"
    assert operator.get(f"{BASE}/churn").json()["production_version"] == "2"
    assert [m["name"] for m in operator.get(BASE).json()] == ["churn"]
    demoted = operator.post(f"{BASE}/churn/versions/2/demote", json={"reason": "regression"})
    assert demoted.json()["stage"] == "archived"
    assert operator.get(f"{BASE}/churn/production").status_code == 404

    download = operator.get(f"{BASE}/churn/versions/1/artifact")
    assert download.status_code == 200
    assert download.content == artifact
    assert download.headers["X-Content-BLAKE3"] == first["artifact_hash"]
    assert 'filename="churn-1.skops"' in download.headers["Content-Disposition"]


def test_a_pickle_upload_is_refused_unless_trusted(operator: TestClient) -> None:
    operator.post(BASE, json={"name": "custom"})
    data = pickle.dumps({"weights": [1.0, 2.0]})
    uploaded = upload(operator, "custom", data)
    body = {
        "artifact_hash": uploaded["artifact_hash"],
        "flavor": "pickle",
        "signature": {"feature_names": ["a"], "output_kind": "regression"},
    }
    refused = operator.post(f"{BASE}/custom/versions", json=body)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert refused.json()["field"] == "trusted"
    accepted = operator.post(f"{BASE}/custom/versions", json={**body, "trusted": True})
    assert accepted.status_code == 201
    assert accepted.json()["trusted"] is True


def test_a_corrupt_upload_and_a_tampered_artifact_are_refused(
    operator: TestClient, platform: Platform, artifact: bytes
) -> None:
    operator.post(BASE, json={"name": "churn"})
    refused = operator.post(
        f"{BASE}/churn/artifacts",
        content=artifact,
        headers={"X-Content-BLAKE3": "0" * 64},
    )
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("upload-corrupt")
    assert list(platform.store.list("registry/")) == []
    version = register(operator, "churn", artifact)
    platform.store.put(artifact_key(version["artifact_hash"]), artifact[:-3])
    corrupt = operator.get(f"{BASE}/churn/versions/1/artifact")
    assert corrupt.status_code == 500
    assert corrupt.json()["type"].endswith("corrupt-artifact")
    missing = operator.post(
        f"{BASE}/churn/versions",
        json={"artifact_hash": "ab" * 32, "flavor": "sklearn", "signature": SIGNATURE},
    )
    assert (missing.status_code, missing.json()["field"]) == (422, "artifact_hash")
    malformed = operator.post(
        f"{BASE}/churn/versions",
        json={"artifact_hash": "xyz", "flavor": "sklearn", "signature": SIGNATURE},
    )
    assert (malformed.status_code, malformed.json()["field"]) == (422, "artifact_hash")


def test_errors_map_to_problems(operator: TestClient, artifact: bytes) -> None:
    assert operator.get(f"{BASE}/ghost").status_code == 404
    assert operator.post(f"{BASE}/ghost/artifacts", content=b"x").status_code == 404
    operator.post(BASE, json={"name": "churn"})
    assert operator.post(BASE, json={"name": "churn"}).status_code == 409
    assert operator.post(BASE, json={"name": "bad name"}).status_code == 422
    assert operator.post(f"{BASE}/churn/artifacts", content=b"").status_code == 422
    register(operator, "churn", artifact)
    back = operator.post(f"{BASE}/churn/versions/1/stage", json={"stage": "staging"})
    assert back.status_code == 200
    none = operator.post(f"{BASE}/churn/versions/1/stage", json={"stage": "none"})
    assert none.status_code == 409
    unknown = operator.post(f"{BASE}/churn/versions/1/stage", json={"stage": "live"})
    assert unknown.status_code == 422
    typo = operator.post(f"{BASE}/churn/versions/1/promote", json={"reason": "x", "force": 1})
    assert typo.status_code == 422
    assert operator.get(f"{BASE}/churn/versions/7").status_code == 404


def test_writes_need_an_operator_key(
    http: TestClient, tokens: dict[Role, str], artifact: bytes
) -> None:
    http.headers["X-API-Key"] = tokens[Role.VIEWER]
    assert http.get(BASE).status_code == 200
    assert http.post(BASE, json={"name": "churn"}).status_code == 403
    assert http.post(f"{BASE}/churn/artifacts", content=artifact).status_code == 403
    del http.headers["X-API-Key"]
    assert http.get(BASE).status_code == 401


def test_the_client_round_trips_through_the_app(
    app: FastAPI, tokens: dict[Role, str], platform: Platform, tmp_path: Any, artifact: bytes
) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(artifact)
    transport = InProcessTransport(app)
    with ModelRegistryClient(
        "http://synapsenet.internal", api_key=tokens[Role.OPERATOR], transport=transport
    ) as client:
        assert client.create_model("churn").name == "churn"
        with pytest.raises(ConflictError):
            client.create_model("churn")
        first = client.register_version(
            "churn",
            path,
            flavor="sklearn",
            signature=ModelSignature.numeric(FEATURES, OutputKind.PROBABILITY, ("0", "1")),
            metrics={"auc": 0.8},
            background=np.zeros((2, 3)).tolist(),
        )
        assert (first.version, first.has_background) == ("1", True)
        second = client.register_version(
            "churn", artifact, flavor=ModelFlavor.SKLEARN, signature=first.signature
        )
        assert second.version == "2"
        with pytest.raises(InvalidError) as caught:
            client.register_version(
                "churn", pickle.dumps(1), flavor="pickle", signature=dict(SIGNATURE)
            )
        assert caught.value.field == "trusted"
        assert [v.version for v in client.list_versions("churn")] == ["1", "2"]
        assert client.transition("churn", "1", "staging").stage is ModelStage.STAGING
        assert client.promote("churn", "1", reason="ship").stage is ModelStage.PRODUCTION
        assert client.production_version("churn").version == "1"
        assert client.get_model("churn").production_version == "1"
        assert [m.name for m in client.list_models()] == ["churn"]
        assert client.demote("churn", "1", reason="stop").stage is ModelStage.ARCHIVED
        assert client.get_version("churn", "2").metrics == {}
        assert client.download_artifact("churn", "2") == artifact
        with pytest.raises(NotFoundError):
            client.production_version("churn")
        platform.store.put(artifact_key(first.artifact_hash), b"tampered")
        with pytest.raises(CorruptArtifactError):
            client.download_artifact("churn", "1")


def test_the_gateway_hosts_the_registry_and_leaves_predict_to_inference(app: FastAPI) -> None:
    assert isinstance(app.state.services["registry"], RegistryService)
    paths = app.openapi()["paths"]
    assert "/v1/models/{name}/versions" in paths
    assert paths["/v1/models/{name}/predict"]["post"]["tags"] == ["inference"]
