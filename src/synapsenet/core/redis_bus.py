"""The Redis Streams event bus: one stream, one consumer group per subscriber group.

Keys, all derived from the ``stream`` name (a hash tag such as ``{synapsenet}:events`` keeps
them in one Redis Cluster slot):

- ``<stream>``: the events; each entry has a ``type`` field (so consumers can filter without
  parsing) and an ``event`` field (the CloudEvents structured JSON).
- ``<stream>:dead``: dead letters, one entry per (entry, group) that could not be handled,
  with the group, the last error and the delivery count. Never trimmed: humans read it.
- ``<stream>:errors:<group>``: hash of the last handler error per still-pending entry id, so
  whichever consumer finally dead-letters an entry can say why it kept failing, even when the
  consumer that saw the error has died since.

Delivery is at least once. A handler that raises leaves its entry pending; any consumer of the
group reclaims it with ``XAUTOCLAIM`` once it has been idle for ``claim_idle_ms`` (which must
therefore exceed the longest handler run), and after ``max_deliveries`` deliveries the entry
goes to the dead-letter stream.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from synapsenet.core.events import Event, EventHandler, type_matches
from synapsenet.errors import InvalidError, UnavailableError

logger = logging.getLogger(__name__)

StartPosition = Literal["latest", "earliest"]
"""Where a newly created consumer group starts: new events only, or the whole stream."""

EVENT_FIELD: Final = "event"
TYPE_FIELD: Final = "type"
_GROUP_START_IDS: Final[dict[str, str]] = {"latest": "$", "earliest": "0"}
_OWNER: Final = "RedisStreamsEventBus"
# Pause after a failed worker round, doubled up to the cap while Redis stays unreachable.
_WORKER_BACKOFF_S: Final = 0.05
_WORKER_BACKOFF_CAP_S: Final = 5.0

_Fields = dict[str, str]
_Outcome = Literal["handled", "skipped", "failed", "dead_lettered"]


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """What one consuming round did with the entries it took from the stream.

    Attributes:
        handled: The handler succeeded and the entry was acknowledged.
        skipped: The event type did not match the pattern; acknowledged without handling.
        failed: The handler raised; the entry stays pending and will be delivered again.
        dead_lettered: Moved to the dead-letter stream (too many deliveries, malformed, or
            deleted from the stream before it was acknowledged).
        claimed: How many of the entries above were reclaimed from idle consumers.
    """

    handled: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0

    @property
    def total(self) -> int:
        """Entries the round took from the stream, whatever became of them."""
        return self.handled + self.skipped + self.failed + self.dead_lettered

    def __add__(self, other: ConsumeResult) -> ConsumeResult:
        return ConsumeResult(
            handled=self.handled + other.handled,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            claimed=self.claimed + other.claimed,
        )


@dataclass(frozen=True, slots=True)
class StreamDeadLetter:
    """One entry of the dead-letter stream.

    Attributes:
        entry_id: Id of this record in the dead-letter stream.
        stream_id: Id the entry had in the event stream.
        group: The consumer group that gave up on it.
        consumer: The consumer that moved it here.
        error: Why: the last handler error, or what was wrong with the entry.
        deliveries: How many times the group had delivered it.
        type: The entry's ``type`` field ("" when it had none).
        payload: The entry's raw ``event`` field ("" when it had none or was deleted).
    """

    entry_id: str
    stream_id: str
    group: str
    consumer: str
    error: str
    deliveries: int
    type: str
    payload: str

    @property
    def event(self) -> Event | None:
        """The dead-lettered event, or ``None`` when the payload is not a valid event."""
        try:
            return Event.from_json(self.payload)
        except (InvalidError, ValueError):
            return None


class RedisSubscription:
    """A background worker consuming one group's events for one handler.

    Created by :meth:`RedisStreamsEventBus.subscribe`; :meth:`close` stops the worker.

    Attributes:
        type_pattern: Glob over event types this subscription handles.
        group: The consumer group.
        consumer: This worker's consumer name within the group.
    """

    def __init__(
        self,
        bus: RedisStreamsEventBus,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
    ) -> None:
        self.type_pattern = type_pattern
        self.handler = handler
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._stop = threading.Event()
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"redis-bus:{group}:{consumer}", daemon=True
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread.is_alive()

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        bus = self._bus
        # Claiming more often than half the idle threshold finds nothing new.
        claim_interval_s = bus.claim_idle_ms / 2000
        next_claim = 0.0
        backoff = _WORKER_BACKOFF_S
        while not self._stop.is_set():
            claim = time.monotonic() >= next_claim
            try:
                result = bus.consume_once(
                    self.type_pattern,
                    self.handler,
                    self.group,
                    consumer=self.consumer,
                    block_ms=bus.block_ms,
                    claim=claim,
                )
            except Exception:
                if self._stop.is_set() or bus.closed:
                    break
                logger.warning(
                    "event bus worker %s/%s failed a round; retrying in %.2fs",
                    self.group,
                    self.consumer,
                    backoff,
                    exc_info=True,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _WORKER_BACKOFF_CAP_S)
                continue
            backoff = _WORKER_BACKOFF_S
            if claim:
                # A full batch means more idle entries may be waiting: claim again at once.
                more = result.claimed >= bus.batch_size
                next_claim = time.monotonic() + (0.0 if more else claim_interval_s)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker and wait for it to finish its current round.

        Entries the worker has read but not acknowledged stay pending in the group, and
        another consumer reclaims them after ``claim_idle_ms``.

        Args:
            timeout: Seconds to wait for the worker; by default the bus's ``block_ms`` plus
                its socket timeout. A worker still busy after that (a stuck handler) is left
                to finish in the background and logged.
        """
        with self._close_lock:
            if self._stop.is_set() and not self._thread.is_alive():
                return
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(self._bus._default_join_timeout() if timeout is None else timeout)
                if self._thread.is_alive():
                    logger.warning(
                        "event bus worker %s/%s did not stop in time; left running",
                        self.group,
                        self.consumer,
                    )
            self._bus._release(self)


class RedisStreamsEventBus:
    """The event bus on Redis Streams, for deployments past one process.

    Every subscriber group is a Redis consumer group on one stream, so every group receives
    every event and, within a group, each event goes to one consumer. Subscriptions run a
    background thread each; :meth:`consume_once` runs one round synchronously for tests and
    job runners (the threads call it in a loop).

    Args:
        url: Redis URL (``redis://``, ``rediss://`` or ``unix://``). Query options such as
            ``socket_timeout`` override the keyword arguments, as in redis-py.
        stream: Stream key; the dead-letter stream and error hashes are named after it.
        consumer_name: This process's consumer name within each group; by default
            ``<host>-<pid>-<random>``. A second subscription to the same group from this bus
            gets a numbered suffix.
        block_ms: How long a worker blocks waiting for new events per round; also bounds how
            long closing a subscription waits.
        batch_size: Entries read or claimed per round.
        claim_idle_ms: Pending entries idle longer than this are reclaimed and redelivered.
            Must exceed the longest handler run, or slow handlers get duplicate deliveries.
        max_deliveries: Deliveries to one group after which an entry is dead-lettered.
        max_len: Approximate stream length kept on publish (``MAXLEN ~``); ``None`` keeps
            everything. It must cover the backlog of the slowest group: entries trimmed
            before a group reads them are lost to it.
        start: Where a consumer group created by this bus starts: ``"latest"`` (events
            published from now on) or ``"earliest"`` (the whole stream).
        connect_timeout: Seconds to wait for a TCP connection.
        socket_timeout: Seconds to wait for a reply; must exceed ``block_ms``.

    Raises:
        InvalidError: When a parameter is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "synapsenet:events",
        consumer_name: str | None = None,
        block_ms: int = 1000,
        batch_size: int = 100,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        max_len: int | None = 1_000_000,
        start: StartPosition = "latest",
        connect_timeout: float = 2.0,
        socket_timeout: float = 5.0,
    ) -> None:
        _check_text("stream", stream)
        _check_int("block_ms", block_ms, minimum=1)
        if consumer_name is not None:
            _check_text("consumer_name", consumer_name)
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("claim_idle_ms", claim_idle_ms, minimum=1)
        _check_int("max_deliveries", max_deliveries, minimum=1)
        if max_len is not None:
            _check_int("max_len", max_len, minimum=1, or_none=True)
        if start not in _GROUP_START_IDS:
            raise _invalid("start", "one of 'latest', 'earliest'", start)
        _check_seconds("connect_timeout", connect_timeout)
        _check_seconds("socket_timeout", socket_timeout)
        try:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                # Valid events are ASCII JSON; foreign bytes must not make reads fail forever.
                encoding_errors="replace",
                # RESP2 reply shapes are the documented ones; _stream_entries copes with both.
                protocol=2,
                socket_connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                # Rides out a dropped connection or a failover, yet fails fast when Redis is down.
                retry=Retry(ExponentialBackoff(cap=0.25, base=0.025), retries=2),
            )
        except ValueError as exc:
            raise InvalidError(
                f"The 'url' parameter of {_OWNER} must be a redis://, rediss:// or unix:// "
                f"URL. Got {_redact(url)!r} instead ({exc}).",
                field="url",
            ) from None
        self._socket_timeout: float | None = client.connection_pool.connection_kwargs.get(
            "socket_timeout", socket_timeout
        )
        self._check_block_ms("block_ms", block_ms)

        self.stream = stream
        self.dead_letter_stream = f"{stream}:dead"
        self.consumer_name = consumer_name or _default_consumer_name()
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.max_len = max_len
        self.start: StartPosition = start
        self._redis = client
        self._where = _describe_server(client)
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._ready_groups: set[str] = set()
        self._subscriptions: list[RedisSubscription] = []
        self._consumers_in_use: dict[str, set[str]] = {}
        self._claim_cursors: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r}, stream={self.stream!r})"

    def __enter__(self) -> RedisStreamsEventBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- producing -------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Append ``event`` to the stream; returns once Redis has accepted it.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("publish to"):
            self._redis.xadd(
                self.stream,
                {TYPE_FIELD: event.type, EVENT_FIELD: event.to_json()},
                maxlen=self.max_len,
                approximate=True,
            )

    # -- consuming -------------------------------------------------------------------------

    def subscribe(self, type_pattern: str, handler: EventHandler, group: str) -> RedisSubscription:
        """Start a background worker delivering matching events to ``handler`` in ``group``.

        The consumer group is created first (from ``start``), so every event published after
        this call returns reaches the group. Subscriptions of one group share its events, so
        they should use the same ``type_pattern``: an event one member skips is acknowledged
        for the whole group.

        Args:
            type_pattern: Glob over dotted event types, e.g. ``abtesting.*``.
            handler: Called once per event; raising leaves the event for redelivery.
            group: The consumer group.

        Returns:
            The running subscription; close it to stop the worker.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_text("type_pattern", type_pattern)
        _check_text("group", group)
        self.ensure_group(group)
        with self._lock:
            if self._closing:
                raise UnavailableError("the Redis event bus is closed")
            in_use = self._consumers_in_use.setdefault(group, set())
            consumer = self.consumer_name
            suffix = 1
            while consumer in in_use:
                suffix += 1
                consumer = f"{self.consumer_name}-{suffix}"
            in_use.add(consumer)
            subscription = RedisSubscription(self, type_pattern, handler, group, consumer)
            self._subscriptions.append(subscription)
        subscription._start()
        return subscription

    def ensure_group(self, group: str) -> None:
        """Create consumer group ``group`` (and the stream) unless it exists.

        A new group starts at ``start``; an existing group keeps its position.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._lock:
            if group in self._ready_groups:
                return
        with self._redis_errors("create a consumer group on"):
            try:
                self._redis.xgroup_create(
                    self.stream, group, id=_GROUP_START_IDS[self.start], mkstream=True
                )
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise
        with self._lock:
            self._ready_groups.add(group)

    def consume_once(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        *,
        consumer: str | None = None,
        block_ms: int = 0,
        claim: bool = True,
    ) -> ConsumeResult:
        """Run one consuming round synchronously, as a subscription's worker does.

        The round first reclaims entries of ``group`` idle longer than ``claim_idle_ms`` (when
        ``claim``), then reads up to ``batch_size`` new entries. Each entry is handled,
        skipped, left pending or dead-lettered as described in the module docstring.

        Args:
            type_pattern: Glob over dotted event types, e.g. ``abtesting.*``.
            handler: Called once per matching event; raising leaves it for redelivery.
            group: The consumer group (created if missing).
            consumer: Consumer name within the group; by default :attr:`consumer_name`.
            block_ms: How long to wait for new entries when none are there (0: do not wait).
                Not used when the round reclaimed entries.
            claim: Whether to reclaim idle pending entries first.

        Returns:
            What the round did, by outcome.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_text("type_pattern", type_pattern)
        _check_text("group", group)
        if consumer is not None:
            _check_text("consumer", consumer)
        _check_int("block_ms", block_ms, minimum=0)
        self._check_block_ms("block_ms", block_ms)
        name = consumer or self.consumer_name
        self.ensure_group(group)
        with self._redis_errors("consume from"):
            try:
                return self._consume_round(type_pattern, handler, group, name, block_ms, claim)
            except ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                # The stream or group was deleted under us: recreate it and try again.
                logger.warning("consumer group %s vanished from %s; recreating", group, self.stream)
                with self._lock:
                    self._ready_groups.discard(group)
                self.ensure_group(group)
                return self._consume_round(type_pattern, handler, group, name, block_ms, claim)

    def _consume_round(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
        block_ms: int,
        claim: bool,
    ) -> ConsumeResult:
        outcomes: list[_Outcome] = []
        skipped: list[str] = []
        claimed = 0
        if claim:
            entries, deleted = self._claim_idle(group, consumer)
            claimed = len(entries) + len(deleted)
            for entry_id in deleted:
                self._dead_letter(
                    group,
                    consumer,
                    entry_id,
                    {},
                    deliveries=0,
                    error=f"deleted from the stream (trimmed or XDEL) before group {group!r} "
                    "acknowledged it" + self._last_error_suffix(group, entry_id),
                )
                outcomes.append("dead_lettered")
            for entry_id, fields, deliveries in entries:
                outcome = self._process(
                    type_pattern, handler, group, consumer, entry_id, fields, deliveries
                )
                if outcome == "skipped":
                    skipped.append(entry_id)
                outcomes.append(outcome)
        # XREADGROUP BLOCK 0 waits forever, so "do not wait" means no BLOCK at all; and
        # reclaimed work should not be held up waiting for new entries.
        block = block_ms if block_ms > 0 and not outcomes else None
        reply = self._redis.xreadgroup(
            group, consumer, {self.stream: ">"}, count=self.batch_size, block=block
        )
        for entry_id, fields in _stream_entries(reply):
            # An entry read with ">" is on its first delivery.
            outcome = self._process(type_pattern, handler, group, consumer, entry_id, fields, 1)
            if outcome == "skipped":
                skipped.append(entry_id)
            outcomes.append(outcome)
        if skipped:
            self._redis.xack(self.stream, group, *skipped)
        return ConsumeResult(
            handled=outcomes.count("handled"),
            skipped=outcomes.count("skipped"),
            failed=outcomes.count("failed"),
            dead_lettered=outcomes.count("dead_lettered"),
            claimed=claimed,
        )

    def _claim_idle(
        self, group: str, consumer: str
    ) -> tuple[list[tuple[str, _Fields, int]], list[str]]:
        """Take over entries idle past ``claim_idle_ms``; return them with delivery counts."""
        key = (group, consumer)
        with self._lock:
            cursor = self._claim_cursors.get(key, "0-0")
        reply = self._redis.xautoclaim(
            self.stream, group, consumer, self.claim_idle_ms, cursor, count=self.batch_size
        )
        next_cursor = str(reply[0])
        replied = cast(list[tuple[str, _Fields | None]], reply[1])
        # Redis 7 reports entries deleted from the stream separately (and drops them from
        # the pending list); Redis 6.2 returns them with no fields instead.
        deleted = [str(i) for i in reply[2]] if len(reply) > 2 else []
        deleted += [entry_id for entry_id, fields in replied if fields is None]
        entries = [(entry_id, fields) for entry_id, fields in replied if fields is not None]
        with self._lock:
            self._claim_cursors[key] = next_cursor
        if not entries:
            return [], deleted
        # XAUTOCLAIM does not report delivery counts; XPENDING does, one id at a time.
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(
                self.stream, group, min=entry_id, max=entry_id, count=1, consumername=consumer
            )
        details = cast(list[list[dict[str, Any]]], pipe.execute())
        claimed: list[tuple[str, _Fields, int]] = []
        for (entry_id, fields), detail in zip(entries, details, strict=True):
            if detail:  # else another consumer claimed it meanwhile: it is theirs now
                claimed.append((entry_id, fields, int(detail[0]["times_delivered"])))
        return claimed, deleted

    def _process(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
        entry_id: str,
        fields: _Fields,
        deliveries: int,
    ) -> _Outcome:
        """Deliver one entry; return its outcome (a :class:`ConsumeResult` field name)."""
        event_type = fields.get(TYPE_FIELD)
        if event_type is not None and not type_matches(type_pattern, event_type):
            return "skipped"
        if deliveries > self.max_deliveries:
            # The consumer of the last allowed delivery died or hung before acknowledging.
            last_error = self._last_error_suffix(group, entry_id)
            error = f"not acknowledged after {deliveries - 1} deliveries{last_error}"
            self._dead_letter(group, consumer, entry_id, fields, deliveries - 1, error)
            return "dead_lettered"
        try:
            event = _decode_entry(fields)
        except InvalidError as exc:
            self._dead_letter(
                group, consumer, entry_id, fields, deliveries, f"malformed entry: {exc.detail}"
            )
            return "dead_lettered"
        try:
            handler(event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if deliveries >= self.max_deliveries:
                self._dead_letter(group, consumer, entry_id, fields, deliveries, error)
                return "dead_lettered"
            logger.warning(
                "handler of group %s failed on event %s (delivery %d of %d): %s",
                group,
                event.id,
                deliveries,
                self.max_deliveries,
                error,
            )
            self._redis.hset(self._errors_key(group), entry_id, error)
            return "failed"
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(self.stream, group, entry_id)
        if deliveries > 1:
            pipe.hdel(self._errors_key(group), entry_id)
        pipe.execute()
        return "handled"

    def _dead_letter(
        self,
        group: str,
        consumer: str,
        entry_id: str,
        fields: _Fields,
        deliveries: int,
        error: str,
    ) -> None:
        record: dict[str, str] = {
            "stream_id": entry_id,
            "group": group,
            "consumer": consumer,
            "error": error,
            "deliveries": str(deliveries),
            TYPE_FIELD: fields.get(TYPE_FIELD, ""),
            EVENT_FIELD: fields.get(EVENT_FIELD, ""),
        }
        if set(fields) - {TYPE_FIELD, EVENT_FIELD}:
            record["entry"] = json.dumps(fields, sort_keys=True)
        # One transaction, so an entry is never acknowledged without its dead letter written.
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream, cast(dict[Any, Any], record))
        # Also for deleted entries: Redis 7 has already dropped them from the pending list
        # (a no-op then), Redis 6.2 has not.
        pipe.xack(self.stream, group, entry_id)
        pipe.hdel(self._errors_key(group), entry_id)
        pipe.execute()
        logger.error(
            "entry %s of %s dead-lettered for group %s after %d deliveries: %s",
            entry_id,
            self.stream,
            group,
            deliveries,
            error,
        )

    def _last_error_suffix(self, group: str, entry_id: str) -> str:
        # decode_responses=True: redis-py's bytes-or-str annotation is str here.
        last = cast(str | None, self._redis.hget(self._errors_key(group), entry_id))
        return f"; last error: {last}" if last else "; no handler error recorded"

    def _errors_key(self, group: str) -> str:
        return f"{self.stream}:errors:{group}"

    # -- inspection ------------------------------------------------------------------------

    def pending_count(self, group: str) -> int:
        """Entries delivered to ``group`` and not yet acknowledged (0 for an unknown group).

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("inspect"):
            try:
                summary = self._redis.xpending(self.stream, group)
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    return 0
                raise
        return int(summary["pending"])

    def dead_letters(self, count: int = 100, *, after: str = "-") -> list[StreamDeadLetter]:
        """Read the dead-letter stream, oldest first.

        Args:
            count: At most this many records.
            after: Start at this dead-letter entry id (inclusive); ``-`` for the beginning.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_int("count", count, minimum=1)
        self._check_open()
        with self._redis_errors("read dead letters from"):
            rows = cast(
                list[tuple[str, _Fields]],
                self._redis.xrange(self.dead_letter_stream, min=after, count=count),
            )
        return [
            StreamDeadLetter(
                entry_id=entry_id,
                stream_id=fields.get("stream_id", ""),
                group=fields.get("group", ""),
                consumer=fields.get("consumer", ""),
                error=fields.get("error", ""),
                deliveries=int(fields.get("deliveries", "0")),
                type=fields.get(TYPE_FIELD, ""),
                payload=fields.get(EVENT_FIELD, ""),
            )
            for entry_id, fields in rows
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("reach"):
            self._redis.ping()

    def close(self) -> None:
        """Stop every subscription's worker, then close the connection pool. Idempotent."""
        with self._lock:
            if self._closing:
                return
            # Refuse new subscriptions now, but keep Redis usable while workers wind down.
            self._closing = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
        self._closed = True
        self._redis.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has finished."""
        return self._closed

    def _release(self, subscription: RedisSubscription) -> None:
        """Forget a closed subscription; drop its consumer from the group if it owes nothing."""
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self._consumers_in_use.get(subscription.group, set()).discard(subscription.consumer)
            self._claim_cursors.pop((subscription.group, subscription.consumer), None)
            if self._closed:
                return
        # Random default names would otherwise pile up in the group across restarts. A
        # consumer with pending entries is kept: deleting it would drop them from the group.
        try:
            summary = self._redis.xpending(self.stream, subscription.group)
            owing = {c["name"]: int(c["pending"]) for c in summary.get("consumers") or []}
            if owing.get(subscription.consumer, 0) == 0:
                self._redis.xgroup_delconsumer(
                    self.stream, subscription.group, subscription.consumer
                )
        except RedisError as exc:
            logger.debug("could not remove consumer %s: %s", subscription.consumer, exc)

    def _default_join_timeout(self) -> float:
        return self.block_ms / 1000 + (self._socket_timeout or 5.0)

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the Redis event bus is closed")

    def _check_block_ms(self, name: str, block_ms: int) -> None:
        if self._socket_timeout is not None and block_ms >= self._socket_timeout * 1000:
            limit = round(self._socket_timeout * 1000)
            raise InvalidError(
                f"The {name!r} parameter of {_OWNER} must be an int below the socket timeout "
                f"({limit} ms). Got {block_ms!r} instead.",
                field=name,
            )

    @contextmanager
    def _redis_errors(self, action: str) -> Iterator[None]:
        """Turn redis-py errors into :class:`UnavailableError` naming the server."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise UnavailableError(
                f"cannot {action} the event stream {self.stream!r}: Redis at {self._where} "
                f"is unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        except RedisError as exc:
            raise UnavailableError(
                f"cannot {action} the event stream {self.stream!r} on Redis at {self._where}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def _stream_entries(reply: Any) -> list[tuple[str, _Fields]]:
    """Flatten an XREADGROUP reply over one stream into its entries.

    RESP2 replies ``[[stream, entries]]``; redis-py shapes RESP3 replies as
    ``{stream: [entries]}`` with ``entries`` wrapped in one more list (a URL's
    ``protocol=3`` option overrides ours).
    """
    if not reply:
        return []
    entries: list[tuple[str, _Fields]] = []
    if isinstance(reply, dict):
        for batches in reply.values():
            for batch in batches:
                entries.extend(batch)
    else:
        for _stream, batch in reply:
            entries.extend(batch)
    return entries


def _decode_entry(fields: _Fields) -> Event:
    """Parse an entry's event, checking it against the entry's ``type`` field."""
    if EVENT_FIELD not in fields:
        raise InvalidError(f"the entry has no {EVENT_FIELD!r} field")
    if TYPE_FIELD not in fields:
        raise InvalidError(f"the entry has no {TYPE_FIELD!r} field")
    try:
        event = Event.from_json(fields[EVENT_FIELD])
    except ValueError as exc:  # json.JSONDecodeError
        raise InvalidError(f"the event is not JSON: {exc}") from None
    if event.type != fields[TYPE_FIELD]:
        raise InvalidError(
            f"the entry's type {fields[TYPE_FIELD]!r} differs from its event's {event.type!r}"
        )
    return event


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _describe_server(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"
    return url


def _invalid(name: str, expected: str, got: object) -> InvalidError:
    return InvalidError(
        f"The {name!r} parameter of {_OWNER} must be {expected}. Got {got!r} instead.",
        field=name,
    )


def _check_int(name: str, value: object, *, minimum: int, or_none: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(name, f"an int >= {minimum}" + (" or None" if or_none else ""), value)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(name, "a non-empty str", value)


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _invalid(name, "a number of seconds > 0", value)
