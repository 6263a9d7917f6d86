"""Where the explanation cache keeps its bytes: an in-process LRU, or Redis.

A backend stores opaque values under ``(namespace, generation, key)`` and keeps one
generation counter per namespace (one namespace per model version). Bumping the counter
orphans every entry of the old generation in O(1): readers only ever look under the current
one, and the orphans age out by TTL (Redis) or least-recent use (LRU). No backend ever scans
keys.

A backend that other processes share (``shared = True``) also offers a short lock per entry,
so that across processes only one computes a missing explanation while the others wait.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from synapsenet.errors import InvalidError, UnavailableError

__all__ = [
    "CacheBackend",
    "CacheBackendError",
    "InProcessLRUBackend",
    "RedisBackend",
]

_IN_PROCESS_HOLDER: Final = "in-process"

# One round trip for a lookup: the current generation, and the entry stored under it.
_READ_SCRIPT: Final = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ARGV[2])}
"""
# Delete the lock only if this caller still holds it (it may have expired and moved on).
_RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class CacheBackendError(UnavailableError):
    """The cache's store could not be reached or answered with an error."""


class CacheBackend(Protocol):
    """Storage of encoded explanations under per-namespace generations.

    Attributes:
        shared: True when other processes see the same entries, so cross-process
            single-flight locking is worth a round trip.
    """

    shared: bool

    def read(self, namespace: str, key: str) -> tuple[int, bytes | None]:
        """The namespace's current generation, and the value of ``key`` under it (or None)."""
        ...

    def generation(self, namespace: str) -> int:
        """The namespace's current generation (0 until first bumped)."""
        ...

    def write(
        self, namespace: str, generation: int, key: str, value: bytes, ttl_seconds: float
    ) -> None:
        """Store ``value`` under ``key`` in ``generation`` for ``ttl_seconds``."""
        ...

    def bump_generation(self, namespace: str) -> int:
        """Start a new generation of the namespace; returns it."""
        ...

    def acquire_lock(
        self, namespace: str, generation: int, key: str, ttl_seconds: float
    ) -> str | None:
        """Take the compute lock of ``key`` for ``ttl_seconds``: a token, or None if held."""
        ...

    def release_lock(self, namespace: str, generation: int, key: str, token: str) -> None:
        """Give the lock back, if ``token`` still holds it."""
        ...

    def close(self) -> None:
        """Release connections the backend opened."""
        ...


def _check_positive_int(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must be an int >= 1. Got {value!r} instead.",
            field=name,
        )
    return value


class InProcessLRUBackend:
    """Entries in this process's memory, least recently used evicted first (embedded mode).

    Thread-safe. Bounded by both entry count and total value bytes; a value larger than
    ``max_bytes`` is not stored. Expired entries are dropped when read or evicted.

    Args:
        max_entries: Most entries kept.
        max_bytes: Most value bytes kept.
        clock: Monotonic clock in seconds (tests pass a fake one).
    """

    shared = False

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 2**20,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = _check_positive_int(max_entries, "max_entries", "InProcessLRUBackend")
        self.max_bytes = _check_positive_int(max_bytes, "max_bytes", "InProcessLRUBackend")
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int, str], tuple[bytes, float]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._bytes = 0

    @property
    def size(self) -> tuple[int, int]:
        """``(entries, bytes)`` currently held, expired ones included until dropped."""
        with self._lock:
            return len(self._entries), self._bytes

    def read(self, namespace: str, key: str) -> tuple[int, bytes | None]:
        """The namespace's current generation, and the value of ``key`` under it (or None)."""
        with self._lock:
            generation = self._generations.get(namespace, 0)
            slot = (namespace, generation, key)
            entry = self._entries.get(slot)
            if entry is None:
                return generation, None
            value, expires_at = entry
            if self._clock() >= expires_at:
                self._drop(slot)
                return generation, None
            self._entries.move_to_end(slot)
            return generation, value

    def generation(self, namespace: str) -> int:
        """The namespace's current generation (0 until first bumped)."""
        with self._lock:
            return self._generations.get(namespace, 0)

    def write(
        self, namespace: str, generation: int, key: str, value: bytes, ttl_seconds: float
    ) -> None:
        """Store ``value``, evicting least recently used entries to stay within bounds."""
        if len(value) > self.max_bytes:
            return
        slot = (namespace, generation, key)
        with self._lock:
            if slot in self._entries:
                self._drop(slot)
            self._entries[slot] = (value, self._clock() + ttl_seconds)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, slot: tuple[str, int, str]) -> None:
        value, _ = self._entries.pop(slot)
        self._bytes -= len(value)

    def bump_generation(self, namespace: str) -> int:
        """Start a new generation; old entries stay until least-recent use evicts them."""
        with self._lock:
            generation = self._generations.get(namespace, 0) + 1
            self._generations[namespace] = generation
            return generation

    def acquire_lock(
        self,
        namespace: str,  # noqa: ARG002 - the lock is never contended in one process
        generation: int,  # noqa: ARG002
        key: str,  # noqa: ARG002
        ttl_seconds: float,  # noqa: ARG002
    ) -> str | None:
        """Always granted: within one process the cache's own single-flight suffices."""
        return _IN_PROCESS_HOLDER

    def release_lock(self, namespace: str, generation: int, key: str, token: str) -> None:
        """Nothing to release."""

    def close(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class RedisBackend:
    """Entries in Redis, shared by every process that uses the same server and prefix.

    Keys, all under ``prefix`` and hash-tagged by namespace (one Redis Cluster slot per model
    version, so the one-round-trip read script may touch both of its keys):

    - ``<prefix>{<namespace>}:gen``: the generation counter (``INCR`` to invalidate);
    - ``<prefix>{<namespace>}:<generation>:<key>``: an entry, with a TTL (``SET PX``);
    - ``<prefix>{<namespace>}:lock:<generation>:<key>``: a compute lock (``SET NX PX``).

    Every Redis or socket error is raised as :class:`CacheBackendError`.

    Args:
        client: A ``redis.Redis`` returning bytes (``decode_responses=False``), or a URL;
            from a URL the backend builds (and closes) its own client with short timeouts
            and no retries, so a dead server costs callers milliseconds, not seconds.
        prefix: Start of every key.
        socket_timeout: Seconds to wait for a reply (URL only).
        connect_timeout: Seconds to wait for a connection (URL only).

    Raises:
        InvalidError: If the client decodes responses to str.
    """

    shared = True

    def __init__(
        self,
        client: redis.Redis | str,
        prefix: str = "synapsenet:explanations:",
        *,
        socket_timeout: float = 0.5,
        connect_timeout: float = 0.5,
    ) -> None:
        if isinstance(client, str):
            self._client = redis.Redis.from_url(
                client,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._owns_client = True
        else:
            if client.connection_pool.connection_kwargs.get("decode_responses"):
                raise InvalidError(
                    "The 'client' parameter of RedisBackend must return bytes "
                    "(decode_responses=False): cache values are binary.",
                    field="client",
                )
            self._client = client
            self._owns_client = False
        self.prefix = prefix
        self._read_script = self._client.register_script(_READ_SCRIPT)
        self._release_script = self._client.register_script(_RELEASE_SCRIPT)

    def _base(self, namespace: str) -> str:
        return f"{self.prefix}{{{namespace}}}:"

    def generation_key(self, namespace: str) -> str:
        """The Redis key of the namespace's generation counter."""
        return self._base(namespace) + "gen"

    def entry_key(self, namespace: str, generation: int, key: str) -> str:
        """The Redis key of an entry."""
        return f"{self._base(namespace)}{generation}:{key}"

    def lock_key(self, namespace: str, generation: int, key: str) -> str:
        """The Redis key of an entry's compute lock."""
        return f"{self._base(namespace)}lock:{generation}:{key}"

    def read(self, namespace: str, key: str) -> tuple[int, bytes | None]:
        """The current generation and the entry under it, in one round trip."""
        try:
            generation, value = self._read_script(
                keys=[self.generation_key(namespace)],
                args=[self._base(namespace), f":{key}"],
            )
            return int(generation), value
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def generation(self, namespace: str) -> int:
        """The namespace's current generation (0 until first bumped)."""
        try:
            value = self._client.get(self.generation_key(namespace))
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return 0 if value is None else int(value)

    def write(
        self, namespace: str, generation: int, key: str, value: bytes, ttl_seconds: float
    ) -> None:
        """``SET`` the entry with a TTL in milliseconds (at least 1)."""
        try:
            self._client.set(
                self.entry_key(namespace, generation, key),
                value,
                px=max(1, round(ttl_seconds * 1000)),
            )
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def bump_generation(self, namespace: str) -> int:
        """``INCR`` the generation counter."""
        try:
            return int(self._client.incr(self.generation_key(namespace)))
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def acquire_lock(
        self, namespace: str, generation: int, key: str, ttl_seconds: float
    ) -> str | None:
        """``SET NX PX`` a random token; None while another holder's lock lives."""
        token = uuid.uuid4().hex
        try:
            taken = self._client.set(
                self.lock_key(namespace, generation, key),
                token,
                nx=True,
                px=max(1, round(ttl_seconds * 1000)),
            )
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return token if taken else None

    def release_lock(self, namespace: str, generation: int, key: str, token: str) -> None:
        """Delete the lock if ``token`` still holds it."""
        try:
            self._release_script(keys=[self.lock_key(namespace, generation, key)], args=[token])
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        """Close the client if this backend built it from a URL."""
        if self._owns_client:
            self._client.close()


def _unavailable(exc: BaseException) -> CacheBackendError:
    return CacheBackendError(f"Redis cache unavailable: {type(exc).__name__}: {exc}")
