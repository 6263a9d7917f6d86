"""The explanation cache: content-hashed keys, safe values, version invalidation, single-flight.

An explanation is fully determined by the model (name and version), the explainer (type and
parameters) and the input, so its key is the BLAKE3 digest of their canonical serialisation
(:func:`cache_key`; the format is described in ``_cache_codec``). Values are encoded without
pickle (:func:`encode_explanation`); bytes that do not decode are a miss, never executed.

Each model version is a namespace with a generation counter. Entries are stored under the
current generation, so :meth:`ExplanationCache.invalidate` retires a whole version with one
``INCR``; the old entries expire by TTL.

:meth:`ExplanationCache.get_or_compute` computes a missing explanation once however many
callers ask for it at the same time: callers in this process wait on the first caller's
future, and with a shared backend (Redis) callers in other processes wait on a short lock
key for the value to appear, computing themselves if the holder dies (the lock expires) or
the wait runs out.

The cache never fails a request because of its store: when the backend is unreachable the
explanation is computed and returned, a warning is logged, the error counter grows and the
``degraded`` gauge is set, and a circuit breaker stops further attempts for a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

import blake3
from prometheus_client import CollectorRegistry, Counter, Gauge

from synapsenet.core.circuit import CircuitBreaker, CircuitOpenError
from synapsenet.errors import InvalidError
from synapsenet.services.explainability._cache_backends import (
    CacheBackend,
    CacheBackendError,
    InProcessLRUBackend,
    RedisBackend,
)
from synapsenet.services.explainability._cache_codec import (
    KEY_FORMAT,
    CorruptValueError,
    UnencodableValueError,
    canonical_json,
    decode_explanation,
    encode_explanation,
    frame,
    input_pieces,
)
from synapsenet.services.explainability.models import Explanation, ExplanationType

__all__ = [
    "CacheBackend",
    "CacheBackendError",
    "CacheKey",
    "CacheStats",
    "CorruptValueError",
    "ExplanationCache",
    "InProcessLRUBackend",
    "RedisBackend",
    "UnencodableValueError",
    "cache_key",
    "decode_explanation",
    "encode_explanation",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Failed:
    """What a backend call returns when the store failed or the breaker skipped it."""


_FAILED: Final = _Failed()

DEFAULT_TTL_SECONDS: Final = 24 * 3600.0
_OWNER: Final = "ExplanationCache"
_MAX_POLL_SECONDS: Final = 0.05


def _text(value: object, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidError(
            f"The '{name}' of a cache key must be a non-empty str. Got {value!r} instead.",
            field=name,
        )
    return value


def cache_key(
    model_name: str,
    model_version: str | int,
    explainer_type: ExplanationType | str,
    parameters: Mapping[str, Any] | None,
    inputs: object,
) -> str:
    """The content address of an explanation: BLAKE3 of its canonical serialisation.

    A pure function. Equal inputs give equal keys whatever their memory layout (strides,
    byte order, Fortran order), dict insertion order or NaN payloads; any change to a name,
    the version, the explainer, a parameter value or type (``1`` is not ``1.0``), or the
    input's dtype, shape or values gives another key. Lists and tuples in parameters are
    the same sequence; ``None`` parameters are ``{}``; an int version is its decimal text.

    Args:
        model_name: The model's registered name.
        model_version: Its version.
        explainer_type: The explanation method (an :class:`ExplanationType` or any name).
        parameters: The explainer's parameters (JSON-like values, arrays allowed).
        inputs: What is explained: an array-like, a text, or a pandas / polars DataFrame.

    Returns:
        64 lowercase hex characters.

    Raises:
        InvalidError: Naming the field, for empty names or values without a canonical form.
    """
    hasher = blake3.blake3(KEY_FORMAT)
    hasher.update(frame(_text(model_name, "model_name").encode()))
    hasher.update(frame(_text(model_version, "model_version").encode()))
    explainer = (
        explainer_type.value if isinstance(explainer_type, ExplanationType) else explainer_type
    )
    hasher.update(frame(_text(explainer, "explainer_type").encode()))
    hasher.update(frame(canonical_json({} if parameters is None else dict(parameters)).encode()))
    for piece in input_pieces(inputs):
        hasher.update(piece)
    return hasher.hexdigest()


def _namespace(model_name: str, model_version: str) -> str:
    """The invalidation namespace of a model version (32 hex characters)."""
    material = (
        KEY_FORMAT + b":namespace" + frame(model_name.encode()) + frame(model_version.encode())
    )
    return blake3.blake3(KEY_FORMAT + b":namespace" + material).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """Where an explanation lives in the cache.

    Build it with :meth:`build` (or :meth:`ExplanationCache.key`), which hashes the input
    once; pass it to ``get``, ``put`` and ``get_or_compute``.

    Attributes:
        model_name: The model's registered name.
        model_version: Its version.
        digest: :func:`cache_key` of everything the explanation depends on.
        namespace: The model version's invalidation namespace.
    """

    model_name: str
    model_version: str
    digest: str
    namespace: str

    @classmethod
    def build(
        cls,
        model_name: str,
        model_version: str | int,
        explainer_type: ExplanationType | str,
        parameters: Mapping[str, Any] | None,
        inputs: object,
    ) -> CacheKey:
        """Hash the parts of an explanation's identity into a key (see :func:`cache_key`)."""
        digest = cache_key(model_name, model_version, explainer_type, parameters, inputs)
        version = _text(model_version, "model_version")
        return cls(model_name, version, digest, _namespace(model_name, version))


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache since it was created.

    Attributes:
        hits: Lookups answered from the store (including after waiting on another
            process's computation).
        misses: Explanations computed by the caller (or lookups that found nothing).
        coalesced: Calls that waited for the same key's computation in this process.
        errors: Store failures (unreachable, timed out) and values that could not be
            encoded.
        corrupt: Stored values that failed to decode (also counted as misses).
        degraded: True while the store is failing and explanations are served uncached.
    """

    hits: int
    misses: int
    coalesced: int
    errors: int
    corrupt: int
    degraded: bool

    @property
    def requests(self) -> int:
        """Lookups served: hits, misses and coalesced calls."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_rate(self) -> float:
        """Share of requests that did not compute (0 before any request)."""
        return (self.hits + self.coalesced) / self.requests if self.requests else 0.0


class _Metrics:
    """Thread-safe counters, mirrored to Prometheus when a registry is given."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "coalesced": 0, "errors": 0, "corrupt": 0}
        self.degraded = False
        self._counters: dict[str, Counter] = {}
        self._gauge: Gauge | None = None
        if registry is not None:
            for name, help_text in (
                ("hits", "Explanation cache lookups answered from the store."),
                ("misses", "Explanation cache lookups that found nothing usable."),
                ("coalesced", "Calls that waited for a concurrent computation of the same key."),
            ):
                self._counters[name] = Counter(
                    f"synapsenet_explanation_cache_{name}", help_text, registry=registry
                )
            errors = Counter(
                "synapsenet_explanation_cache_errors",
                "Explanation cache failures by kind: backend (store unreachable), corrupt "
                "(value failed to decode), encode (value could not be serialised).",
                ["kind"],
                registry=registry,
            )
            for kind in ("backend", "corrupt", "encode"):
                self._counters[f"error:{kind}"] = errors.labels(kind=kind)
            self._gauge = Gauge(
                "synapsenet_explanation_cache_degraded",
                "1 while the explanation cache's store is failing and results go uncached.",
                registry=registry,
            )

    def count(self, name: str, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self._counts[name] += 1
            else:
                self._counts["errors"] += 1
                if kind == "corrupt":
                    self._counts["corrupt"] += 1
        counter = self._counters.get(name if kind is None else f"error:{kind}")
        if counter is not None:
            counter.inc()

    def set_degraded(self, degraded: bool) -> None:
        self.degraded = degraded
        if self._gauge is not None:
            self._gauge.set(1.0 if degraded else 0.0)

    def snapshot(self) -> CacheStats:
        with self._lock:
            return CacheStats(degraded=self.degraded, **self._counts)


class ExplanationCache:
    """Content-hashed cache of explanations with single-flight computation.

    Args:
        backend: Where entries live; an :class:`InProcessLRUBackend` by default (embedded
            mode), a :class:`RedisBackend` past one process.
        ttl_seconds: Lifetime of an entry.
        lock_ttl_seconds: Lifetime of a cross-process compute lock; a holder that dies
            blocks the key at most this long. Should exceed a typical computation.
        wait_timeout_seconds: How long a caller waits on another process's computation
            before computing itself.
        poll_interval_seconds: First pause between checks while waiting (doubles up to
            50 ms).
        registry: Prometheus registry for ``synapsenet_explanation_cache_*`` metrics.
        breaker: Circuit breaker in front of the backend (default: open after 3
            consecutive failures, retry after 5 s).

    Raises:
        InvalidError: Naming the parameter, if a duration is not a positive number.

    Example:
        >>> cache = ExplanationCache()
        >>> key = cache.key("churn", "3", "shap_tree", {"check_additivity": True}, [[1.0, 2.0]])
        >>> explanation, hit = cache.get_or_compute(key, compute)  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        lock_ttl_seconds: float = 30.0,
        wait_timeout_seconds: float = 30.0,
        poll_interval_seconds: float = 0.005,
        registry: CollectorRegistry | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.backend: CacheBackend = InProcessLRUBackend() if backend is None else backend
        self.ttl_seconds = _check_duration(ttl_seconds, "ttl_seconds")
        self.lock_ttl_seconds = _check_duration(lock_ttl_seconds, "lock_ttl_seconds")
        self.wait_timeout_seconds = _check_duration(wait_timeout_seconds, "wait_timeout_seconds")
        self.poll_interval_seconds = _check_duration(poll_interval_seconds, "poll_interval_seconds")
        self._breaker = breaker or CircuitBreaker(failure_threshold=3, reset_timeout=5.0)
        self._metrics = _Metrics(registry)
        self._inflight: dict[tuple[str, str], Future[Explanation]] = {}
        self._inflight_lock = threading.Lock()

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        return self._metrics.snapshot()

    def key(
        self,
        model_name: str,
        model_version: str | int,
        explainer_type: ExplanationType | str,
        parameters: Mapping[str, Any] | None,
        inputs: object,
    ) -> CacheKey:
        """Build the key of an explanation (see :func:`cache_key`)."""
        return CacheKey.build(model_name, model_version, explainer_type, parameters, inputs)

    def get(self, key: CacheKey) -> Explanation | None:
        """The cached explanation, or None (also when the store is unreachable).

        Counts a hit or a miss.
        """
        _, cached = self._load(key)
        self._metrics.count("misses" if cached is None else "hits")
        return cached

    def put(self, key: CacheKey, explanation: Explanation) -> None:
        """Store an explanation under the current generation of its model version.

        Failures (store unreachable, unencodable value) are logged and counted, not raised.
        """
        generation = self._call(lambda: self.backend.generation(key.namespace), "read")
        if not isinstance(generation, _Failed):
            self._store(key, generation, explanation)

    def invalidate(self, model_name: str, model_version: str | int) -> int:
        """Retire every cached explanation of a model version in O(1).

        Args:
            model_name: The model's registered name.
            model_version: The version whose explanations are stale.

        Returns:
            The version's new generation.

        Raises:
            UnavailableError: If the store cannot be reached; stale entries would survive,
                so this is not swallowed.
        """
        version = _text(model_version, "model_version")
        namespace = _namespace(_text(model_name, "model_name"), version)
        return self.backend.bump_generation(namespace)

    def get_or_compute(
        self, key: CacheKey, compute: Callable[[], Explanation]
    ) -> tuple[Explanation, bool]:
        """The cached explanation, or ``compute()``'s result, computed once per key.

        Concurrent calls for the same key in this process share one computation (and its
        exception, if it raises); with a shared backend, calls in other processes wait for
        the first one's result. If the store fails, the explanation is still computed and
        returned.

        Args:
            key: The explanation's key.
            compute: Computes the explanation; called at most once by this call.

        Returns:
            The explanation, and True when this call did not run ``compute`` (the value came
            from the store or from a concurrent computation of the same key).
        """
        slot = (key.namespace, key.digest)
        with self._inflight_lock:
            future = self._inflight.get(slot)
            leader = future is None
            if future is None:
                future = self._inflight[slot] = Future()
        if not leader:
            self._metrics.count("coalesced")
            return future.result(), True
        try:
            explanation, hit = self._fetch_or_compute(key, compute)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                del self._inflight[slot]
        future.set_result(explanation)
        return explanation, hit

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()

    # --- internals ------------------------------------------------------------------------

    def _fetch_or_compute(
        self, key: CacheKey, compute: Callable[[], Explanation]
    ) -> tuple[Explanation, bool]:
        generation, cached = self._load(key)
        if cached is not None:
            self._metrics.count("hits")
            return cached, True
        token: str | None = None
        if generation is not None and self.backend.shared:
            outcome = self._wait_for_lock(key, generation)
            if isinstance(outcome, Explanation):
                self._metrics.count("hits")
                return outcome, True
            generation, token = outcome
        try:
            explanation = compute()
            self._metrics.count("misses")
            if generation is not None:
                self._store(key, generation, explanation)
        finally:
            if token is not None and generation is not None:
                lock_generation, lock_token = generation, token
                self._call(
                    lambda: self.backend.release_lock(
                        key.namespace, lock_generation, key.digest, lock_token
                    ),
                    "unlock",
                )
        return explanation, False

    def _wait_for_lock(
        self, key: CacheKey, generation: int
    ) -> Explanation | tuple[int | None, str | None]:
        """Take the compute lock, or wait for its holder's value.

        Returns:
            The value another process stored while we waited, or ``(generation, token)``:
            the token when we hold the lock, None when the wait ran out or the store failed
            (then compute without it; generation None means do not store either).
        """
        deadline = time.monotonic() + self.wait_timeout_seconds
        pause = self.poll_interval_seconds
        while True:
            acquire = partial(
                self.backend.acquire_lock,
                key.namespace,
                generation,
                key.digest,
                self.lock_ttl_seconds,
            )
            token = self._call(acquire, "lock")
            if isinstance(token, _Failed):
                return None, None
            if token is not None or time.monotonic() >= deadline:
                return generation, token
            time.sleep(pause)
            pause = min(2 * pause, _MAX_POLL_SECONDS)
            current, cached = self._load(key)
            if cached is not None:
                return cached
            if current is None:
                return None, None
            # An invalidation while we waited moves the computation to the new generation.
            generation = current

    @property
    def degraded(self) -> bool:
        """True while the store is failing (the last call to it failed or was skipped)."""
        return self._metrics.degraded

    def _load(self, key: CacheKey) -> tuple[int | None, Explanation | None]:
        """``(generation, explanation or None)``; generation None when the store failed."""
        found = self._call(lambda: self.backend.read(key.namespace, key.digest), "read")
        if isinstance(found, _Failed):
            return None, None
        generation, raw = found
        if raw is None:
            return generation, None
        try:
            return generation, decode_explanation(raw)
        except CorruptValueError as exc:
            logger.warning(
                "Corrupt explanation cache entry for %s version %s (%s); recomputing.",
                key.model_name,
                key.model_version,
                exc,
            )
            self._metrics.count("errors", kind="corrupt")
            return generation, None

    def _store(self, key: CacheKey, generation: int, explanation: Explanation) -> None:
        try:
            value = encode_explanation(explanation)
        except UnencodableValueError as exc:
            logger.warning("Explanation not cached: %s", exc.detail)
            self._metrics.count("errors", kind="encode")
            return
        self._call(
            lambda: self.backend.write(
                key.namespace, generation, key.digest, value, self.ttl_seconds
            ),
            "write",
        )

    def _call(self, operation: Callable[[], T], action: str) -> T | _Failed:
        """Run one backend operation behind the breaker; ``_FAILED`` if it fails."""
        try:
            self._breaker.acquire("the explanation cache store")
        except CircuitOpenError:
            self._metrics.set_degraded(True)
            return _FAILED
        try:
            result = operation()
        except CacheBackendError as exc:
            self._breaker.record_failure()
            self._metrics.set_degraded(True)
            self._metrics.count("errors", kind="backend")
            logger.warning("Explanation cache %s failed, serving uncached: %s", action, exc.detail)
            return _FAILED
        self._breaker.record_success()
        self._metrics.set_degraded(False)
        return result


def _check_duration(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidError(
            f"The '{name}' parameter of {_OWNER} must be a float > 0. Got {value!r} instead.",
            field=name,
        )
    return float(value)
