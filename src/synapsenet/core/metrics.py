"""Prometheus metrics shared by every service instance on one metrics registry.

Several apps may serve one platform (tests, the CLI, an embedded server), and Prometheus
refuses a metric registered twice on a registry. :func:`counter` and :func:`histogram` return
the metric already registered under that name on that registry, or register it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

_Metric = TypeVar("_Metric", bound=MetricWrapperBase)

_by_registry: WeakKeyDictionary[CollectorRegistry, dict[str, MetricWrapperBase]] = (
    WeakKeyDictionary()
)
_lock = threading.Lock()

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram buckets in seconds for request-path work (sub-millisecond to seconds)."""


def _shared(registry: CollectorRegistry, name: str, kind: type[_Metric], build: _Metric) -> _Metric:
    with _lock:
        metrics = _by_registry.setdefault(registry, {})
        existing = metrics.get(name)
        if existing is None:
            registry.register(build)
            metrics[name] = build
            return build
    if not isinstance(existing, kind):
        raise TypeError(f"metric {name!r} is registered as a {type(existing).__name__}")
    return existing


def counter(
    registry: CollectorRegistry | None,
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
) -> Counter:
    """The counter ``name`` of ``registry``, registered on first use (unregistered if None)."""
    build = Counter(name, documentation, labelnames, registry=None)
    return build if registry is None else _shared(registry, name, Counter, build)


def histogram(
    registry: CollectorRegistry | None,
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    buckets: Sequence[float] = LATENCY_BUCKETS,
) -> Histogram:
    """The histogram ``name`` of ``registry``, registered on first use (unregistered if None)."""
    build = Histogram(name, documentation, labelnames, registry=None, buckets=buckets)
    return build if registry is None else _shared(registry, name, Histogram, build)
