"""The platform's shared resources, opened once from settings and handed to every service.

:class:`Platform` owns the database, the object store, the event bus with its outbox relay,
the optional shared cache, the API key store and the Prometheus registry. Opening it checks
every backend, so a bad setting fails at start with one line naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from prometheus_client import CollectorRegistry

from synapsenet.config import ENV_PREFIX, Settings
from synapsenet.core.auth import ApiKeyStore
from synapsenet.core.db import Database
from synapsenet.core.events import EventBus, InMemoryEventBus
from synapsenet.core.jobs import JobRunner
from synapsenet.core.outbox import Inbox, OutboxRelay
from synapsenet.core.redis_bus import RedisStreamsEventBus
from synapsenet.core.storage import ObjectStore, open_object_store
from synapsenet.errors import ConfigurationError, UnavailableError

logger = logging.getLogger(__name__)


def open_event_bus(settings: Settings) -> EventBus:
    """Build the bus the settings name and check that it answers.

    Raises:
        ConfigurationError: Naming ``SYNAPSENET_EVENT_BUS`` when Redis is unreachable.
    """
    if settings.event_bus == "memory":
        return InMemoryEventBus()
    bus = RedisStreamsEventBus(settings.event_bus, stream=settings.event_stream)
    try:
        bus.ping()
    except UnavailableError as exc:
        bus.close()
        raise ConfigurationError(ENV_PREFIX + "EVENT_BUS", exc.detail) from exc
    return bus


def open_cache(settings: Settings) -> redis.Redis | None:
    """Connect to the shared Redis cache, if one is configured, and check that it answers.

    Raises:
        ConfigurationError: Naming ``SYNAPSENET_CACHE_URL`` when Redis is unreachable.
    """
    if settings.cache_url is None:
        return None
    client = redis.Redis.from_url(settings.cache_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise ConfigurationError(
            ENV_PREFIX + "CACHE_URL", f"cannot reach Redis at {settings.cache_url}: {exc}"
        ) from exc
    return client


@dataclass
class Platform:
    """Everything a service needs from the platform, opened once per process.

    Attributes:
        settings: The validated settings.
        db: The relational database (migrated when opened with ``migrate=True``).
        store: Artifacts and dataset chunks.
        bus: Where relayed events go.
        relay: Publishes the outbox to the bus (started by :meth:`start`).
        inbox: Makes event consumers idempotent.
        keys: API keys.
        jobs: Background jobs (batch explanations, replays) with status and progress.
        cache: The shared Redis cache, or None for in-process caching.
        metrics: Prometheus registry of this platform instance.
    """

    settings: Settings
    db: Database
    store: ObjectStore
    bus: EventBus
    relay: OutboxRelay
    inbox: Inbox
    keys: ApiKeyStore
    jobs: JobRunner
    cache: redis.Redis | None = None
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Platform:
        """Open every backend the settings name, checking each one.

        Args:
            settings: The settings to open.
            migrate: Apply pending database migrations (the server does; tools may not).

        Raises:
            ConfigurationError: Naming the first setting whose backend is unusable; whatever
                was opened before it is closed again.
        """
        settings.check_safe()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        closers: list[Callable[[], None]] = []
        try:
            db = Database.from_settings(settings)
            closers.append(db.dispose)
            db.check_reachable()
            if migrate:
                db.upgrade()
            store = open_object_store(settings)
            closers.append(store.close)
            bus = open_event_bus(settings)
            closers.append(bus.close)
            cache = open_cache(settings)
            if cache is not None:
                closers.append(cache.close)
        except BaseException:
            for close in reversed(closers):
                close()
            raise
        relay = OutboxRelay(db, bus, poll_seconds=settings.outbox_poll_seconds)
        jobs = JobRunner(db)
        return cls(
            settings=settings,
            db=db,
            store=store,
            bus=bus,
            relay=relay,
            inbox=Inbox(db),
            keys=ApiKeyStore(db),
            jobs=jobs,
            cache=cache,
            _closers=closers,
        )

    def start(self) -> None:
        """Start background work (the outbox relay); fail jobs a dead process left running."""
        self.jobs.recover()
        self.relay.start()

    def readiness(self) -> dict[str, str]:
        """Check each backend; ``ok`` or the reason it is not.

        Returns:
            A check name (``database``, ``object_store``, ``event_bus``, ``cache``) to status.
        """
        checks: dict[str, Callable[[], object]] = {
            "database": self.db.ping,
            "object_store": self.store.ping,
            "event_bus": self.bus.ping,
        }
        if self.cache is not None:
            checks["cache"] = self.cache.ping
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {exc}"
            else:
                results[name] = "ok"
        return results

    def close(self) -> None:
        """Stop background work and close every backend."""
        self.jobs.shutdown(wait=True)
        self.relay.stop()
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                logger.exception("error while closing the platform")
        self._closers.clear()
