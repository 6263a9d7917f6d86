"""The explanation service and its REST API on the Redis cache backend, real servers only.

The platform is configured the way a deployment is (``cache_url``), so the service builds its
cache on the platform's Redis client with the production key prefix. Each test explains a model
under a name of its own, so its keys (one namespace per model version) never meet another
test's, and deletes them afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.config import Settings
from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.explainability import ExplanationService, InMemoryModelLoader
from synapsenet.services.explainability._cache_backends import RedisBackend
from synapsenet.services.explainability.cache import CacheKey
from synapsenet.services.explainability.client import ExplainabilityClient
from tests.fixtures.redis import RedisServer
from tests.services.explainability.service_fixtures import FEATURES, regressor, training_rows

ROWS = training_rows()[:3]
PREFIX = "synapsenet:explanations:"
"""The key prefix the platform's cache uses (RedisBackend's default)."""


def _settings(tmp_path: Path, cache_url: str) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / ".synapsenet", cache_url=cache_url)


@pytest.fixture
def model_name() -> str:
    return f"credit-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def loader(model_name: str) -> InMemoryModelLoader:
    models = InMemoryModelLoader()
    for version in ("1", "2"):
        models.register(
            model_name,
            version,
            regressor(),
            feature_names=FEATURES,
            background=training_rows()[:50],
        )
    return models


def _namespace_keys(client: redis.Redis, model_name: str, version: str) -> list[bytes]:
    namespace = CacheKey.build(model_name, version, "shap:auto", {}, ROWS).namespace
    return list(client.scan_iter(match=f"{PREFIX}{{{namespace}}}:*", count=500))


@pytest.fixture
def shared_redis(redis_url: str, model_name: str) -> Iterator[redis.Redis]:
    """A client of the shared test Redis; deletes this test's model keys afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for version in ("1", "2"):
        keys = _namespace_keys(client, model_name, version)
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def open_platform(shared_redis: redis.Redis) -> Iterator[list[Platform]]:
    """The platforms a test opens (one per simulated process), closed before the keys go."""
    opened: list[Platform] = []
    yield opened
    for platform in opened:
        platform.close()


def _platform(opened: list[Platform], tmp_path: Path, cache_url: str, name: str) -> Platform:
    platform = Platform.open(_settings(tmp_path / name, cache_url))
    opened.append(platform)
    return platform


def _counter(platform: Platform, name: str) -> float | None:
    return platform.metrics.get_sample_value(f"synapsenet_explanation_cache_{name}")


def test_the_second_identical_request_is_answered_from_redis(
    open_platform: list[Platform],
    tmp_path: Path,
    redis_url: str,
    shared_redis: redis.Redis,
    loader: InMemoryModelLoader,
    model_name: str,
) -> None:
    platform = _platform(open_platform, tmp_path, redis_url, "a")
    service = ExplanationService(platform, loader)
    assert isinstance(service.cache.backend, RedisBackend)

    first, first_cached = service.explain(model_name, "1", ROWS)
    second, second_cached = service.explain(model_name, "1", ROWS)
    assert (first_cached, second_cached) == (False, True)
    np.testing.assert_array_equal(second.values, first.values)
    assert (_counter(platform, "hits_total"), _counter(platform, "misses_total")) == (1.0, 1.0)
    # The entry sits in Redis itself, under the version's generation 0...
    [entry] = _namespace_keys(shared_redis, model_name, "1")
    assert b"}:0:" in entry
    # ...so another process on the same Redis, with its own in-process state, hits it too.
    other = ExplanationService(_platform(open_platform, tmp_path, redis_url, "b"), loader)
    assert other.cache is not service.cache
    answered, cached = other.explain(model_name, "1", ROWS)
    assert cached is True
    np.testing.assert_array_equal(answered.values, first.values)


def test_invalidating_a_version_retires_it_in_every_process_and_only_it(
    open_platform: list[Platform],
    tmp_path: Path,
    redis_url: str,
    loader: InMemoryModelLoader,
    model_name: str,
) -> None:
    service = ExplanationService(_platform(open_platform, tmp_path, redis_url, "a"), loader)
    other = ExplanationService(_platform(open_platform, tmp_path, redis_url, "b"), loader)
    for version in ("1", "2"):
        service.explain(model_name, version, ROWS)
        assert other.explain(model_name, version, ROWS)[1] is True

    assert service.invalidate(model_name, "1") == 1
    assert other.explain(model_name, "1", ROWS)[1] is False  # recomputed in the other process
    assert service.explain(model_name, "1", ROWS)[1] is True  # and stored again
    assert service.explain(model_name, "2", ROWS)[1] is True  # version 2 untouched
    assert other.invalidate(model_name, "1") == 2


@pytest.fixture
def app(open_platform: list[Platform], tmp_path: Path, redis_url: str) -> FastAPI:
    return create_app(platform=_platform(open_platform, tmp_path, redis_url, "api"))


def _client(app: FastAPI, loader: InMemoryModelLoader, role: Role) -> TestClient:
    service: ExplanationService = app.state.services["explainability"]
    service.loader = loader
    platform: Platform = app.state.platform
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = platform.keys.create(role, name=f"test {role.value}").token
    return client


def _post(http: TestClient, model_name: str) -> bool:
    body = {"model": model_name, "version": "1", "instances": ROWS.tolist()}
    response = http.post("/v1/explanations", json=body)
    assert response.status_code == 200, response.text
    cached: bool = response.json()["cached"]
    return cached


def test_the_rest_api_serves_hits_from_redis_and_invalidates_a_version(
    app: FastAPI, loader: InMemoryModelLoader, model_name: str
) -> None:
    platform: Platform = app.state.platform
    service: ExplanationService = app.state.services["explainability"]
    assert isinstance(service.cache.backend, RedisBackend)
    with _client(app, loader, Role.OPERATOR) as http:
        assert [_post(http, model_name), _post(http, model_name)] == [False, True]
        response = http.delete(f"/v1/explanations/cache/{model_name}/1")
        assert response.status_code == 200, response.text
        assert response.json() == {"model": model_name, "version": "1", "generation": 1}
        assert [_post(http, model_name), _post(http, model_name)] == [False, True]
    assert (_counter(platform, "hits_total"), _counter(platform, "misses_total")) == (2.0, 2.0)
    token = platform.keys.create(Role.OPERATOR, name="sdk").token
    with ExplainabilityClient(
        "http://synapsenet.internal", api_key=token, transport=InProcessTransport(app)
    ) as client:
        assert client.explain(model_name, "1", ROWS.tolist()).cached is True
        assert client.invalidate_cache(model_name, "1").generation == 2
        assert client.explain(model_name, "1", ROWS.tolist()).cached is False


def test_a_viewer_may_not_invalidate(
    app: FastAPI, loader: InMemoryModelLoader, model_name: str
) -> None:
    with _client(app, loader, Role.VIEWER) as http:
        response = http.delete(f"/v1/explanations/cache/{model_name}/1")
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_a_redis_outage_degrades_to_computing(
    open_platform: list[Platform],
    tmp_path: Path,
    redis_server: RedisServer,
    loader: InMemoryModelLoader,
    model_name: str,
) -> None:
    platform = _platform(open_platform, tmp_path, redis_server.url, "own-redis")
    app = create_app(platform=platform)
    service: ExplanationService = app.state.services["explainability"]
    assert isinstance(service.cache.backend, RedisBackend)
    body = {"model": model_name, "version": "1", "instances": ROWS.tolist()}
    with _client(app, loader, Role.OPERATOR) as http:
        before = [http.post("/v1/explanations", json=body).json() for _ in range(2)]
        assert [answer["cached"] for answer in before] == [False, True]
        assert _counter(platform, "degraded") == 0

        redis_server.stop()
        answers = [http.post("/v1/explanations", json=body) for _ in range(4)]
        assert [response.status_code for response in answers] == [200] * 4
        assert [response.json()["cached"] for response in answers] == [False] * 4
        assert answers[0].json()["values"] == before[0]["values"]
        assert service.cache.stats.degraded
        assert _counter(platform, "degraded") == 1
        assert platform.metrics.get_sample_value(
            "synapsenet_explanation_cache_errors_total", {"kind": "backend"}
        ) == pytest.approx(3.0)
        # An invalidation that cannot reach the store must fail, not pretend.
        response = http.delete(f"/v1/explanations/cache/{model_name}/1")
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
