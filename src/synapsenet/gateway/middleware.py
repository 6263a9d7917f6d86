"""ASGI middleware: request ids, and Prometheus request metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synapsenet.core.client import request_id_var

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when well-formed).

    The id is stored in ``request.state.request_id`` and echoed in the response header, so a
    problem document, a log line and a client error can all be matched up.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag the request and its response with the request id."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = given if given and _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        # Calls this request makes to other services carry the same id.
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. ``/v1/keys/{key_id}``.

    Routers included in routers know only their own part of the path, so the part before it
    is recovered from the request path. Labelling by template keeps metric cardinality
    bounded whatever ids appear in URLs.
    """
    route: Any = scope.get("route")
    inner = getattr(route, "path_format", None)
    if not isinstance(inner, str):
        return "unmatched"
    path = str(scope.get("path", ""))
    try:
        rendered = inner.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return inner
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + inner
    return inner


_metrics_by_registry: WeakKeyDictionary[CollectorRegistry, tuple[Counter, Histogram]] = (
    WeakKeyDictionary()
)


def http_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    """The request counter and latency histogram of ``registry``, created once per registry.

    Several apps may serve one platform (and so one registry); they share these metrics.
    """
    if registry not in _metrics_by_registry:
        _metrics_by_registry[registry] = (
            Counter(
                "synapsenet_http_requests_total",
                "HTTP requests by method, route template and status.",
                ["method", "route", "status"],
                registry=registry,
            ),
            Histogram(
                "synapsenet_http_request_duration_seconds",
                "HTTP request latency by method and route template.",
                ["method", "route"],
                registry=registry,
            ),
        )
    return _metrics_by_registry[registry]


class MetricsMiddleware:
    """Counts requests and times them, labelled by route template (not raw path).

    Args:
        app: The wrapped application.
        registry: The Prometheus registry of this platform instance.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests, self.latency = http_metrics(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time the request once it has been answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            template = route_template(scope)
            method = str(scope.get("method", ""))
            self.requests.labels(method, template, str(status)).inc()
            self.latency.labels(method, template).observe(time.perf_counter() - started)
