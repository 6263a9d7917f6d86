"""ServiceClient: the one way services call each other, and the SDK calls the platform.

A thin, synchronous layer over :class:`httpx.Client` that adds what every call between
services needs: the API key, a request id that follows the request across services,
retries with jittered backoff for requests that are safe to repeat, a circuit breaker per
peer, and errors mapped back from RFC 9457 problem documents to the
:mod:`synapsenet.errors` class the peer raised.

The transport decides where requests go: over the network (multi-process mode) httpx's
default; in a single process an :class:`~synapsenet.core.asgi_transport.InProcessTransport`,
and the same client code calls the app directly.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any, Self

import httpx

from synapsenet.core.circuit import CircuitBreaker
from synapsenet.errors import (
    InvalidError,
    SynapseNetError,
    UnavailableError,
    error_for_status,
    error_from_problem,
)

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
PROBLEM_JSON = "application/problem+json"

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods that may be repeated without changing the outcome (RFC 9110, 9.2.2)."""

request_id_var: ContextVar[str | None] = ContextVar("synapsenet_request_id", default=None)
"""The id of the request being served in this context.

The gateway sets it for each incoming request; calls a :class:`ServiceClient` makes while
serving that request carry the same ``X-Request-ID``, so logs of every service line up.
"""

# Failures where the request never left this process: repeating them is safe whatever the
# method, because the peer cannot have acted on a request it never received.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _package_version() -> str:
    try:
        return metadata.version("synapsenet")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


DEFAULT_USER_AGENT = f"synapsenet/{_package_version()}"


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed request.

    Only requests that are safe to repeat are retried: GET, HEAD, OPTIONS, PUT, DELETE, and
    POST when it carries an idempotency key. Connection failures (the request never reached
    the peer) are retried for every method.

    Waits use "full jitter" (a uniform draw between 0 and an exponentially growing cap), so
    clients that failed together do not retry together. A ``Retry-After`` header from the
    peer replaces the draw, capped at ``backoff_max``.

    Attributes:
        max_attempts: Attempts per logical request, the first one included; 1 disables
            retries.
        backoff_base: Cap of the first wait, in seconds; it doubles after each attempt.
        backoff_max: Longest wait, in seconds, whatever the attempt or ``Retry-After`` says.
        retry_statuses: Response statuses worth another attempt.
        rng: Source of jitter; pass ``random.Random(seed)`` for reproducible waits.
        sleep: How to wait; tests pass a function that records the waits instead.
    """

    max_attempts: int = 3
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise InvalidError(
                "The 'max_attempts' parameter of RetryPolicy must be an int >= 1. "
                f"Got {self.max_attempts!r} instead.",
                field="max_attempts",
            )
        if not _is_real(self.backoff_base) or self.backoff_base < 0:
            raise InvalidError(
                "The 'backoff_base' parameter of RetryPolicy must be a float >= 0. "
                f"Got {self.backoff_base!r} instead.",
                field="backoff_base",
            )
        if not _is_real(self.backoff_max) or self.backoff_max < self.backoff_base:
            raise InvalidError(
                "The 'backoff_max' parameter of RetryPolicy must be a float >= backoff_base "
                f"({self.backoff_base!r}). Got {self.backoff_max!r} instead.",
                field="backoff_max",
            )
        statuses = frozenset(self.retry_statuses)
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
            raise InvalidError(
                "The 'retry_statuses' parameter of RetryPolicy must be a set of HTTP status "
                f"codes (ints from 100 to 599). Got {self.retry_statuses!r} instead.",
                field="retry_statuses",
            )
        object.__setattr__(self, "retry_statuses", statuses)

    def may_retry(self, method: str, *, has_idempotency_key: bool) -> bool:
        """Whether a request may be repeated after the peer may have seen it.

        Args:
            method: The HTTP method.
            has_idempotency_key: Whether the request carries an ``Idempotency-Key``.

        Returns:
            True for idempotent methods, and for POST with an idempotency key.
        """
        method = method.upper()
        return method in IDEMPOTENT_METHODS or (method == "POST" and has_idempotency_key)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the given failed attempt.

        Args:
            attempt: The attempt that just failed, counting from 1.
            retry_after: Seconds the peer asked to wait (``Retry-After``), if it did.

        Returns:
            ``min(retry_after, backoff_max)`` when the peer asked; otherwise a uniform draw
            in ``[0, min(backoff_max, backoff_base * 2 ** (attempt - 1))]``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        # The exponent is bounded so that a huge attempt number cannot overflow the float.
        cap = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 64))
        return self.rng.uniform(0.0, cap)


DEFAULT_RETRY_POLICY = RetryPolicy()


class ServiceClient:
    """A synchronous HTTP client for one SynapseNet service (or the whole platform).

    Every call gets the API key, an ``X-Request-ID`` (the one given in ``headers``, else
    the one in :data:`request_id_var`, else a new uuid4 hex; the same for all retries of a
    call), retries under ``retry``, and the circuit breaker. A non-2xx answer raises the
    :class:`~synapsenet.errors.SynapseNetError` subclass the peer raised when it sent a
    problem document, else the class for its status; an unreachable peer raises
    :class:`~synapsenet.errors.UnavailableError`.

    Each service ships a subclass with typed methods; they stay one-liners::

        class RegistryClient(ServiceClient):
            def get_model(self, name: str) -> ModelPublic:
                return ModelPublic.model_validate(self.get_json(f"/v1/models/{name}"))

            def register_model(self, body: ModelCreate, *, idempotency_key: str) -> ModelPublic:
                data = self.post_json(
                    "/v1/models", body.model_dump(mode="json"), idempotency_key=idempotency_key
                )
                return ModelPublic.model_validate(data)

        # multi-process: over the network
        registry = RegistryClient("http://registry:8000", api_key=key)
        # single process: the same code, calling the app in-process
        registry = RegistryClient("http://synapsenet.internal", transport=InProcessTransport(app))

    Args:
        base_url: URL the request paths are relative to, e.g. ``http://registry:8000``.
        api_key: Sent as ``X-API-Key`` when given.
        transport: httpx transport; default is the network, or pass an
            :class:`~synapsenet.core.asgi_transport.InProcessTransport`.
        timeout: Seconds (or an :class:`httpx.Timeout`) for each attempt.
        retry: When and how to retry.
        breaker: Circuit breaker guarding this peer; by default a new one per client.
        user_agent: The ``User-Agent`` header.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        breaker: CircuitBreaker | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if not isinstance(timeout, httpx.Timeout) and (not _is_real(timeout) or timeout <= 0):
            raise InvalidError(
                "The 'timeout' parameter of ServiceClient must be a float > 0 or an "
                f"httpx.Timeout. Got {timeout!r} instead.",
                field="timeout",
            )
        headers = {"User-Agent": user_agent, "Accept": f"application/json, {PROBLEM_JSON}"}
        if api_key is not None:
            headers[API_KEY_HEADER] = api_key
        self.base_url = base_url
        self.retry = retry
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._http = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout, headers=headers
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send one logical request, retrying it as the policy allows.

        Args:
            method: HTTP method.
            path: Path relative to ``base_url``.
            json: JSON-serialisable body.
            params: Query parameters.
            headers: Extra headers; an ``X-Request-ID`` here is propagated as is.
            idempotency_key: Sent as ``Idempotency-Key``; makes a POST safe to retry. The
                peer must deduplicate on it.

        Returns:
            The 2xx response, body read.

        Raises:
            SynapseNetError: The peer answered non-2xx (the subclass it raised, when it
                sent a problem document).
            UnavailableError: The peer could not be reached, or its circuit is open.
        """
        method = method.upper()
        request_headers = httpx.Headers(headers)
        if REQUEST_ID_HEADER not in request_headers:
            request_headers[REQUEST_ID_HEADER] = request_id_var.get() or uuid.uuid4().hex
        if idempotency_key is not None:
            request_headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
        request = self._http.build_request(
            method, path, json=json, params=params, headers=request_headers
        )
        repeatable = self.retry.may_retry(method, has_idempotency_key=idempotency_key is not None)
        attempt = 0
        while True:
            attempt += 1
            self.breaker.acquire(target=self.base_url)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                self.breaker.record_failure()
                retryable = repeatable or isinstance(exc, _NOT_SENT_ERRORS)
                if retryable and attempt < self.retry.max_attempts:
                    self._wait(request, attempt, self.retry.backoff(attempt), repr(exc))
                    continue
                raise UnavailableError(
                    _transport_failure(request, exc, attempt, retried=retryable)
                ) from exc
            except Exception:
                self.breaker.record_failure()
                raise
            if response.status_code >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            if (
                response.status_code in self.retry.retry_statuses
                and repeatable
                and attempt < self.retry.max_attempts
            ):
                delay = self.retry.backoff(attempt, _retry_after(response))
                self._wait(request, attempt, delay, f"HTTP {response.status_code}")
                continue
            if response.is_success:
                return response
            raise _error_from_response(response)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        content: bytes | Iterable[bytes] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Iterator[httpx.Response]:
        """Send one request whose body or answer streams (large files); never retried.

        :meth:`request` builds a whole body and reads a whole answer, which a multi-gigabyte
        file must not be. This keeps the rest: the request id, the circuit breaker, and
        errors mapped back to their classes.

        Args:
            method: HTTP method.
            path: Path relative to ``base_url``.
            content: The body, as bytes or an iterable of byte blocks (streamed as is).
            params: Query parameters.
            headers: Extra headers.
            timeout: Overrides the client's timeout (e.g. no read timeout for uploads).

        Yields:
            The 2xx response, its body not yet read; closed when the block ends.

        Raises:
            SynapseNetError: The peer answered non-2xx.
            UnavailableError: The peer could not be reached, or its circuit is open.
        """
        request_headers = httpx.Headers(headers)
        if REQUEST_ID_HEADER not in request_headers:
            request_headers[REQUEST_ID_HEADER] = request_id_var.get() or uuid.uuid4().hex
        request = self._http.build_request(
            method.upper(),
            path,
            content=content,
            params=params,
            headers=request_headers,
            timeout=timeout if timeout is not None else self._http.timeout,
        )
        self.breaker.acquire(target=self.base_url)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            self.breaker.record_failure()
            raise UnavailableError(_transport_failure(request, exc, 1, retried=False)) from exc
        if response.status_code >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        try:
            if not response.is_success:
                response.read()
                raise _error_from_response(response)
            yield response
        finally:
            response.close()

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` and return its parsed JSON body (``None`` when empty)."""
        return _json_body(self.request("GET", path, params=params, headers=headers))

    def post_json(
        self,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """POST ``json`` to ``path`` and return the parsed JSON answer (``None`` when empty).

        Without ``idempotency_key`` the POST is sent at most once past the connection.
        """
        response = self.request(
            "POST", path, json=json, params=params, headers=headers, idempotency_key=idempotency_key
        )
        return _json_body(response)

    def put_json(
        self,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """PUT ``json`` to ``path`` and return the parsed JSON answer (``None`` when empty)."""
        return _json_body(self.request("PUT", path, json=json, params=params, headers=headers))

    def delete(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """DELETE ``path`` and return the parsed JSON answer (``None`` when empty)."""
        return _json_body(self.request("DELETE", path, params=params, headers=headers))

    def close(self) -> None:
        """Close the connections, and the transport with them."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _wait(self, request: httpx.Request, attempt: int, delay: float, reason: str) -> None:
        logger.info(
            "Retrying %s %s in %.2f s after %s (attempt %d of %d, request id %s)",
            request.method,
            request.url,
            delay,
            reason,
            attempt + 1,
            self.retry.max_attempts,
            request.headers[REQUEST_ID_HEADER],
        )
        self.retry.sleep(delay)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the peer asked to wait, from ``Retry-After`` (delta-seconds or HTTP-date)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT even when they do not say so
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _transport_failure(
    request: httpx.Request, exc: httpx.TransportError, attempts: int, *, retried: bool
) -> str:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    detail = (
        f"{request.method} {request.url} {what} after {attempts} attempt"
        f"{'' if attempts == 1 else 's'}: {type(exc).__name__}: {exc or 'no details'}"
    )
    if not retried:
        detail += (
            f" (not retried: the peer may have received the {request.method}, and it carries "
            "no idempotency key)"
        )
    return detail


def _error_from_response(response: httpx.Response) -> SynapseNetError:
    """The exception a non-2xx response stands for."""
    status = response.status_code
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media_type == PROBLEM_JSON:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            return error_from_problem(problem, status)
    cls = error_for_status(status)
    request = response.request
    detail = f"{request.method} {request.url} returned HTTP {status} {response.reason_phrase}"
    body = response.text.strip()
    if body:
        detail += f": {body[:300]}{'...' if len(body) > 300 else ''}"
    return cls(detail)


def _json_body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        request = response.request
        raise SynapseNetError(
            f"{request.method} {request.url} returned HTTP {response.status_code} with a body "
            f"that is not JSON (Content-Type {response.headers.get('Content-Type')!r})."
        ) from exc
