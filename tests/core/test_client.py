"""ServiceClient and InProcessTransport against real FastAPI apps.

Every behaviour that does not depend on the transport runs twice: through
InProcessTransport, and over the network against the same app served by uvicorn on
127.0.0.1. The app counts the calls it receives, so "not retried" and "never sent" are
proved by the server, not by the client's word.
"""

from __future__ import annotations

import email.utils
import hashlib
import random
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from hypothesis import given
from hypothesis import strategies as st

from synapsenet.core.asgi_transport import InProcessTransport, Message, Receive, Send
from synapsenet.core.circuit import CircuitBreaker, CircuitOpenError, CircuitState
from synapsenet.core.client import (
    DEFAULT_USER_AGENT,
    RetryPolicy,
    ServiceClient,
    request_id_var,
)
from synapsenet.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    SynapseNetError,
    UnavailableError,
)
from tests.fixtures.s3 import free_port

PROBLEM_JSON = "application/problem+json"


# --- the app under test ------------------------------------------------------------------


def problem_response(
    error: SynapseNetError, request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        error.to_problem(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def add_problem_handler(app: FastAPI) -> None:
    async def render(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SynapseNetError)
        return problem_response(exc, request)

    app.add_exception_handler(SynapseNetError, render)


class CallLog:
    """The server's own record of the requests it received, by test-chosen key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, list[dict[str, str]]] = defaultdict(list)

    def record(self, key: str, request: Request) -> int:
        with self._lock:
            self._calls[key].append(dict(request.headers))
            return len(self._calls[key])

    def __getitem__(self, key: str) -> list[dict[str, str]]:
        with self._lock:
            return list(self._calls[key])


def build_app(log: CallLog) -> FastAPI:
    app = FastAPI()
    add_problem_handler(app)

    @app.api_route("/flaky/{key}", methods=["GET", "POST", "PUT", "DELETE"])
    def flaky(
        key: str,
        request: Request,
        failures: int = 0,
        status: int = 503,
        retry_after: str | None = None,
    ) -> Response:
        attempt = log.record(key, request)
        if attempt <= failures:
            error = UnavailableError(f"Attempt {attempt} failed on purpose.")
            headers = {"Retry-After": retry_after} if retry_after else None
            response = problem_response(error, request, headers)
            response.status_code = status
            return response
        return JSONResponse({"attempt": attempt})

    @app.api_route("/echo", methods=["GET", "POST", "HEAD"])
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"headers": dict(request.headers), "body": body.decode()}

    @app.get("/missing/{name}")
    def missing(name: str) -> None:
        raise NotFoundError(f"Model '{name}' does not exist.")

    @app.post("/conflict")
    def conflict() -> None:
        raise ConflictError("Version 3 is already in production.", current_stage="production")

    @app.post("/invalid")
    def invalid() -> None:
        raise InvalidError("Traffic weights must sum to exactly 1.", field="weights")

    @app.get("/plain/{status}")
    def plain(status: int) -> PlainTextResponse:
        return PlainTextResponse("short and stout", status_code=status)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    @app.api_route("/slow/{key}", methods=["GET", "POST"])
    async def slow(key: str, request: Request, seconds: float = 1.0) -> dict[str, str]:
        log.record(key, request)
        await anyio.sleep(seconds)
        return {"status": "late"}

    @app.get("/empty", status_code=204)
    def empty() -> Response:
        return Response(status_code=204)

    @app.get("/not-json")
    def not_json() -> PlainTextResponse:
        return PlainTextResponse("hello")

    @app.post("/upload/{key}")
    async def upload(key: str, request: Request) -> dict[str, Any]:
        digest, size, chunks = hashlib.sha256(), 0, 0
        async for chunk in request.stream():
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                chunks += 1
        log.record(key, request)
        return {"size": size, "chunks": chunks, "sha256": digest.hexdigest()}

    @app.post("/ignore-body")
    def ignore_body() -> dict[str, str]:
        return {"status": "did not read it"}

    @app.get("/loop-thread")
    async def loop_thread() -> dict[str, int]:
        return {"thread": threading.get_ident()}

    return app


# --- fixtures ------------------------------------------------------------------------------


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        sock.close()


@pytest.fixture(scope="module")
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture(scope="module")
def app(call_log: CallLog) -> FastAPI:
    return build_app(call_log)


@pytest.fixture(scope="module")
def server_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


@dataclass
class Harness:
    """Builds clients for one transport mode, with a recording sleep."""

    mode: str
    app: FastAPI
    base_url: str
    log: CallLog
    sleeps: list[float] = field(default_factory=list)
    clients: list[ServiceClient] = field(default_factory=list)

    def policy(self, max_attempts: int = 3, backoff_max: float = 5.0) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts,
            backoff_max=backoff_max,
            rng=random.Random(7),
            sleep=self.sleeps.append,
        )

    def client(
        self,
        *,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        breaker: CircuitBreaker | None = None,
    ) -> ServiceClient:
        transport = InProcessTransport(self.app) if self.mode == "in-process" else None
        client = ServiceClient(
            self.base_url,
            api_key=api_key,
            transport=transport,
            timeout=timeout,
            retry=retry or self.policy(),
            breaker=breaker,
        )
        self.clients.append(client)
        return client


@pytest.fixture(params=["in-process", "uvicorn"])
def harness(request: pytest.FixtureRequest, app: FastAPI, call_log: CallLog) -> Iterator[Harness]:
    if request.param == "in-process":
        base_url = "http://synapsenet.internal"
    else:
        base_url = request.getfixturevalue("server_url")
    built = Harness(request.param, app, base_url, call_log)
    yield built
    for client in built.clients:
        client.close()


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    return free_port()


# --- errors --------------------------------------------------------------------------------


def test_problem_json_maps_back_to_not_found_with_its_detail(harness: Harness) -> None:
    with pytest.raises(NotFoundError) as caught:
        harness.client().get_json("/missing/churn-model")
    assert type(caught.value) is NotFoundError
    assert caught.value.detail == "Model 'churn-model' does not exist."


def test_problem_json_maps_back_to_conflict_with_extension_members(harness: Harness) -> None:
    with pytest.raises(ConflictError) as caught:
        harness.client().post_json("/conflict", {})
    assert caught.value.detail == "Version 3 is already in production."
    assert caught.value.extra == {"current_stage": "production"}


def test_problem_json_maps_back_to_invalid_with_its_field(harness: Harness) -> None:
    with pytest.raises(InvalidError) as caught:
        harness.client().post_json("/invalid", {"weights": [0.5, 0.6]})
    assert caught.value.field == "weights"
    assert caught.value.detail == "Traffic weights must sum to exactly 1."


def test_plain_error_maps_to_the_class_for_its_status_naming_method_url_status(
    harness: Harness,
) -> None:
    with pytest.raises(NotFoundError) as caught:
        harness.client().get_json("/plain/404")
    assert caught.value.detail == (
        f"GET {harness.base_url}/plain/404 returned HTTP 404 Not Found: short and stout"
    )


def test_plain_error_with_unmapped_status_is_a_base_synapsenet_error(harness: Harness) -> None:
    with pytest.raises(SynapseNetError) as caught:
        harness.client().get_json("/plain/418")
    assert type(caught.value) is SynapseNetError
    assert f"GET {harness.base_url}/plain/418 returned HTTP 418" in caught.value.detail


def test_unhandled_app_exception_arrives_as_a_500(harness: Harness) -> None:
    with pytest.raises(SynapseNetError) as caught:
        harness.client().get_json("/crash")
    assert type(caught.value) is SynapseNetError
    assert "returned HTTP 500 Internal Server Error" in caught.value.detail


def test_json_helpers_return_none_for_no_content(harness: Harness) -> None:
    assert harness.client().get_json("/empty") is None


def test_success_without_json_body_raises_a_clear_error(harness: Harness) -> None:
    with pytest.raises(SynapseNetError, match="body that is not JSON"):
        harness.client().get_json("/not-json")


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_idempotent_methods_are_retried_until_they_succeed(
    harness: Harness, key: str, method: str
) -> None:
    response = harness.client().request(method, f"/flaky/{key}", params={"failures": 2})
    assert response.json() == {"attempt": 3}
    assert len(harness.log[key]) == 3
    # Full jitter: each wait lies under its doubling cap (0.1 s, then 0.2 s).
    assert len(harness.sleeps) == 2
    assert 0 <= harness.sleeps[0] <= 0.1
    assert 0 <= harness.sleeps[1] <= 0.2


def test_post_with_idempotency_key_is_retried_and_sends_the_key(harness: Harness, key: str) -> None:
    answer = harness.client().post_json(
        f"/flaky/{key}", {"x": 1}, params={"failures": 2}, idempotency_key="op-42"
    )
    assert answer == {"attempt": 3}
    assert [call["idempotency-key"] for call in harness.log[key]] == ["op-42"] * 3


def test_post_without_idempotency_key_is_sent_once(harness: Harness, key: str) -> None:
    with pytest.raises(UnavailableError, match="Attempt 1 failed on purpose"):
        harness.client().post_json(f"/flaky/{key}", {"x": 1}, params={"failures": 2})
    assert len(harness.log[key]) == 1
    assert harness.sleeps == []


def test_too_many_requests_is_retried(harness: Harness, key: str) -> None:
    answer = harness.client().get_json(f"/flaky/{key}", params={"failures": 1, "status": 429})
    assert answer == {"attempt": 2}


def test_exhausted_retries_raise_the_last_error(harness: Harness, key: str) -> None:
    client = harness.client(retry=harness.policy(max_attempts=4))
    with pytest.raises(UnavailableError, match="Attempt 4 failed on purpose"):
        client.get_json(f"/flaky/{key}", params={"failures": 10})
    assert len(harness.log[key]) == 4


def test_non_retryable_status_is_not_retried(harness: Harness, key: str) -> None:
    with pytest.raises(SynapseNetError):
        harness.client().get_json(f"/flaky/{key}", params={"failures": 5, "status": 500})
    assert len(harness.log[key]) == 1


def test_retry_after_seconds_is_honoured(harness: Harness, key: str) -> None:
    harness.client().get_json(f"/flaky/{key}", params={"failures": 2, "retry_after": "2"})
    assert harness.sleeps == [2.0, 2.0]


def test_retry_after_is_capped_at_max_backoff(harness: Harness, key: str) -> None:
    client = harness.client(retry=harness.policy(backoff_max=5.0))
    client.get_json(f"/flaky/{key}", params={"failures": 1, "retry_after": "120"})
    assert harness.sleeps == [5.0]


def test_retry_after_http_date_is_honoured(harness: Harness, key: str) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client = harness.client(retry=harness.policy(backoff_max=60.0))
    client.get_json(f"/flaky/{key}", params={"failures": 1, "retry_after": when})
    assert len(harness.sleeps) == 1
    assert 25.0 <= harness.sleeps[0] <= 30.0


def test_timeout_on_get_is_retried_then_reported_unavailable(harness: Harness, key: str) -> None:
    client = harness.client(retry=harness.policy(max_attempts=2), timeout=0.2)
    with pytest.raises(UnavailableError) as caught:
        client.get_json(f"/slow/{key}", params={"seconds": 1.0})
    assert f"GET {harness.base_url}/slow/{key}?seconds=1.0 timed out after 2 attempts" in (
        caught.value.detail
    )
    assert len(harness.log[key]) == 2


def test_timeout_on_post_without_key_is_not_retried(harness: Harness, key: str) -> None:
    client = harness.client(retry=harness.policy(max_attempts=3), timeout=0.2)
    with pytest.raises(UnavailableError, match="not retried") as caught:
        client.post_json(f"/slow/{key}", params={"seconds": 1.0})
    assert "timed out after 1 attempt:" in caught.value.detail
    assert len(harness.log[key]) == 1


def test_connection_refused_is_unavailable_after_max_attempts() -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}"
    policy = RetryPolicy(max_attempts=3, rng=random.Random(1), sleep=sleeps.append)
    with ServiceClient(url, retry=policy) as client, pytest.raises(UnavailableError) as caught:
        client.get_json("/models")
    assert type(caught.value) is UnavailableError
    assert caught.value.detail.startswith(f"GET {url}/models failed after 3 attempts: ConnectError")
    assert len(sleeps) == 2


def test_connection_refused_is_retried_even_for_post_as_it_was_never_sent() -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}"
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    with ServiceClient(url, retry=policy) as client, pytest.raises(UnavailableError):
        client.post_json("/models", {"name": "m"})
    assert len(sleeps) == 2


# --- circuit breaker -----------------------------------------------------------------------


def test_circuit_opens_after_failures_then_fails_fast_without_calling(
    harness: Harness, key: str
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=30.0, clock=clock)
    client = harness.client(retry=harness.policy(max_attempts=1), breaker=breaker)
    for _ in range(3):
        with pytest.raises(SynapseNetError):
            client.get_json(f"/flaky/{key}", params={"failures": 100, "status": 500})
    assert breaker.state is CircuitState.OPEN
    clock.now = 12.0
    with pytest.raises(UnavailableError) as caught:
        client.get_json(f"/flaky/{key}", params={"failures": 100, "status": 500})
    assert isinstance(caught.value, CircuitOpenError)
    assert f"The circuit to {harness.base_url} is open" in caught.value.detail
    assert "18.0 s" in caught.value.detail
    assert len(harness.log[key]) == 3


def test_circuit_half_opens_after_reset_timeout_and_closes_on_success(
    harness: Harness, key: str
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    client = harness.client(retry=harness.policy(max_attempts=1), breaker=breaker)
    for _ in range(2):
        with pytest.raises(SynapseNetError):
            client.get_json(f"/flaky/{key}", params={"failures": 2, "status": 500})
    clock.now = 30.0
    states = [breaker.state]
    assert client.get_json(f"/flaky/{key}", params={"failures": 2}) == {"attempt": 3}
    states.append(breaker.state)
    assert states == [CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_failed_half_open_trial_opens_the_circuit_again(harness: Harness, key: str) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=30.0, clock=clock)
    client = harness.client(retry=harness.policy(max_attempts=1), breaker=breaker)
    params = {"failures": 100, "status": 500}
    with pytest.raises(SynapseNetError):
        client.get_json(f"/flaky/{key}", params=params)
    clock.now = 30.0
    with pytest.raises(SynapseNetError):
        client.get_json(f"/flaky/{key}", params=params)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        client.get_json(f"/flaky/{key}", params=params)
    assert len(harness.log[key]) == 2


def test_client_errors_do_not_open_the_circuit(harness: Harness) -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    client = harness.client(breaker=breaker)
    for _ in range(5):
        with pytest.raises(NotFoundError):
            client.get_json("/missing/x")
    assert breaker.state is CircuitState.CLOSED


def test_circuit_opening_mid_retry_stops_the_retries(harness: Harness, key: str) -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    client = harness.client(retry=harness.policy(max_attempts=5), breaker=breaker)
    with pytest.raises(CircuitOpenError):
        client.get_json(f"/flaky/{key}", params={"failures": 100, "status": 503})
    assert len(harness.log[key]) == 2


def test_unreachable_peer_opens_the_circuit() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    policy = RetryPolicy(max_attempts=1)
    url = f"http://127.0.0.1:{closed_port()}"
    with ServiceClient(url, retry=policy, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(UnavailableError, match="ConnectError"):
                client.get_json("/")
        with pytest.raises(CircuitOpenError):
            client.get_json("/")


# --- headers -------------------------------------------------------------------------------


def test_api_key_and_user_agent_are_sent(harness: Harness) -> None:
    headers = harness.client(api_key="sk-test-123").get_json("/echo")["headers"]
    assert headers["x-api-key"] == "sk-test-123"
    assert headers["user-agent"] == DEFAULT_USER_AGENT


def test_no_api_key_header_without_a_key(harness: Harness) -> None:
    assert "x-api-key" not in harness.client().get_json("/echo")["headers"]


def test_each_logical_request_gets_a_fresh_uuid4_hex_request_id(harness: Harness) -> None:
    client = harness.client()
    first = client.get_json("/echo")["headers"]["x-request-id"]
    second = client.get_json("/echo")["headers"]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert uuid.UUID(first).version == 4
    assert first != second


def test_given_request_id_is_propagated(harness: Harness) -> None:
    answer = harness.client().get_json("/echo", headers={"X-Request-ID": "req-from-caller"})
    assert answer["headers"]["x-request-id"] == "req-from-caller"


def test_request_id_of_the_current_context_is_propagated(harness: Harness) -> None:
    token = request_id_var.set("req-being-served")
    try:
        answer = harness.client().get_json("/echo")
    finally:
        request_id_var.reset(token)
    assert answer["headers"]["x-request-id"] == "req-being-served"


def test_request_id_is_the_same_across_retries(harness: Harness, key: str) -> None:
    harness.client().get_json(f"/flaky/{key}", params={"failures": 2})
    ids = {call["x-request-id"] for call in harness.log[key]}
    assert len(ids) == 1
    assert len(harness.log[key]) == 3


def test_post_json_sends_the_body(harness: Harness) -> None:
    answer = harness.client().post_json("/echo", {"weights": ["0.5", "0.5"]})
    assert answer["body"] == '{"weights":["0.5","0.5"]}'
    assert answer["headers"]["content-type"] == "application/json"


# --- RetryPolicy ---------------------------------------------------------------------------


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.0, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_the_full_jitter_cap(
    attempt: int, base: float, extra: float, seed: int
) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_max=base + extra, rng=random.Random(seed))
    delay = policy.backoff(attempt)
    assert 0.0 <= delay <= min(base + extra, base * 2.0 ** min(attempt - 1, 64))


def test_backoff_is_reproducible_under_a_seed() -> None:
    def draws(seed: int) -> list[float]:
        policy = RetryPolicy(rng=random.Random(seed))
        return [policy.backoff(n) for n in range(1, 6)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def test_which_requests_may_be_retried() -> None:
    policy = RetryPolicy()
    for method in ["GET", "head", "OPTIONS", "PUT", "DELETE"]:
        assert policy.may_retry(method, has_idempotency_key=False)
    assert not policy.may_retry("POST", has_idempotency_key=False)
    assert policy.may_retry("POST", has_idempotency_key=True)
    assert not policy.may_retry("PATCH", has_idempotency_key=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_attempts": 0},
            "The 'max_attempts' parameter of RetryPolicy must be an int >= 1. Got 0 instead.",
        ),
        (
            {"backoff_base": -1.0},
            "The 'backoff_base' parameter of RetryPolicy must be a float >= 0. Got -1.0 instead.",
        ),
        (
            {"backoff_max": 0.01},
            "The 'backoff_max' parameter of RetryPolicy must be a float >= backoff_base (0.1). "
            "Got 0.01 instead.",
        ),
        (
            {"retry_statuses": frozenset({503, 1000})},
            "The 'retry_statuses' parameter of RetryPolicy must be a set of HTTP status codes "
            "(ints from 100 to 599). Got frozenset({1000, 503}) instead.",
        ),
    ],
)
def test_retry_policy_rejects_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidError) as caught:
        RetryPolicy(**kwargs)
    assert caught.value.detail == message
    assert caught.value.field == next(iter(kwargs))


def test_service_client_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(InvalidError, match="The 'timeout' parameter of ServiceClient"):
        ServiceClient("http://x", timeout=0)


# --- InProcessTransport ----------------------------------------------------------------------


def in_process(app: FastAPI, **kwargs: Any) -> ServiceClient:
    return ServiceClient("http://synapsenet.internal", transport=InProcessTransport(app), **kwargs)


def build_gateway(inner: ServiceClient) -> FastAPI:
    """An app whose sync endpoints call another service, as services do."""
    gateway = FastAPI()
    add_problem_handler(gateway)

    @gateway.get("/relay/{name}")
    def relay(name: str) -> Any:
        return inner.get_json("/echo", headers={"X-Request-ID": f"relay-{name}"})

    @gateway.get("/relay-missing")
    def relay_missing() -> Any:
        return inner.get_json("/missing/from-the-gateway")

    return gateway


def test_nested_in_process_call_from_inside_a_request(app: FastAPI) -> None:
    with in_process(app) as inner, in_process(build_gateway(inner)) as outer:
        answer = outer.get_json("/relay/a")
        assert answer["headers"]["x-request-id"] == "relay-a"
        # The inner service's NotFoundError crosses both hops as itself.
        with pytest.raises(NotFoundError, match="from-the-gateway"):
            outer.get_json("/relay-missing")


def test_nested_in_process_call_from_a_uvicorn_served_request(app: FastAPI) -> None:
    with in_process(app) as inner, serve(build_gateway(inner)) as url, ServiceClient(url) as outer:
        assert outer.get_json("/relay/b")["headers"]["x-request-id"] == "relay-b"


def test_app_calling_itself_through_its_own_transport(app: FastAPI) -> None:
    gateway = FastAPI()
    transport = InProcessTransport(gateway)
    own = ServiceClient("http://synapsenet.internal", transport=transport)

    @gateway.get("/inner")
    def inner() -> dict[str, str]:
        return {"from": "inner"}

    @gateway.get("/outer")
    def outer() -> Any:
        return own.get_json("/inner")

    with own:
        assert own.get_json("/outer") == {"from": "inner"}


def test_calling_from_the_apps_own_event_loop_fails_fast_instead_of_deadlocking() -> None:
    gateway = FastAPI()
    own = ServiceClient(
        "http://synapsenet.internal",
        transport=InProcessTransport(gateway, raise_app_exceptions=True),
        retry=RetryPolicy(max_attempts=1),
    )

    @gateway.get("/blocking-in-async")
    async def blocking_in_async() -> Any:
        return own.get_json("/blocking-in-async")

    with own, pytest.raises(RuntimeError, match="would deadlock"):
        own.get_json("/blocking-in-async")


def test_many_threads_share_one_transport_and_one_event_loop(app: FastAPI) -> None:
    with in_process(app) as client:

        def call(i: int) -> tuple[str, int]:
            value = client.post_json("/echo", {"i": i})["body"]
            loop = client.get_json("/loop-thread")["thread"]
            return value, loop

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(call, range(64)))
    assert [value for value, _ in results] == [f'{{"i":{i}}}' for i in range(64)]
    loops = {loop for _, loop in results}
    assert len(loops) == 1
    assert loops != {threading.get_ident()}


def test_request_body_is_streamed_chunk_by_chunk(app: FastAPI) -> None:
    chunks = [bytes([i]) * 65536 for i in range(5)]
    key = uuid.uuid4().hex
    with httpx.Client(transport=InProcessTransport(app), base_url="http://in") as client:
        response = client.post(f"/upload/{key}", content=iter(chunks))
    assert response.json() == {
        "size": 5 * 65536,
        "chunks": 5,
        "sha256": hashlib.sha256(b"".join(chunks)).hexdigest(),
    }


def test_app_may_answer_without_reading_a_streamed_body(app: FastAPI) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 1024

    with httpx.Client(transport=InProcessTransport(app), base_url="http://in") as client:
        response = client.post("/ignore-body", content=endless())
    assert response.json() == {"status": "did not read it"}


def test_failing_request_body_aborts_the_call(app: FastAPI, call_log: CallLog) -> None:
    key = uuid.uuid4().hex

    def broken() -> Iterator[bytes]:
        yield b"first part"
        raise OSError("disk went away")

    with httpx.Client(transport=InProcessTransport(app), base_url="http://in") as client:
        with pytest.raises(OSError, match="disk went away"):
            client.post(f"/upload/{key}", content=broken())
        # The app never took the truncated body for a complete one.
        assert call_log[key] == []
        assert client.get("/empty").status_code == 204


def test_head_response_has_no_body(app: FastAPI) -> None:
    with in_process(app) as client:
        response = client.request("HEAD", "/echo")
    assert response.status_code == 200
    assert response.content == b""


def test_raise_app_exceptions_reraises_in_the_caller(app: FastAPI) -> None:
    transport = InProcessTransport(app, raise_app_exceptions=True)
    with (
        httpx.Client(transport=transport, base_url="http://in") as client,
        pytest.raises(RuntimeError, match="boom"),
    ):
        client.get("/crash")


async def no_response_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    return None


async def half_response_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    start: Message = {"type": "http.response.start", "status": 200, "headers": []}
    await send(start)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("died mid-response")


async def raw_crash_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    raise RuntimeError("no middleware to catch this")


def test_app_that_raises_before_responding_is_a_500() -> None:
    with httpx.Client(transport=InProcessTransport(raw_crash_app), base_url="http://in") as c:
        response = c.get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


def test_app_that_never_responds_is_a_500() -> None:
    with httpx.Client(transport=InProcessTransport(no_response_app), base_url="http://in") as c:
        assert c.get("/").status_code == 500


def test_app_that_dies_mid_response_drops_the_connection() -> None:
    transport = InProcessTransport(half_response_app)
    with (
        httpx.Client(transport=transport, base_url="http://in") as client,
        pytest.raises(httpx.RemoteProtocolError, match="before completing its response"),
    ):
        client.get("/")


def test_transport_runs_one_event_loop_thread_and_restarts_it_after_close(app: FastAPI) -> None:
    transport = InProcessTransport(app)

    def loop_threads() -> int:
        name = f"synapsenet-inprocess-{id(transport):x}"
        return sum(thread.name == name for thread in threading.enumerate())

    with httpx.Client(transport=transport, base_url="http://in") as client:
        assert loop_threads() == 0  # started lazily
        for _ in range(3):
            assert client.get("/empty").status_code == 204
        assert loop_threads() == 1
        transport.close()
        assert loop_threads() == 0
        assert client.get("/empty").status_code == 204
        assert loop_threads() == 1
    assert loop_threads() == 0


def test_scope_carries_path_query_and_root_path(app: FastAPI) -> None:
    seen: dict[str, Any] = {}

    async def spy(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = InProcessTransport(spy, root_path="/v1")
    with httpx.Client(transport=transport, base_url="http://svc.internal") as client:
        client.get("/models/a%20b", params={"stage": "prod"})
    assert seen["path"] == "/models/a b"
    assert seen["raw_path"] == b"/models/a%20b"
    assert seen["query_string"] == b"stage=prod"
    assert seen["root_path"] == "/v1"
    assert seen["server"] == ("svc.internal", 80)
